variable "project" {
  description = "The first part of every resource name."
  type        = string
  default     = "eventpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.project))
    error_message = "The project is 2 to 16 lowercase letters or digits, starting with a letter."
  }
}

variable "stage" {
  description = "The deployment stage; resources are named <project>-<stage>-..., as the SAM stack eventpipe-<stage> names them."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.stage))
    error_message = "The stage is 2 to 10 lowercase letters or digits, starting with a letter (dev, prod, ...)."
  }
}

variable "lambda_package" {
  description = "Path of the pre-built deployment package (zip): src/ plus the requirements.txt wheels for Linux arm64 and Python 3.12. See the README of infrastructure/terraform."
  type        = string

  validation {
    condition     = endswith(var.lambda_package, ".zip")
    error_message = "The deployment package is a .zip file."
  }
}

variable "jwt_issuer" {
  description = "Issuer URL of the identity provider whose JSON Web Tokens the HTTP API accepts (the iss claim)."
  type        = string

  validation {
    condition     = can(regex("^https://[^\\s]+$", var.jwt_issuer))
    error_message = "The JWT issuer is an https:// URL."
  }
}

variable "jwt_audiences" {
  description = "Accepted audiences of the JSON Web Tokens (the aud claim, or client_id for access tokens)."
  type        = list(string)

  validation {
    condition     = length(var.jwt_audiences) > 0 && alltrue([for a in var.jwt_audiences : length(trimspace(a)) > 0])
    error_message = "Give at least one non-empty audience."
  }
}

variable "function_settings" {
  description = "Optional EVENTPIPE_* settings for every function (see src/eventpipe/settings.py), e.g. { EVENTPIPE_MAX_BATCH_EVENTS = \"500\" }. The resource names are set by the module."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name in keys(var.function_settings) :
      can(regex("^EVENTPIPE_[A-Z0-9_]+$", name)) && !contains([
        "EVENTPIPE_BUCKET", "EVENTPIPE_CURATED_TABLE", "EVENTPIPE_STATE_TABLE", "EVENTPIPE_INSIGHTS_TABLE",
        "EVENTPIPE_STATE_MACHINE_ARN", "EVENTPIPE_APPS_TABLE", "EVENTPIPE_ANALYTICS_BUCKET", "EVENTPIPE_REQUEST_STREAM",
        "EVENTPIPE_START_FUNCTION", "EVENTPIPE_RANGE_FUNCTION", "EVENTPIPE_DATA_DIR", "EVENTPIPE_PSEUDONYM_KEY",
        # set from curated_ttl_days and raw_retention_days
        "EVENTPIPE_CURATED_TTL_DAYS", "EVENTPIPE_QUARANTINE_TTL_DAYS",
        # set from var.settings
        "EVENTPIPE_MAX_EVENT_BYTES", "EVENTPIPE_MAX_BODY_BYTES", "EVENTPIPE_MAX_BATCH_EVENTS", "EVENTPIPE_MAX_FILE_BYTES",
        "EVENTPIPE_ENRICHERS", "EVENTPIPE_PSEUDONYMISE_FIELDS", "EVENTPIPE_PSEUDONYM_KEY_PARAM",
        "EVENTPIPE_CURRENCY_RATES", "EVENTPIPE_SCHEMA_DIR", "EVENTPIPE_SCHEMA_REFRESH_S", "EVENTPIPE_FILE_RANGE_BYTES",
        "EVENTPIPE_MICROBATCH_BELOW_EVENTS", "EVENTPIPE_GEOIP_DB", "EVENTPIPE_LAKE",
      ], name)
    ])
    error_message = "Settings are EVENTPIPE_* names other than the resource names the module sets, the ones var.settings, curated_ttl_days and raw_retention_days set, the local-only EVENTPIPE_DATA_DIR and EVENTPIPE_PSEUDONYM_KEY (a secret would sit in the state: use settings.pseudonym_key_name)."
  }
}

