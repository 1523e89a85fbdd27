output "api_url" {
  description = "Base URL of the HTTP API."
  value       = module.pipeline.api_url
}

output "raw_bucket_name" {
  description = "The raw bucket; drop files under incoming/."
  value       = module.pipeline.raw_bucket_name
}

output "analytics_bucket_name" {
  description = "The analytics bucket: the insights export and the lake, which Athena and QuickSight read."
  value       = module.pipeline.analytics_bucket_name
}

output "table_names" {
  description = "The DynamoDB tables by role: curated, state, insights, apps (eventpipe apps create --aws-table)."
  value       = module.pipeline.table_names
}

output "state_machine_arn" {
  description = "The workflow's ARN."
  value       = module.pipeline.state_machine_arn
}

output "function_names" {
  description = "Function names by entry point (aws lambda invoke --function-name <replay> --payload '{}' out.json)."
  value       = module.pipeline.function_names
}

output "dead_letter_queue_url" {
  description = "The queue of asynchronous invocations that failed for good."
  value       = module.pipeline.dead_letter_queue_url
}

output "athena_workgroup_name" {
  description = "The Athena workgroup for the insights table."
  value       = module.pipeline.athena_workgroup_name
}

output "alarm_topic_arns" {
  description = "The alarm topics by severity."
  value       = module.monitoring.topic_arns
}

output "dashboard_name" {
  description = "The CloudWatch dashboard (null unless detailed_monitoring)."
  value       = module.monitoring.dashboard_name
}
