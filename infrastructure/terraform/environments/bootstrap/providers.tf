# Run once per target account by an administrator: the role assumed here may create IAM roles and
# policies (for example the organisation's OrganizationAccountAccessRole).
provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]

  assume_role {
    role_arn     = var.admin_role_arn
    session_name = "eventpipe-bootstrap"
  }

  default_tags {
    tags = {
      project    = "eventpipe"
      managed-by = "terraform"
    }
  }
}
