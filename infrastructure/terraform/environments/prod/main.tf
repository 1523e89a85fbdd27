# The prod stage: the pipeline and its alarms, in the prod account.

# Every variable of the pipeline module is passed on (unset: the module's default), but project, which
# names the resources the deployment role may manage (modules/deploy-role: eventpipe-*), and tags: the
# provider's default_tags (providers.tf) tag every resource of the stage.
module "pipeline" {
  source = "../../modules/pipeline"

  stage                             = "prod"
  lambda_package                    = var.lambda_package
  jwt_issuer                        = var.jwt_issuer
  jwt_audiences                     = var.jwt_audiences
  function_settings                 = var.function_settings
  settings                          = var.settings
  enable_quicksight                 = var.enable_quicksight
  quicksight_principal_arn          = var.quicksight_principal_arn
  log_retention_days                = var.log_retention_days
  api_throttling                    = var.api_throttling
  raw_retention_days                = var.raw_retention_days
  lake_retention_days               = var.lake_retention_days
  curated_ttl_days                  = var.curated_ttl_days
  staged_retention_days             = var.staged_retention_days
  glue_database_name                = var.glue_database_name
  insights_projection_start         = var.insights_projection_start
  events_authorization              = var.events_authorization
  reserved_concurrency              = var.reserved_concurrency
  export_schedule                   = var.export_schedule
  compact_lake_schedule             = var.compact_lake_schedule
  replay_schedule                   = var.replay_schedule
  noncurrent_version_retention_days = var.noncurrent_version_retention_days
  deletion_protection               = true
  permissions_boundary_arn          = var.permissions_boundary_arn
}

module "monitoring" {
  source = "../../modules/monitoring"

  stack_name  = module.pipeline.name
  resources   = module.pipeline.monitored_resources
  alarm_email = var.alarm_email

  detailed_monitoring = var.detailed_monitoring
}
