# A deployment role in a target account (dev or prod), assumed from the CI/ops account. It may
# manage only the resources modules/pipeline and modules/monitoring create (names starting with
# <project>-), and it may create IAM roles only with the permissions boundary below, so it cannot
# grant itself or a function more than the boundary allows. Applied once per account, by an
# administrator, from environments/bootstrap.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  prefix    = "${var.project}-"

  boundary_name = "${var.role_name}-boundary"
  boundary_arn  = "arn:${local.partition}:iam::${local.account}:policy/${local.boundary_name}"
  xray_policy   = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"

  # ARNs of the managed resources, in any region of the account.
  arn = {
    bucket        = "arn:${local.partition}:s3:::${local.prefix}*"
    table         = "arn:${local.partition}:dynamodb:*:${local.account}:table/${local.prefix}*"
    function      = "arn:${local.partition}:lambda:*:${local.account}:function:${local.prefix}*"
    role          = "arn:${local.partition}:iam::${local.account}:role/${local.prefix}*"
    state_machine = "arn:${local.partition}:states:*:${local.account}:stateMachine:${local.prefix}*"
    execution     = "arn:${local.partition}:states:*:${local.account}:execution:${local.prefix}*"
    rule          = "arn:${local.partition}:events:*:${local.account}:rule/${local.prefix}*"
    queue         = "arn:${local.partition}:sqs:*:${local.account}:${local.prefix}*"
    topic         = "arn:${local.partition}:sns:*:${local.account}:${local.prefix}*"
    alarm         = "arn:${local.partition}:cloudwatch:*:${local.account}:alarm:${local.prefix}*"
    dashboard     = "arn:${local.partition}:cloudwatch::${local.account}:dashboard/${local.prefix}*"
    workgroup     = "arn:${local.partition}:athena:*:${local.account}:workgroup/${local.prefix}*"
    stack         = "arn:${local.partition}:cloudformation:*:${local.account}:stack/${local.prefix}*/*"
    quicksight = [
      for kind in ["datasource", "dataset", "dashboard"] :
      "arn:${local.partition}:quicksight:*:${local.account}:${kind}/${local.prefix}*"
    ]
    sampling_rule = "arn:${local.partition}:xray:*:${local.account}:sampling-rule/${local.prefix}*"
    log_groups = flatten([
      for group in ["/aws/lambda/", "/aws/vendedlogs/states/", "/aws/apigateway/"] : [
        "arn:${local.partition}:logs:*:${local.account}:log-group:${group}${local.prefix}*",
        "arn:${local.partition}:logs:*:${local.account}:log-group:${group}${local.prefix}*:*",
      ]
    ])
    glue = [
      "arn:${local.partition}:glue:*:${local.account}:catalog",
      "arn:${local.partition}:glue:*:${local.account}:database/${var.glue_database_name}",
      "arn:${local.partition}:glue:*:${local.account}:table/${var.glue_database_name}/*",
      "arn:${local.partition}:glue:*:${local.account}:userDefinedFunction/${var.glue_database_name}/*",
    ]
    apis = [
      "arn:${local.partition}:apigateway:*::/apis",
      "arn:${local.partition}:apigateway:*::/apis/*",
      "arn:${local.partition}:apigateway:*::/tags/*",
    ]
  }
}

# --- The boundary of the roles the pipeline creates: the most a function or the workflow may do ---

