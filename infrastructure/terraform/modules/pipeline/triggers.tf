# What invokes the entry functions besides the HTTP API: files dropped under incoming/ (S3 sends
# Object Created to EventBridge), the insights export schedule and the schedule that restarts lost
# pending batches. Rule names as in the SAM template.

resource "aws_cloudwatch_event_rule" "object_created" {
  name        = "${local.name}-object-created"
  description = "Objects created under incoming/ and requests/ of the raw bucket go to the ingest function"
  tags        = local.tags

  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.raw.id] }
      object = { key = [{ prefix = "incoming/" }, { prefix = "requests/" }] }
    }
  })
}

resource "aws_cloudwatch_event_target" "object_created" {
  rule = aws_cloudwatch_event_rule.object_created.name
  arn  = module.entry["ingest"].arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letter.arn
  }
}

resource "aws_lambda_permission" "object_created" {
  statement_id  = "AllowObjectCreatedRule"
  action        = "lambda:InvokeFunction"
  function_name = module.entry["ingest"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.object_created.arn
}

resource "aws_cloudwatch_event_rule" "export" {
  name                = "${local.name}-export-insights"
  description         = "Exports the insights changed since the last export to the analytics bucket for Athena and QuickSight"
  schedule_expression = var.export_schedule
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "export" {
  rule  = aws_cloudwatch_event_rule.export.name
  arn   = module.entry["export_insights"].arn
  input = jsonencode({}) # the default window: the last two hours

  retry_policy {
    maximum_event_age_in_seconds = 3600 # the next runs export the same hours again
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letter.arn
  }
}

resource "aws_lambda_permission" "export" {
  statement_id  = "AllowExportSchedule"
  action        = "lambda:InvokeFunction"
  function_name = module.entry["export_insights"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.export.arn
}

resource "aws_cloudwatch_event_rule" "replay_pending" {
  name                = "${local.name}-replay-pending"
  description         = "Starts again the pending batches whose workflow did not start or was lost"
  schedule_expression = var.replay_schedule
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "replay_pending" {
  # Only pending batches received more than 600 s ago: the workflow's TimeoutSeconds (300) plus
  # ingest's timeout (300), within which the invocation that received a batch starts its execution. By
  # then that execution has closed, so a batch still pending was lost (its start failed, or it timed out,
  # was aborted or failed before MarkFailed); none whose first execution may still run is started again.
  # Failed batches wait for an operator. The same input as the SAM template's schedule.
  rule  = aws_cloudwatch_event_rule.replay_pending.name
  arn   = module.entry["replay"].arn
  input = jsonencode({ pending_older_than_s = 600 })

  retry_policy {
    maximum_event_age_in_seconds = 3600 # the next runs restart the same batches
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letter.arn
  }
}

resource "aws_lambda_permission" "replay_pending" {
  statement_id  = "AllowReplayPendingSchedule"
  action        = "lambda:InvokeFunction"
  function_name = module.entry["replay"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.replay_pending.arn
}

# The lake's compaction, as CompactLakeFunction's Every15Minutes schedule in the SAM template.
resource "aws_cloudwatch_event_rule" "compact_lake" {
  name                = "${local.name}-compact-lake"
  description         = "Merges the small Parquet objects of the lake's closed or crowded hours"
  schedule_expression = var.compact_lake_schedule
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "compact_lake" {
  rule  = aws_cloudwatch_event_rule.compact_lake.name
  arn   = module.entry["compact_lake"].arn
  input = jsonencode({})

  retry_policy {
    maximum_event_age_in_seconds = 3600 # the next runs merge the same hours
    maximum_retry_attempts       = 10
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letter.arn
  }
}

resource "aws_lambda_permission" "compact_lake" {
  statement_id  = "AllowCompactLakeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = module.entry["compact_lake"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.compact_lake.arn
}
