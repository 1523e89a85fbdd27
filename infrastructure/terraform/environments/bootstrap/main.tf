# The deployment role of one target account (dev or prod), trusted by the CI/ops account.

module "deploy_role" {
  source = "../../modules/deploy-role"

  trusted_principal_arns = var.trusted_principal_arns
  external_id            = var.external_id
  glue_database_name     = var.glue_database_name
}
