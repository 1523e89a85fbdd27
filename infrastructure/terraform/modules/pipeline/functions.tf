# The functions of src/lambda_pipeline.py: one package, one handler each, and one role each
# with the statements of local.policies.

locals {
  # Built from the name rather than taken from the resource: the ingest and replay policies must not
  # depend on the state machine, which depends on the step functions.
  state_machine_name = "${local.name}-pipeline"

  policy_resources = {
    "bucket"                             = aws_s3_bucket.raw.arn
    "bucket/incoming/*"                  = "${aws_s3_bucket.raw.arn}/incoming/*"
    "bucket/raw/*"                       = "${aws_s3_bucket.raw.arn}/raw/*"
    "bucket/rejected/*"                  = "${aws_s3_bucket.raw.arn}/rejected/*"
    "bucket/staged/*"                    = "${aws_s3_bucket.raw.arn}/staged/*"
    "analytics_bucket"                   = aws_s3_bucket.analytics.arn
    "analytics_bucket/*"                 = "${aws_s3_bucket.analytics.arn}/*"
    "analytics_bucket/events/*"          = "${aws_s3_bucket.analytics.arn}/events/*"
    "analytics_bucket/lake-compaction/*" = "${aws_s3_bucket.analytics.arn}/lake-compaction/*"
    "analytics_bucket/lake-unreadable/*" = "${aws_s3_bucket.analytics.arn}/lake-unreadable/*"
    "curated_table"                      = aws_dynamodb_table.curated.arn
    "state_table"                        = aws_dynamodb_table.state.arn
    "state_table/index/unfinished"       = "${aws_dynamodb_table.state.arn}/index/unfinished"
    "insights_table"                     = aws_dynamodb_table.insights.arn
    "insights_stream"                    = aws_dynamodb_table.insights.stream_arn
    "curated_stream"                     = aws_dynamodb_table.curated.stream_arn
    "dead_letter_queue"                  = aws_sqs_queue.dead_letter.arn
    "apps_table"                         = aws_dynamodb_table.apps.arn
    "state_machine"                      = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machine_name}"
    # by name: the functions' own resources would make a cycle (ingest's policy, ingest)
    "start_batches_function"   = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.function_names["start_batches"]}"
    "ingest_function"          = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.function_names["ingest"]}"
    "request_stream"           = aws_kinesis_firehose_delivery_stream.requests.arn
    "bucket/requests/*"        = "${aws_s3_bucket.raw.arn}/requests/*"
    "bucket/config/*"          = "${aws_s3_bucket.raw.arn}/config/*"
    "pseudonym_key_parameters" = "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/eventpipe/${local.name}/*"
  }

  # Functions invoked asynchronously: Lambda's retries, then the dead-letter queue.
  async_invocations = {
    ingest          = { maximum_retry_attempts = 2, maximum_event_age_in_seconds = 21600 }
    export_insights = { maximum_retry_attempts = 2, maximum_event_age_in_seconds = 3600 }
    replay          = { maximum_retry_attempts = 2, maximum_event_age_in_seconds = 3600 }
    compact_lake    = { maximum_retry_attempts = 2, maximum_event_age_in_seconds = 3600 }
    # ingest hands a failed start to start_batches, and a large file's ranges to itself, this way
    start_batches = { maximum_retry_attempts = 2, maximum_event_age_in_seconds = 3600 }
  }

  entry_functions = { for key, spec in local.functions : key => spec if !contains(keys(local.workflow_steps), key) }
}

data "aws_iam_policy_document" "function" {
  for_each = local.policies

  dynamic "statement" {
    for_each = each.value

    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = [for resource in statement.value.resources : local.policy_resources[resource]]
    }
  }
}

module "step" {
  source   = "./modules/function"
  for_each = local.workflow_steps

