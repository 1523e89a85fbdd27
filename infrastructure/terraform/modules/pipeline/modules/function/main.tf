# One Lambda function of the pipeline: its log group, its execution role and the function itself.
# Every function runs the same package with its own handler, as in infrastructure/template.yaml.

data "aws_partition" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a customer key adds cost and a key policy (as in the SAM template)
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable; a year of logs is a cost the operator chooses
  # Made here rather than by Lambda on first run, so that it has a retention and goes away with the stack.
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "execution" {
  source_policy_documents = [var.policy_json]

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    # Lambda sends a failed asynchronous invocation to its destination with the function's role.
    for_each = var.async_invocation == null ? [] : [var.async_invocation.on_failure_queue_arn]

    content {
      sid       = "SendFailedInvocations"
      actions   = ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.name
  description          = "Execution role of the ${var.name} function"
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role_policy_attachment" "xray" {
  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:calls only AWS APIs; a VPC would add NAT or endpoint cost and nothing to isolate
  #checkov:skip=CKV_AWS_272:code signing needs an AWS Signer profile per account; the package is built once in CI and deployed by the scoped deployment role
  #checkov:skip=CKV_AWS_116:asynchronous failures go to an on-failure destination (event invoke config below), the successor of DLQs; the other functions are invoked synchronously
  #checkov:skip=CKV_AWS_115:reserved concurrency is a variable, unreserved by default: reserving needs account quota headroom
  #checkov:skip=CKV_AWS_173:environment variables hold resource names and settings only, no secrets
  #checkov:skip=CKV_AWS_50:tracing_mode is a variable: Active for the workflow steps, PassThrough for ingest (sampled upstream) and the schedules (every idle run would be traced)
  function_name                  = var.name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  handler                        = var.handler
  runtime                        = "python3.12"
  architectures                  = ["arm64"]
  filename                       = var.package_file
  source_code_hash               = filebase64sha256(var.package_file)
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_s
  reserved_concurrent_executions = var.reserved_concurrency
  tags                           = var.tags

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = var.tracing_mode
  }

  # JSON, so that Lambda filters by level: no START, END and REPORT lines (SystemLogLevel WARN), 350
  # bytes an invocation; EMF lines carry no level and are filed under INFO, which stays. As in SAM.
  logging_config {
    log_format            = "JSON"
    application_log_level = "INFO"
    system_log_level      = "WARN"
    log_group             = aws_cloudwatch_log_group.this.name
  }

  depends_on = [aws_iam_role_policy.execution, aws_iam_role_policy_attachment.xray]
}

resource "aws_lambda_function_event_invoke_config" "this" {
  count = var.async_invocation == null ? 0 : 1

  function_name                = aws_lambda_function.this.function_name
  maximum_retry_attempts       = var.async_invocation.maximum_retry_attempts
  maximum_event_age_in_seconds = var.async_invocation.maximum_event_age_in_seconds

  destination_config {
    on_failure {
      destination = var.async_invocation.on_failure_queue_arn
    }
  }
}
