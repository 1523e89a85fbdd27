# The state machine: src/eventpipe/workflow/pipeline.asl.json, with the same ${...FunctionArn}
# substitutions as the SAM template's DefinitionSubstitutions.

resource "aws_cloudwatch_log_group" "workflow" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; a customer key adds cost and a key policy (as in the SAM template)
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable; a year of logs is a cost the operator chooses
  # The /aws/vendedlogs/ prefix keeps Step Functions from growing the account's log resource policy.
  name              = "/aws/vendedlogs/states/${local.state_machine_name}"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

data "aws_iam_policy_document" "workflow_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "workflow" {
  statement {
    sid       = "InvokeSteps"
    actions   = ["lambda:InvokeFunction"]
    resources = flatten([for step in module.step : [step.arn, "${step.arn}:*"]])
  }

  statement {
    #checkov:skip=CKV_AWS_111:log delivery is configured through account-level calls that take no resource ARN
    #checkov:skip=CKV_AWS_356:log delivery is configured through account-level calls that take no resource ARN
    sid = "DeliverExecutionLogs"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "Trace"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"]
  }
}

resource "aws_iam_role" "workflow" {
  name                 = "${local.state_machine_name}-workflow"
  description          = "Execution role of the ${local.state_machine_name} state machine"
  assume_role_policy   = data.aws_iam_policy_document.workflow_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = local.tags
}

resource "aws_iam_role_policy" "workflow" {
  name   = "workflow"
  role   = aws_iam_role.workflow.id
  policy = data.aws_iam_policy_document.workflow.json
}

resource "aws_sfn_state_machine" "pipeline" {
  # EXPRESS, as in the SAM template: billed per execution and duration, not per state transition. The
  # batch record, not the execution, is the source of truth (adapters/aws/stepfunctions.py), so
  # executions need no names kept nor DescribeExecution.
  name     = local.state_machine_name
  type     = "EXPRESS"
  role_arn = aws_iam_role.workflow.arn
  tags     = local.tags

  definition = templatefile(local.workflow_definition_file, {
    for key, variable in local.workflow_steps : variable => module.step[key].arn
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.workflow.arn}:*"
    include_execution_data = true # the state is a claim check (batch id, keys, counts), never events
    level                  = "ERROR"
  }

  tracing_configuration {
    enabled = true
  }

  depends_on = [aws_iam_role_policy.workflow]
}

# A fixed 1% of the workflow's executions are traced (their steps follow the sampling decision), as the
# SAM template's WorkflowSamplingRule: X-Ray's default would trace nearly every batch at low rates.
resource "aws_xray_sampling_rule" "workflow" {
  rule_name      = substr("${local.name}-sfn", 0, 32)
  priority       = 100
  fixed_rate     = 0.01
  reservoir_size = 0
  service_name   = local.state_machine_name
  service_type   = "AWS::StepFunctions::StateMachine"
  resource_arn   = "*"
  host           = "*"
  http_method    = "*"
  url_path       = "*"
  version        = 1
  tags           = local.tags
}