variable "settings" {
  description = "The pipeline settings of src/eventpipe/settings.py, as the SAM template's parameters (docs/settings.md). pseudonym_key_name names an SSM SecureString under /eventpipe/<project>-<stage>/; currency_rates_key, schema_prefix and geoip_db_key are keys under config/ in the raw bucket."
  type = object({
    max_event_bytes         = optional(number, 65536)
    max_body_bytes          = optional(number, 1048576)
    max_batch_events        = optional(number, 500)
    max_file_bytes          = optional(number, 4294967296)
    enrichers               = optional(string, "all")
    pseudonymise_fields     = optional(string, "")
    pseudonym_key_name      = optional(string, "")
    currency_rates_key      = optional(string, "")
    schema_prefix           = optional(string, "")
    schema_refresh_seconds  = optional(number, 60)
    file_range_bytes        = optional(number, 134217728)
    microbatch_below_events = optional(number, 100)
    geoip_db_key            = optional(string, "")
    lake                    = optional(string, "on")
  })
  default = {}

  validation {
    condition = (
      var.settings.max_event_bytes >= 1 && var.settings.max_event_bytes <= 262144
      && var.settings.max_body_bytes >= 1 && var.settings.max_body_bytes <= 268435456
      && var.settings.max_file_bytes >= 1 && var.settings.max_file_bytes <= 1099511627776
      && var.settings.max_batch_events >= 1 && var.settings.max_batch_events <= 5000
      && var.settings.schema_refresh_seconds >= 10 && var.settings.schema_refresh_seconds <= 86400
      && var.settings.file_range_bytes >= 1048576
      && var.settings.microbatch_below_events >= 1 && var.settings.microbatch_below_events <= 5000
      && can(regex("^$|^config/[A-Za-z0-9_./-]+\\.mmdb$", var.settings.geoip_db_key))
      && contains(["on", "off"], var.settings.lake)
      && can(regex("^(all|none|[a-z_]+(,[a-z_]+)*)$", var.settings.enrichers))
      && can(regex("^$|^[A-Za-z0-9_.]+(,[A-Za-z0-9_.]+)*$", var.settings.pseudonymise_fields))
      && can(regex("^$|^[A-Za-z0-9_.-]{1,100}$", var.settings.pseudonym_key_name))
      && can(regex("^$|^config/[A-Za-z0-9_./-]+\\.json$", var.settings.currency_rates_key))
      && can(regex("^$|^config/([A-Za-z0-9_.-]+/)+$", var.settings.schema_prefix))
      && (var.settings.pseudonymise_fields == "" || var.settings.pseudonym_key_name != "")
    )
    error_message = "Limits within the SAM parameters' bounds; enrichers all, none or names; pseudonymise_fields needs pseudonym_key_name; currency_rates_key config/....json; schema_prefix config/.../; geoip_db_key config/....mmdb; lake on or off."
  }
}

variable "log_retention_days" {
  description = "How long function, workflow and API access logs are kept."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "Use a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, ... days)."
  }
}

variable "export_schedule" {
  description = "How often the insights export runs (an EventBridge schedule expression)."
  type        = string
  default     = "rate(5 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.export_schedule))
    error_message = "Use rate(...) or cron(...)."
  }
}

variable "compact_lake_schedule" {
  description = "How often the lake's compaction runs (an EventBridge schedule expression)."
  type        = string
  default     = "rate(15 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.compact_lake_schedule))
    error_message = "Use rate(...) or cron(...)."
  }
}

variable "replay_schedule" {
  description = "How often the replay function starts again the pending batches received more than 600 s ago (an EventBridge schedule expression)."
  type        = string
  default     = "rate(10 minutes)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.replay_schedule))
    error_message = "Use rate(...) or cron(...)."
  }
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

  validation {
    condition     = var.api_throttling.rate_limit > 0 && var.api_throttling.burst_limit >= 1
    error_message = "Both limits must be positive."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions per function (keys as in src/lambda_pipeline.py, e.g. ingest); functions not named stay unreserved."
  type        = map(number)
  default     = {}

  validation {
    condition = alltrue([
      for name, value in var.reserved_concurrency :
      contains(["ingest", "process_batch", "mark_done", "mark_failed", "export_insights", "fold_insights", "replay", "start_batches", "erase", "compact_lake", "write_lake"], name) && value >= 0
    ])
    error_message = "Keys are function names of src/lambda_pipeline.py; values are 0 or more."
  }
}

