variable "stack_name" {
  description = "The stage's name prefix, <project>-<stage>: alarms are named <stack_name>-<alert name>, as the SAM stack names them."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.stack_name))
    error_message = "Lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "resources" {
  description = "What the dimensions of monitoring/alerts.yml name, by the keys of its `resources` (function names, table names, the API id, ...): the monitored_resources output of modules/pipeline."
  type        = map(string)
}

variable "alarm_email" {
  description = "Optional address subscribed to both alarm topics (critical and warning); null for none."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "An e-mail address, or null."
  }
}

variable "detailed_monitoring" {
  description = "Add the `level: detailed` alarms of monitoring/alerts.yml (38 more alarm metrics, $3.80 a month) and the dashboard ($3 a month past an account's first three); the core alarms are always there. SAM: DetailedMonitoring."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the topics and alarms."
  type        = map(string)
  default     = {}
}
