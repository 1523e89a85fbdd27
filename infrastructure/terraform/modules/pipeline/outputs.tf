output "name" {
  description = "The prefix of every resource name, <project>-<stage> (the SAM stack's name)."
  value       = local.name
}

output "api_url" {
  description = "Base URL of the HTTP API (POST /events, GET /batches/{batch_id}, GET /insights, GET /health)."
  value       = aws_apigatewayv2_api.http.api_endpoint
}

output "api_id" {
  description = "The HTTP API's id (the ApiId dimension of its metrics)."
  value       = aws_apigatewayv2_api.http.id
}

output "raw_bucket_name" {
  description = "The raw bucket; drop files under incoming/."
  value       = aws_s3_bucket.raw.id
}

output "analytics_bucket_name" {
  description = "The analytics bucket: the insights export Athena and QuickSight read (docs/aws.md)."
  value       = aws_s3_bucket.analytics.id
}

output "table_names" {
  description = "The DynamoDB tables by role: curated, state, insights, apps (eventpipe apps create --aws-table)."
  value = {
    curated  = aws_dynamodb_table.curated.name
    state    = aws_dynamodb_table.state.name
    insights = aws_dynamodb_table.insights.name
    apps     = aws_dynamodb_table.apps.name
  }
}

output "state_machine_arn" {
  description = "The workflow's ARN."
  value       = aws_sfn_state_machine.pipeline.arn
}

output "function_names" {
  description = "Function names by entry point of src/lambda_pipeline.py (ingest, process_batch, ...)."
  value = merge(
    { for key, step in module.step : key => step.function_name },
    { for key, entry in module.entry : key => entry.function_name },
  )
}

output "dead_letter_queue_name" {
  description = "The queue of asynchronous invocations that failed for good."
  value       = aws_sqs_queue.dead_letter.name
}

output "dead_letter_queue_url" {
  description = "The dead-letter queue's URL."
  value       = aws_sqs_queue.dead_letter.id
}

output "athena_workgroup_name" {
  description = "The Athena workgroup for queries over the insights table."
  value       = aws_athena_workgroup.insights.name
}

output "monitored_resources" {
  description = "What the dimensions of monitoring/alerts.yml name, by the keys of its `resources` (the input of modules/monitoring)."
  value = merge(
    {
      http_api          = aws_apigatewayv2_api.http.id
      state_machine     = aws_sfn_state_machine.pipeline.arn
      dead_letter_queue = aws_sqs_queue.dead_letter.name
      curated_table     = aws_dynamodb_table.curated.name
      state_table       = aws_dynamodb_table.state.name
      insights_table    = aws_dynamodb_table.insights.name
      request_stream    = aws_kinesis_firehose_delivery_stream.requests.name
    },
    { for key, step in module.step : key => step.function_name },
    { for key, entry in module.entry : key => entry.function_name },
  )
}

output "quicksight_dashboard_arn" {
  description = "The QuickSight dashboard, when enable_quicksight is true (null otherwise)."
  value       = var.enable_quicksight ? aws_cloudformation_stack.quicksight[0].outputs["DashboardArn"] : null
}
