variable "region" {
  description = "Region of the provider (IAM is global; the state key names the account)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "An AWS region such as eu-west-1."
  }
}

variable "account_id" {
  description = "The target account (12 digits) that gets the deployment role."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "An AWS account id has 12 digits."
  }
}

variable "admin_role_arn" {
  description = "A role in the target account that may create IAM roles and policies."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::${var.account_id}:role/.+$", var.admin_role_arn))
    error_message = "An IAM role ARN in the target account (account_id)."
  }
}

variable "trusted_principal_arns" {
  description = "IAM roles of the CI/ops account that may assume the deployment role."
  type        = list(string)
}

variable "external_id" {
  description = "Optional sts:ExternalId the trusted principals must present; null for none."
  type        = string
  default     = null
  sensitive   = true
}

variable "glue_database_name" {
  description = "The Glue database of the insights export in this account (the pipeline's glue_database_name)."
  type        = string
  default     = "eventpipe"
}
