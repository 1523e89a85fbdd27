# Credentials of the CI/ops account assume the deployment role of the prod account
# (modules/deploy-role, applied once from environments/bootstrap).
provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id] # refuses to run against any other account

  assume_role {
    role_arn     = var.deploy_role_arn
    session_name = "eventpipe-prod"
    external_id  = var.external_id
  }

  default_tags {
    tags = {
      project    = "eventpipe"
      stage      = "prod"
      managed-by = "terraform"
    }
  }
}