data "aws_iam_policy_document" "boundary" {
  statement {
    sid       = "Objects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"]
    resources = [local.arn.bucket, "${local.arn.bucket}/*"]
  }

  statement {
    sid = "Items"
    actions = [
      "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:PutItem",
      "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem",
    ]
    resources = [local.arn.table, "${local.arn.table}/index/*"]
  }

  statement {
    sid       = "Workflow"
    actions   = ["states:StartExecution", "states:DescribeExecution", "lambda:InvokeFunction"]
    resources = [local.arn.state_machine, local.arn.execution, local.arn.function, "${local.arn.function}:*"]
  }

  statement {
    sid       = "FailedInvocations"
    actions   = ["sqs:SendMessage"]
    resources = [local.arn.queue]
  }

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = local.arn.log_groups
  }

  statement {
    #checkov:skip=CKV_AWS_111:X-Ray and log delivery calls take no resource ARN; the roles' own policies grant them, this only caps them
    #checkov:skip=CKV_AWS_356:X-Ray and log delivery calls take no resource ARN; the roles' own policies grant them, this only caps them
    sid = "AccountLevelCalls"
    actions = [
      "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
      "xray:GetSamplingStatisticSummaries",
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "boundary" {
  name        = local.boundary_name
  description = "Permissions boundary of the ${var.project} function and workflow roles"
  policy      = data.aws_iam_policy_document.boundary.json
  tags        = var.tags
}

# --- The deployment role ---------------------------------------------------------------------------

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.trusted_principal_arns
    }

    dynamic "condition" {
      for_each = var.external_id == null ? [] : [var.external_id]

      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = var.role_name
  description          = "Deploys ${var.project} (Terraform) from the CI/ops account"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  max_session_duration = var.max_session_duration
  tags                 = var.tags
}

data "aws_iam_policy_document" "deploy" {
  statement {
    sid = "Buckets"
    actions = [
      "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions",
      "s3:GetBucket*", "s3:PutBucket*", "s3:DeleteBucketPolicy", "s3:GetAccelerateConfiguration",
      "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration", "s3:GetEncryptionConfiguration",
      "s3:PutEncryptionConfiguration", "s3:GetReplicationConfiguration",
    ]
    resources = [local.arn.bucket]
  }

  statement {
    # Emptying a bucket that is destroyed (force_destroy, on stages without deletion protection).
    sid       = "EmptyBucketsOnDestroy"
    actions   = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
    resources = ["${local.arn.bucket}/*"]
  }

  statement {
    sid = "Tables"
    actions = [
      # Describe*: the provider reads backups, TTL, streaming and contributor settings of a table.
      "dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:Describe*", "dynamodb:UpdateTable",
      "dynamodb:UpdateContinuousBackups", "dynamodb:UpdateTimeToLive", "dynamodb:ListTagsOfResource",
      "dynamodb:TagResource", "dynamodb:UntagResource",
    ]
    resources = [local.arn.table, "${local.arn.table}/index/*"]
  }

  statement {
    sid = "Functions"
    actions = [
      "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:Get*", "lambda:ListVersionsByFunction",
      "lambda:ListTags", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration", "lambda:AddPermission",
      "lambda:RemovePermission", "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency",
      "lambda:PutFunctionEventInvokeConfig", "lambda:UpdateFunctionEventInvokeConfig",
      "lambda:DeleteFunctionEventInvokeConfig", "lambda:TagResource", "lambda:UntagResource",
    ]
    resources = [local.arn.function]
  }

  statement {
    sid = "ReadAndDeleteRoles"
    actions = [
      "iam:GetRole", "iam:GetRolePolicy", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole", "iam:ListRoleTags", "iam:TagRole", "iam:UntagRole", "iam:UpdateRole",
      "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:DeleteRole",
    ]
    resources = [local.arn.role]
  }

  statement {
    # Every role the pipeline creates or changes carries the boundary: no escalation past it.
    sid = "WriteRolesWithinTheBoundary"
    actions = [
      "iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary",
      "iam:AttachRolePolicy", "iam:DetachRolePolicy",
    ]
    resources = [local.arn.role]

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.boundary_arn]
    }
  }

  statement {
    sid       = "AttachOnlyTracing"
    effect    = "Deny"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = [local.arn.role]

    condition {
      test     = "ArnNotEquals"
      variable = "iam:PolicyARN"
      values   = [local.xray_policy]
    }
  }

  statement {
    sid       = "PassRolesToThePipelineServices"
    actions   = ["iam:PassRole"]
    resources = [local.arn.role]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com", "states.amazonaws.com"]
    }
  }

  statement {
    # The role's own name matches <project>-*: it may not change itself or its boundary.
    sid       = "NotItself"
    effect    = "Deny"
    actions   = ["iam:*"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/${var.role_name}", local.boundary_arn]
  }

  statement {
    sid = "SamplingRules" # the workflow's fixed-rate X-Ray sampling rule (modules/pipeline/workflow.tf)
    actions = [
      "xray:CreateSamplingRule", "xray:UpdateSamplingRule", "xray:DeleteSamplingRule",
      "xray:TagResource", "xray:UntagResource", "xray:ListTagsForResource",
    ]
    resources = [local.arn.sampling_rule]
  }

  statement {
    sid = "StateMachines"
    actions = [
      "states:CreateStateMachine", "states:DeleteStateMachine", "states:DescribeStateMachine",
      "states:UpdateStateMachine", "states:ListStateMachineVersions", "states:TagResource",
      "states:UntagResource", "states:ListTagsForResource",
    ]
    resources = [local.arn.state_machine]
  }

  statement {
    sid = "LogGroups"
    actions = [
      "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
      "logs:TagResource", "logs:UntagResource", "logs:ListTagsForResource", "logs:TagLogGroup",
      "logs:UntagLogGroup", "logs:ListTagsLogGroup",
    ]
    resources = local.arn.log_groups
  }

  statement {
    #checkov:skip=CKV_AWS_111:log delivery for Step Functions and API access logs is configured through account-level calls that take no resource ARN
    #checkov:skip=CKV_AWS_356:log delivery for Step Functions and API access logs is configured through account-level calls that take no resource ARN
    sid = "LogDelivery"
    actions = [
      "logs:DescribeLogGroups", "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    ]
    resources = ["*"]
  }

  statement {
    # HTTP API ids are generated: the APIs of the account's regions, not a name prefix.
    sid       = "HttpApis"
    actions   = ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE", "apigateway:TagResource", "apigateway:UntagResource"]
    resources = local.arn.apis
  }

  statement {
    sid = "Rules"
    actions = [
      "events:PutRule", "events:DeleteRule", "events:DescribeRule", "events:EnableRule", "events:DisableRule",
      "events:PutTargets", "events:RemoveTargets", "events:ListTargetsByRule", "events:TagResource",
      "events:UntagResource", "events:ListTagsForResource",
    ]
    resources = [local.arn.rule]
  }

  statement {
    sid = "Queues"
    actions = [
      "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:GetQueueUrl",
      "sqs:TagQueue", "sqs:UntagQueue", "sqs:ListQueueTags",
    ]
    resources = [local.arn.queue]
  }

  statement {
    sid = "AlarmTopics"
    actions = [
      "sns:CreateTopic", "sns:DeleteTopic", "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:TagResource",
      "sns:UntagResource", "sns:ListTagsForResource", "sns:Subscribe", "sns:Unsubscribe",
      "sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes", "sns:ListSubscriptionsByTopic",
    ]
    resources = [local.arn.topic]
  }

  statement {
    sid = "AlarmsAndDashboards"
    actions = [
      "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:TagResource",
      "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource", "cloudwatch:PutDashboard",
      "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards",
    ]
    resources = [local.arn.alarm, local.arn.dashboard]
  }

  statement {
    sid = "InsightsCatalog"
    actions = [
      "glue:CreateDatabase", "glue:GetDatabase", "glue:UpdateDatabase", "glue:DeleteDatabase", "glue:CreateTable",
      "glue:GetTable", "glue:GetTables", "glue:UpdateTable", "glue:DeleteTable", "glue:GetTags", "glue:TagResource",
      "glue:UntagResource",
      # The AWS provider reads a table's partition indexes whenever it reads aws_glue_catalog_table.
      "glue:GetPartitionIndexes",
    ]
    resources = local.arn.glue
  }

  statement {
    sid = "InsightsWorkgroup"
    actions = [
      "athena:CreateWorkGroup", "athena:GetWorkGroup", "athena:UpdateWorkGroup", "athena:DeleteWorkGroup",
      "athena:TagResource", "athena:UntagResource", "athena:ListTagsForResource",
    ]
    resources = [local.arn.workgroup]
  }

  # enable_quicksight: the dashboard's CloudFormation stack (infrastructure/quicksight.yaml), which
  # creates the QuickSight resources with this role's credentials.
  statement {
    sid = "QuickSightStack"
    actions = [
      "cloudformation:CreateStack", "cloudformation:UpdateStack", "cloudformation:DeleteStack",
      "cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents", "cloudformation:GetTemplate",
      "cloudformation:TagResource", "cloudformation:UntagResource",
    ]
    resources = [local.arn.stack]
  }

  statement {
    sid = "QuickSightDashboard"
    actions = [
      "quicksight:CreateDataSource", "quicksight:DescribeDataSource", "quicksight:UpdateDataSource",
      "quicksight:DeleteDataSource", "quicksight:PassDataSource", "quicksight:UpdateDataSourcePermissions",
      "quicksight:DescribeDataSourcePermissions", "quicksight:CreateDataSet", "quicksight:DescribeDataSet",
      "quicksight:UpdateDataSet", "quicksight:DeleteDataSet", "quicksight:PassDataSet",
      "quicksight:UpdateDataSetPermissions", "quicksight:DescribeDataSetPermissions", "quicksight:CreateDashboard",
      "quicksight:DescribeDashboard", "quicksight:UpdateDashboard", "quicksight:DeleteDashboard",
      "quicksight:UpdateDashboardPermissions", "quicksight:DescribeDashboardPermissions",
      "quicksight:UpdateDashboardPublishedVersion", "quicksight:DescribeDashboardDefinition",
      "quicksight:TagResource", "quicksight:UntagResource", "quicksight:ListTagsForResource",
    ]
    resources = local.arn.quicksight
  }
}

resource "aws_iam_policy" "deploy" {
  name        = var.role_name
  description = "What the ${var.project} deployment may manage: resources named ${local.prefix}*, roles within the boundary"
  policy      = data.aws_iam_policy_document.deploy.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "deploy" {
  role       = aws_iam_role.deploy.name
  policy_arn = aws_iam_policy.deploy.arn
}
