# What invokes the entry functions besides the HTTP API: files dropped under incoming/ (S3 sends
# Object Created to EventBridge) and the insights export schedule. Rule names as in the SAM template.

resource "aws_cloudwatch_event_rule" "object_created" {
  name        = "${local.name}-object-created"
  description = "Objects created under incoming/ of the raw bucket go to the ingest function"
  tags        = local.tags

  event_pattern = jsonencode({
    source        = ["aws.s3"]
    "detail-type" = ["Object Created"]
    detail = {
      bucket = { name = [aws_s3_bucket.raw.id] }
      object = { key = [{ prefix = "incoming/" }] }
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
  description         = "Exports the last two hours of insights to insights/ for Athena and QuickSight"
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
