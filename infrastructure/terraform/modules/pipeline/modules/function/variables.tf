variable "name" {
  description = "The function's name, also the name of its log group and role."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.name))
    error_message = "A Lambda function name has 1 to 64 letters, digits, hyphens or underscores."
  }
}

variable "handler" {
  description = "The entry point, `lambda_pipeline.<function>` (the module src/lambda_pipeline.py)."
  type        = string

  validation {
    condition     = can(regex("^lambda_pipeline\\.[a-z_]+$", var.handler))
    error_message = "The handler must be lambda_pipeline.<function>: the one entry module the templates name."
  }
}

variable "description" {
  description = "What the function does, shown in the console."
  type        = string
}

variable "package_file" {
  description = "The deployment package: a zip of src/ and the requirements.txt wheels for Linux arm64 and Python 3.12."
  type        = string
}

variable "memory_mb" {
  description = "Memory, which also sets the CPU share."
  type        = number

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "Lambda memory is 128 to 10240 MB."
  }
}

variable "timeout_s" {
  description = "How long one invocation may run, in seconds."
  type        = number

  validation {
    condition     = var.timeout_s >= 1 && var.timeout_s <= 900
    error_message = "A Lambda timeout is 1 to 900 seconds."
  }
}

variable "environment" {
  description = "Environment variables: the resource names and EVENTPIPE_* settings that src/eventpipe/settings.py reads, and the Powertools ones."
  type        = map(string)
}

variable "policy_json" {
  description = "An IAM policy document with the calls the function's code makes (its data access); logging, tracing and the failure destination are added here."
  type        = string
}

variable "log_retention_days" {
  description = "How long the function's logs are kept."
  type        = number
}

variable "async_invocation" {
  description = "For functions invoked asynchronously (EventBridge, schedules): Lambda's retries, and where an invocation that failed them all goes (an SQS queue). Null for functions only ever invoked synchronously."
  type = object({
    maximum_retry_attempts       = number
    maximum_event_age_in_seconds = number
    on_failure_queue_arn         = string
  })
  default = null

  validation {
    condition = var.async_invocation == null ? true : (
      var.async_invocation.maximum_retry_attempts >= 0 && var.async_invocation.maximum_retry_attempts <= 2 &&
      var.async_invocation.maximum_event_age_in_seconds >= 60 && var.async_invocation.maximum_event_age_in_seconds <= 21600
    )
    error_message = "Lambda allows 0 to 2 retries and an event age of 60 to 21600 seconds."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing: Active (Lambda samples, or follows its caller's decision) or PassThrough (only when the caller sampled)."
  type        = string
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "Active or PassThrough."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 leaves the function on the account's unreserved pool."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrency >= -1
    error_message = "Use -1 for no reservation, or a number of executions (0 stops the function)."
  }
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary of the execution role (the deployment role may only create roles that carry it); null for none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource of the function."
  type        = map(string)
  default     = {}
}
