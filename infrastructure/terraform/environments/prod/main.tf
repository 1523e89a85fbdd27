# The prod stage: the pipeline and its alarms, in the prod account.

module "pipeline" {
  source = "../../modules/pipeline"

  stage                    = "prod"
  lambda_package           = var.lambda_package
  jwt_issuer               = var.jwt_issuer
  jwt_audiences            = var.jwt_audiences
  function_settings        = var.function_settings
  settings                 = var.settings
  enable_quicksight        = var.enable_quicksight
  quicksight_principal_arn = var.quicksight_principal_arn
  log_retention_days       = var.log_retention_days
  api_throttling           = var.api_throttling
  raw_retention_days       = var.raw_retention_days
  lake_retention_days      = var.lake_retention_days
  deletion_protection      = true
  permissions_boundary_arn = var.permissions_boundary_arn
}

module "monitoring" {
  source = "../../modules/monitoring"

  stack_name  = module.pipeline.name
  resources   = module.pipeline.monitored_resources
  alarm_email = var.alarm_email

  detailed_monitoring = var.detailed_monitoring
}
