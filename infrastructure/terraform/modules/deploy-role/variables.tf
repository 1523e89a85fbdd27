variable "project" {
  description = "The name prefix of the resources the role may manage (<project>-<stage>-...), as in modules/pipeline."
  type        = string
  default     = "eventpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.project))
    error_message = "The project is 2 to 16 lowercase letters or digits, starting with a letter."
  }
}

variable "role_name" {
  description = "Name of the deployment role (the environments' provider assumes it)."
  type        = string
  default     = "eventpipe-deploy"

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.role_name))
    error_message = "An IAM role name: 1 to 64 of letters, digits and +=,.@_-."
  }
}

variable "trusted_principal_arns" {
  description = "IAM roles of the CI/ops account that may assume the deployment role (the CI runner's role, the operators' role)."
  type        = list(string)

  validation {
    condition     = length(var.trusted_principal_arns) > 0 && alltrue([for arn in var.trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "Give at least one IAM role ARN (arn:aws:iam::<12-digit account>:role/...); whole accounts and users are not trusted."
  }
}

variable "external_id" {
  description = "Optional sts:ExternalId the trusted principals must present (for a CI service outside the organisation); null for none."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.external_id == null || can(regex("^[A-Za-z0-9+=,.@:/-]{16,1224}$", var.external_id))
    error_message = "An external id has 16 to 1224 of letters, digits and +=,.@:/-."
  }
}

variable "glue_database_name" {
  description = "The Glue database of the insights export (modules/pipeline's glue_database_name), which the role may manage."
  type        = string
  default     = "eventpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,63}$", var.glue_database_name))
    error_message = "Lowercase letters, digits and underscores, starting with a letter."
  }
}

variable "max_session_duration" {
  description = "Longest session of the role, in seconds (a deployment with table creation takes minutes)."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "Between 3600 and 43200 seconds."
  }
}

variable "tags" {
  description = "Tags for the role and its policies."
  type        = map(string)
  default     = {}
}
