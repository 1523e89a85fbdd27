# Credentials of the CI/ops account assume the deployment role of the dev account
# (modules/deploy-role, applied once from environments/bootstrap).
provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id] # refuses to run against any other account

  assume_role {
    role_arn     = var.deploy_role_arn
    session_name = "eventpipe-dev"
    external_id  = var.external_id
  }

  default_tags {
    tags = {
      project    = "eventpipe"
      stage      = "dev"
      managed-by = "terraform"
    }
  }
}
