# The QuickSight dashboard over the export's Athena tables, when enable_quicksight is true. Its
# definition is infrastructure/quicksight.yaml, the template the SAM stack nests: deployed here as a
# CloudFormation stack, so that SAM and Terraform deploy one definition (tests/infra/test_quicksight.py).

resource "aws_cloudformation_stack" "quicksight" {
  #checkov:skip=CKV_AWS_124:the stack holds only the QuickSight resources Terraform manages; no one needs its events on SNS
  count = var.enable_quicksight ? 1 : 0

  name          = "${local.name}-quicksight"
  template_body = file("${path.module}/../../../quicksight.yaml")
  parameters = {
    NamePrefix       = local.name
    PrincipalArn     = var.quicksight_principal_arn
    AthenaWorkGroup  = aws_athena_workgroup.insights.name
    GlueDatabaseName = aws_glue_catalog_database.insights.name
    MinuteTable      = aws_glue_catalog_table.insights["minute_counts"].name
    HourTable        = aws_glue_catalog_table.insights["hour_uniques"].name
    DayTable         = aws_glue_catalog_table.insights["day_uniques"].name
  }
  tags = local.tags

  lifecycle {
    precondition {
      condition     = var.quicksight_principal_arn != null
      error_message = "enable_quicksight needs quicksight_principal_arn: the QuickSight user or group given the dashboard."
    }
  }
}
