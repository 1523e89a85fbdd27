output "alarm_names" {
  description = "The alarms, by the name of their alert in monitoring/alerts.yml."
  value       = { for name, alarm in aws_cloudwatch_metric_alarm.this : name => alarm.alarm_name }
}

output "topic_arns" {
  description = "The alarm topics by severity (critical, warning): subscribe pagers and chat here."
  value       = { for severity, topic in aws_sns_topic.alarms : severity => topic.arn }
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of the stage; null unless detailed_monitoring."
  value       = one(aws_cloudwatch_dashboard.this[*].dashboard_name)
}