  name                     = local.function_names[each.key]
  handler                  = "lambda_pipeline.${each.key}"
  description              = local.functions[each.key].description
  package_file             = var.lambda_package
  memory_mb                = local.functions[each.key].memory_mb
  timeout_s                = local.functions[each.key].timeout_s
  environment              = merge(var.function_settings, local.settings_environment, local.common_environment)
  policy_json              = data.aws_iam_policy_document.function[each.key].json
  log_retention_days       = var.log_retention_days
  reserved_concurrency     = lookup(var.reserved_concurrency, each.key, -1)
  permissions_boundary_arn = var.permissions_boundary_arn
  tags                     = local.tags
}

module "entry" {
  source   = "./modules/function"
  for_each = local.entry_functions

  name         = local.function_names[each.key]
  handler      = "lambda_pipeline.${each.key}"
  description  = each.value.description
  package_file = var.lambda_package
  memory_mb    = each.value.memory_mb
  timeout_s    = each.value.timeout_s
  # Only the functions that start executions are told the state machine (ingest, replay,
  # start_batches), only ingest, which hands on the starts that fail and a large file's ranges, the
  # functions it invokes for them, and only the ones that write the analytics bucket (the export, the
  # lake's writer, compaction and erasure) its name.
  environment = merge(var.function_settings, local.settings_environment, local.common_environment, {
    for name, value in { EVENTPIPE_STATE_MACHINE_ARN = aws_sfn_state_machine.pipeline.arn } :
    name => value if contains(local.policies[each.key][*].sid, "StartExecutions")
    }, {
    for name, value in {
      EVENTPIPE_START_FUNCTION = local.function_names["start_batches"]
      EVENTPIPE_RANGE_FUNCTION = local.function_names["ingest"]
    } : name => value if contains(local.policies[each.key][*].sid, "HandOnStartsAndRanges")
    }, {
    for name, value in { EVENTPIPE_ANALYTICS_BUCKET = aws_s3_bucket.analytics.id } :
    name => value if contains(local.policies[each.key][*].sid, "WriteExport") || contains(local.policies[each.key][*].sid, "WriteLake") || contains(local.policies[each.key][*].sid, "MergeLakeObjects") || contains(local.policies[each.key][*].sid, "RewriteLake")
    }, {
    for name, value in { EVENTPIPE_REQUEST_STREAM = aws_kinesis_firehose_delivery_stream.requests.name } :
    name => value if contains(local.policies[each.key][*].sid, "QueueRequests")
  })
  policy_json = data.aws_iam_policy_document.function[each.key].json
  # ingest is not traced unless its caller sampled the request: Lambda's own sampling cannot be lowered,
  # and the workflow is traced at a fixed 1% (aws_xray_sampling_rule.workflow), as in the SAM template.
  # Nor are the schedules: Lambda's sampling would trace every run, idle or not (docs/cost.md), nor the fold.
  tracing_mode = contains(["ingest", "export_insights", "replay", "compact_lake", "fold_insights", "write_lake"], each.key) ? "PassThrough" : "Active"
  async_invocation = contains(keys(local.async_invocations), each.key) ? merge(local.async_invocations[each.key], {
    on_failure_queue_arn = aws_sqs_queue.dead_letter.arn
  }) : null
  log_retention_days       = var.log_retention_days
  reserved_concurrency     = lookup(var.reserved_concurrency, each.key, -1)
  permissions_boundary_arn = var.permissions_boundary_arn
  tags                     = local.tags
}

# Micro-batching (docs/http-api.md): ingest puts each request here and answers 202 once Firehose has
# it; Firehose writes what each second brings as one object under requests/, whose object-created
# event makes ingest form the groups, one execution each. As RequestStream in the SAM template.
resource "aws_kinesis_firehose_delivery_stream" "requests" {
  #checkov:skip=CKV_AWS_241:encrypted with an AWS owned key, as the raw bucket it writes to (SSE-S3); a customer key adds cost and a key policy for Firehose and ingest
  name        = "${local.name}-requests"
  destination = "extended_s3"
  tags        = local.tags

  server_side_encryption {
    enabled  = true
    key_type = "AWS_OWNED_CMK"
  }

  extended_s3_configuration {
    bucket_arn         = aws_s3_bucket.raw.arn
    role_arn           = aws_iam_role.request_stream.arn
    prefix             = "requests/"
    buffering_interval = 1 # freshness: at most a second in the buffer; about 100 requests an object at 100/s
    buffering_size     = 1
    compression_format = "UNCOMPRESSED" # lines are gzip + base64 already
  }
}

