variable "region" {
  description = "The AWS region of the stage."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "An AWS region such as eu-west-1."
  }
}

variable "account_id" {
  description = "The target account (12 digits): the provider refuses to run against another."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "An AWS account id has 12 digits."
  }
}

variable "deploy_role_arn" {
  description = "The deployment role of the target account (output role_arn of environments/bootstrap)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::${var.account_id}:role/.+$", var.deploy_role_arn))
    error_message = "The deployment role is an IAM role ARN in the target account (account_id)."
  }
}

variable "external_id" {
  description = "The sts:ExternalId the deployment role requires, if it requires one."
  type        = string
  default     = null
  sensitive   = true
}

variable "permissions_boundary_arn" {
  description = "The boundary the deployment role requires on every role it creates (output permissions_boundary_arn of environments/bootstrap)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::${var.account_id}:policy/.+$", var.permissions_boundary_arn))
    error_message = "The permissions boundary is an IAM policy ARN in the target account (account_id)."
  }
}

variable "lambda_package" {
  description = "Path of the pre-built deployment package (zip), relative to this directory; see the README of infrastructure/terraform."
  type        = string
}

variable "jwt_issuer" {
  description = "Issuer URL of the JSON Web Tokens the HTTP API accepts."
  type        = string
}

variable "jwt_audiences" {
  description = "Accepted audiences of the JSON Web Tokens."
  type        = list(string)
}

variable "settings" {
  description = "The pipeline settings (limits, enrichers, pseudonymised fields and the SSM parameter of their key, currency rates, schemas and the GeoIP database in S3, micro-batching, the lake switch): see modules/pipeline, variable settings."
  type        = any
  default     = {}
}

variable "function_settings" {
  description = "Optional EVENTPIPE_* settings for every function (src/eventpipe/settings.py)."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "How long function, workflow and API access logs are kept."
  type        = number
  default     = 30
}

variable "api_throttling" {
  description = "Default route throttling of the HTTP API: steady requests per second and burst."
  type = object({
    rate_limit  = number
    burst_limit = number
  })
  default = {
    rate_limit  = 100
    burst_limit = 200
  }
}

variable "raw_retention_days" {
  description = "Days to keep incoming/, raw/, requests/ and rejected/ objects, and quarantine items (a failed batch can be replayed only while its raw/ object exists, a rejected event while its item does)."
  type        = number
  default     = 30
}

variable "lake_retention_days" {
  description = "Days to keep the lake's objects in the analytics bucket, from their last write; 0 keeps them."
  type        = number
  default     = 0
}

variable "curated_ttl_days" {
  description = "Days a curated event's DynamoDB item lives: the deduplication window (SAM: CuratedTtlDays)."
  type        = number
  default     = 7
}

variable "staged_retention_days" {
  description = "Days to keep staged/ objects that earlier versions left (SAM: StagedRetentionDays)."
  type        = number
  default     = 7
}

variable "noncurrent_version_retention_days" {
  description = "Days a replaced or deleted object version is kept, in both buckets (the erasure reads them)."
  type        = number
  default     = 7
}

variable "glue_database_name" {
  description = "Glue database of the insights export and the lake's table; the same as the bootstrap's glue_database_name, which the deployment role may manage."
  type        = string
  default     = "eventpipe"
}

variable "insights_projection_start" {
  description = "First day (YYYY-MM-DD) of the dt partition projection of the insights tables."
  type        = string
  default     = "2025-01-01"
}

variable "events_authorization" {
  description = "How POST /events is authorized: write_key, or jwt (the JWT authorizer as well, for server-to-server senders only)."
  type        = string
  default     = "write_key"
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions per function (keys as in src/lambda_pipeline.py, e.g. ingest); functions not named stay unreserved."
  type        = map(number)
  default     = {}
}

variable "export_schedule" {
  description = "How often the insights export runs (an EventBridge schedule expression)."
  type        = string
  default     = "rate(5 minutes)"
}

variable "compact_lake_schedule" {
  description = "How often the lake's compaction runs (an EventBridge schedule expression)."
  type        = string
  default     = "rate(15 minutes)"
}

variable "replay_schedule" {
  description = "How often replay starts again the pending batches received more than 600 s ago (an EventBridge schedule expression)."
  type        = string
  default     = "rate(10 minutes)"
}

variable "alarm_email" {
  description = "Optional address subscribed to the alarm topics; null for none."
  type        = string
  default     = null
}

variable "detailed_monitoring" {
  description = "Add the detailed alarms (per function, throttles, rejections, freshness) and the CloudWatch dashboard to the core alarms: about $6.80 a month more (docs/cost.md)."
  type        = bool
  default     = false
}

variable "enable_quicksight" {
  description = "Deploy the QuickSight dashboard over the insights export (needs a QuickSight subscription)."
  type        = bool
  default     = false
}

variable "quicksight_principal_arn" {
  description = "The QuickSight user or group ARN given the dashboard (required with enable_quicksight)."
  type        = string
  default     = null
}