variable "curated_ttl_days" {
  description = "Days a curated event's DynamoDB item lives (TTL): the deduplication window. An event sent again later is curated again; the raw bucket and the insights export keep what lasts."
  type        = number
  default     = 7

  validation {
    condition     = var.curated_ttl_days >= 1 && var.curated_ttl_days <= 36500
    error_message = "From one day to 36500 (the functions refuse more)."
  }
}

variable "raw_retention_days" {
  description = "Days to keep incoming/, raw/, requests/ and rejected/ objects, and quarantine records (DynamoDB TTL). A pending or failed batch can be replayed only while its raw/ object exists, a rejected event while its record does: keep this longer than the time needed to notice and replay failures."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_retention_days >= 1 && var.raw_retention_days <= 36500
    error_message = "From one day to 36500 (the functions refuse more)."
  }
}

variable "lake_retention_days" {
  description = "Days to keep the lake's objects (events/, lake-unreadable/) in the analytics bucket, counted from each object's last write (an S3 lifecycle rule); 0 keeps them. The local EVENTPIPE_LAKE_RETENTION_DAYS."
  type        = number
  default     = 0

  validation {
    condition     = var.lake_retention_days >= 0 && floor(var.lake_retention_days) == var.lake_retention_days
    error_message = "0 (keep) or a whole number of days."
  }
}

variable "staged_retention_days" {
  description = "Days to keep staged/ objects that earlier versions left (the workflow no longer stages batches)."
  type        = number
  default     = 7

  validation {
    condition     = var.staged_retention_days >= 1
    error_message = "At least one day."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days a replaced or deleted object version is kept, in the raw and the analytics bucket (SAM: 7)."
  type        = number
  default     = 7

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "At least one day."
  }
}

variable "glue_database_name" {
  description = "Glue database of the insights export (one per account and region; change it for a second stage in the same account)."
  type        = string
  default     = "eventpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,63}$", var.glue_database_name))
    error_message = "Lowercase letters, digits and underscores, starting with a letter, at most 64."
  }
}

variable "insights_projection_start" {
  description = "First day (YYYY-MM-DD) of the dt partition projection of the insights table."
  type        = string
  default     = "2025-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.insights_projection_start))
    error_message = "A date as YYYY-MM-DD."
  }
}

variable "events_authorization" {
  description = "How POST /events is authorized: write_key (apps' write keys, checked by the ingest function; browsers can send) or jwt (the JWT authorizer as well, for server-to-server senders only)."
  type        = string
  default     = "write_key"

  validation {
    condition     = contains(["write_key", "jwt"], var.events_authorization)
    error_message = "events_authorization is write_key or jwt."
  }
}

variable "deletion_protection" {
  description = "Protect the DynamoDB tables against deletion, and refuse to destroy buckets that hold objects (the SAM template retains tables and buckets)."
  type        = bool
  default     = true
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary for every role the module creates (the output of modules/deploy-role); null for none."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "The permissions boundary is an IAM policy ARN."
  }
}

variable "tags" {
  description = "Tags for every resource (on top of the provider's default tags)."
  type        = map(string)
  default     = {}
}

variable "enable_quicksight" {
  description = "Deploy the QuickSight data source, data sets and dashboard (infrastructure/quicksight.yaml, as the SAM parameter EnableQuickSight); needs a QuickSight subscription."
  type        = bool
  default     = false
}

variable "quicksight_principal_arn" {
  description = "The QuickSight user or group ARN given the QuickSight resources (required with enable_quicksight)."
  type        = string
  default     = null

  validation {
    condition     = var.quicksight_principal_arn == null || can(regex("^arn:aws[a-z-]*:quicksight:.+$", var.quicksight_principal_arn))
    error_message = "A QuickSight user or group ARN (arn:aws:quicksight:<region>:<account>:user/... or group/...), or null."
  }
}