data "aws_iam_policy_document" "request_stream_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "request_stream" {
  statement {
    sid       = "WriteRequestObjects" # Firehose's S3 delivery (multipart for large buffers)
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.raw.arn, "${aws_s3_bucket.raw.arn}/requests/*"]
  }
}

resource "aws_iam_role" "request_stream" {
  name                 = "${local.name}-request-stream"
  assume_role_policy   = data.aws_iam_policy_document.request_stream_trust.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = local.tags
}

resource "aws_iam_role_policy" "request_stream" {
  name   = "deliver-requests"
  role   = aws_iam_role.request_stream.id
  policy = data.aws_iam_policy_document.request_stream.json
}

# The insights table's stream: each batch's delta counted into its minutes by fold_insights, a minute
# written once per invocation for all the batches of its window. As FoldInsightsFunction's event in SAM.
resource "aws_lambda_event_source_mapping" "insights_deltas" {
  event_source_arn                   = aws_dynamodb_table.insights.stream_arn
  function_name                      = module.entry["fold_insights"].function_name
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = 1000
  maximum_batching_window_in_seconds = 30 # how fresh insights are, against one minute write per window
  parallelization_factor             = 1

  filter_criteria {
    filter {
      pattern = jsonencode({ eventName = ["INSERT"], dynamodb = { Keys = { pk = { S = [{ prefix = "delta#" }] } } } })
    }
  }
}

# The lake (docs/lake.md "On AWS"): the curated table's stream, each newly curated event written once by
# write_lake, one Parquet object per hour per batch of records. A failed batch is retried whole from the
# same position (no bisection: its objects' keys stay the same) until it succeeds or its records leave the
# stream (24 hours); then its description goes to the dead-letter queue. As WriteLakeFunction's event in SAM.
resource "aws_lambda_event_source_mapping" "curated_inserts" {
  event_source_arn                   = aws_dynamodb_table.curated.stream_arn
  function_name                      = module.entry["write_lake"].function_name
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = 10000
  maximum_batching_window_in_seconds = 30 # the lake's freshness (60 s promised) against objects per hour
  parallelization_factor             = 1
  bisect_batch_on_function_error     = false
  maximum_retry_attempts             = -1
  maximum_record_age_in_seconds      = -1

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.dead_letter.arn
    }
  }

  filter_criteria {
    filter {
      pattern = jsonencode({ eventName = ["INSERT"] })
    }
  }
}

resource "aws_sqs_queue" "dead_letter" {
  # Asynchronous invocations that failed for good: object-created and schedule events EventBridge
  # could not deliver, and ingest / export_insights / replay invocations that failed after Lambda's retries.
  # The dlq-depth alarm watches it.
  name                      = "${local.name}-dead-letters"
  message_retention_seconds = 1209600 # 14 days, the most SQS keeps
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

data "aws_iam_policy_document" "dead_letter" {
  statement {
    sid       = "EventBridgeRuleDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letter.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values = [
        aws_cloudwatch_event_rule.object_created.arn,
        aws_cloudwatch_event_rule.export.arn,
        aws_cloudwatch_event_rule.replay_pending.arn,
        aws_cloudwatch_event_rule.compact_lake.arn,
      ]
    }
  }

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [aws_sqs_queue.dead_letter.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letter" {
  queue_url = aws_sqs_queue.dead_letter.id
  policy    = data.aws_iam_policy_document.dead_letter.json
}
