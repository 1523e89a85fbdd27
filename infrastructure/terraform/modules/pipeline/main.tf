# The eventpipe pipeline on AWS: the resources of infrastructure/template.yaml (SAM), for accounts
# managed with Terraform. tests/infra/test_terraform.py compares the two, and this module with the
# code (src/lambda_pipeline.py, settings.py, adapters/aws/tables.py and the ASL file).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name       = "${var.project}-${var.stage}" # the SAM stack's name, eventpipe-<stage>
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.region
  partition  = data.aws_partition.current.partition
  tags       = merge(var.tags, { "eventpipe:stage" = var.stage })

  # The one workflow definition: Step Functions runs it in AWS, the local interpreter on one machine.
  workflow_definition_file = "${path.module}/../../../../src/eventpipe/workflow/pipeline.asl.json"

  # The entry points of src/lambda_pipeline.py (handler lambda_pipeline.<key>), with the memory and
  # timeout of the SAM template; monitoring/alerts.yml holds the same timeouts for the duration alarms.
  functions = {
    ingest          = { memory_mb = 512, timeout_s = 300, description = "HTTP API, object-created events in incoming/ and requests/, and direct {\"events\":[...]} invocations." }
    process_batch   = { memory_mb = 512, timeout_s = 60, description = "Workflow step ProcessBatch (validate, enrich, persist and aggregate a batch in one pass)." }
    mark_done       = { memory_mb = 256, timeout_s = 30, description = "Workflow step MarkDone." }
    mark_failed     = { memory_mb = 256, timeout_s = 30, description = "Workflow step MarkFailed." }
    export_insights = { memory_mb = 1024, timeout_s = 120, description = "Scheduled export of the hours of insights changed since the last export, to the analytics bucket." }
    fold_insights   = { memory_mb = 512, timeout_s = 60, description = "The insights table's stream; batches' deltas counted into their minutes, each once." }
    replay          = { memory_mb = 512, timeout_s = 900, description = "Replay of unfinished batches (lost pending ones on a schedule) or of the quarantine." }
    start_batches   = { memory_mb = 256, timeout_s = 30, description = "Starts a batch whose workflow start failed at ingest (invoked asynchronously by ingest)." }
    erase           = { memory_mb = 2048, timeout_s = 900, description = "Erasure of a user's events from the lake, the curated table, the quarantine and the raw bucket." }
    compact_lake    = { memory_mb = 2048, timeout_s = 900, description = "Scheduled compaction of the lake's small Parquet objects, per hour, in the analytics bucket." }
    write_lake      = { memory_mb = 1024, timeout_s = 60, description = "The curated table's stream; each newly curated event into the lake (Parquet), once." }
  }

  # The workflow's tasks, by the substitution variable the ASL file names them with.
  workflow_steps = {
    process_batch = "ProcessBatchFunctionArn"
    mark_done     = "MarkDoneFunctionArn"
    mark_failed   = "MarkFailedFunctionArn"
  }

  # Exactly the calls each function's code makes (src/eventpipe/adapters/aws/), as in the SAM
  # template; resources are keys of local.policy_resources (functions.tf).
  policies = {
    ingest = [
      { sid = "ReadDrops", actions = ["s3:GetObject", "s3:GetObjectVersion"], resources = ["bucket/incoming/*", "bucket/requests/*"] },
      { sid = "WriteRawBatches", actions = ["s3:PutObject"], resources = ["bucket/raw/*"] },
      { sid = "DeleteGroupedRequests", actions = ["s3:DeleteObject"], resources = ["bucket/requests/*"] },
      { sid = "MissingKeysAre404", actions = ["s3:ListBucket"], resources = ["bucket"] },
      { sid = "BatchRecords", actions = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query"], resources = ["state_table"] },
      { sid = "ReadInsights", actions = ["dynamodb:Query"], resources = ["insights_table"] },
      { sid = "StartExecutions", actions = ["states:StartExecution"], resources = ["state_machine"] },
      { sid = "WriteKeys", actions = ["dynamodb:GetItem", "dynamodb:Scan"], resources = ["apps_table"] },
      { sid = "HandOnStartsAndRanges", actions = ["lambda:InvokeFunction"], resources = ["start_batches_function", "ingest_function"] },
      { sid = "QueueRequests", actions = ["firehose:PutRecord"], resources = ["request_stream"] },
      { sid = "ReadGroups", actions = ["s3:GetObject"], resources = ["bucket/raw/*"] },
      { sid = "ReadCuratedOwners", actions = ["dynamodb:BatchGetItem"], resources = ["curated_table"] },
    ]
    process_batch = [
      { sid = "ReadSettingsFiles", actions = ["s3:GetObject"], resources = ["bucket/config/*"] },
      { sid = "ReadPseudonymKey", actions = ["ssm:GetParameter"], resources = ["pseudonym_key_parameters"] },
      { sid = "ReadRawBatches", actions = ["s3:GetObject"], resources = ["bucket/raw/*"] },
      { sid = "MissingKeysAre404", actions = ["s3:ListBucket"], resources = ["bucket"] },
      # DynamoBatchStore.get; DynamoQuarantine.for_batch (Query), add and remove: the batch's shared item
      # (conditional PutItem, GetItem, DeleteItem under its version), records of their own (BatchWriteItem)
      {
        sid       = "BatchAndQuarantine"
        actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
        resources = ["state_table"]
      },
      { sid = "PutCurated", actions = ["dynamodb:PutItem"], resources = ["curated_table"] },
      # DynamoInsightsStore.apply: the batch's delta, a conditional PutItem
      { sid = "ApplyInsights", actions = ["dynamodb:PutItem"], resources = ["insights_table"] },
    ]
    mark_done = [
      { sid = "FinishBatch", actions = ["dynamodb:UpdateItem"], resources = ["state_table"] },
    ]
    mark_failed = [
      { sid = "FailBatch", actions = ["dynamodb:UpdateItem"], resources = ["state_table"] },
    ]
    # InsightsFold: minute items read and written, dirty hours; its stream event source
    fold_insights = [
      { sid = "FoldInsights", actions = ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], resources = ["insights_table"] },
      { sid = "ReadDeltas", actions = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"], resources = ["insights_stream"] },
    ]
    # adapters/aws/lake_stream.py: the curated table's stream into Parquet; erasure tombstones read, the
    # curated items of events an erasure left out deleted
    write_lake = [
      { sid = "WriteLake", actions = ["s3:PutObject"], resources = ["analytics_bucket/events/*", "analytics_bucket/lake-unreadable/*"] },
      { sid = "ReadTombstones", actions = ["dynamodb:Query"], resources = ["state_table"] },
      { sid = "DeleteErasedCurated", actions = ["dynamodb:BatchWriteItem"], resources = ["curated_table"] },
      { sid = "ReadInserts", actions = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"], resources = ["curated_stream"] },
      # the mapping's on-failure destination: a batch whose records left the stream, described
      { sid = "DescribeLostBatches", actions = ["sqs:SendMessage"], resources = ["dead_letter_queue"] },
    ]
    export_insights = [
      { sid = "ReadInsights", actions = ["dynamodb:Query", "dynamodb:DeleteItem"], resources = ["insights_table"] },
      { sid = "WriteExport", actions = ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], resources = ["analytics_bucket/*"] },
      { sid = "ListSketches", actions = ["s3:ListBucket"], resources = ["analytics_bucket"] },
    ]
    replay = [
      { sid = "Batches", actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"], resources = ["state_table"] },
      { sid = "UnfinishedIndex", actions = ["dynamodb:Query"], resources = ["state_table/index/unfinished"] },
      { sid = "WriteReplayBatches", actions = ["s3:PutObject"], resources = ["bucket/raw/*"] },
      { sid = "StartExecutions", actions = ["states:StartExecution"], resources = ["state_machine"] },
    ]
    start_batches = [
      { sid = "ReadBatchRecord", actions = ["dynamodb:GetItem"], resources = ["state_table"] },
      { sid = "StartExecutions", actions = ["states:StartExecution"], resources = ["state_machine"] },
    ]
    # adapters/aws/lake_compaction.py: merge an hour's objects (journalled), skip unfinished batches' objects
    compact_lake = [
      { sid = "MergeLakeObjects", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources = ["analytics_bucket/events/*"] },
      { sid = "CompactionJournal", actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], resources = ["analytics_bucket/lake-compaction/*"] },
      { sid = "ListLake", actions = ["s3:ListBucket"], resources = ["analytics_bucket"] },
      { sid = "UnfinishedIndex", actions = ["dynamodb:Query"], resources = ["state_table/index/unfinished"] },
      { sid = "LakeLease", actions = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"], resources = ["state_table"] },
    ]
    # adapters/aws/erasure.py: the lake and the raw bucket rewritten (old versions read, deleted), curated items
    # and quarantine records deleted; the enrichment settings for the pseudonym key
    erase = [
      { sid = "ReadSettingsFiles", actions = ["s3:GetObject"], resources = ["bucket/config/*"] },
      { sid = "ReadPseudonymKey", actions = ["ssm:GetParameter"], resources = ["pseudonym_key_parameters"] },
      { sid = "RewriteLake", actions = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"], resources = ["analytics_bucket/events/*", "analytics_bucket/lake-unreadable/*"] },
      { sid = "ListLake", actions = ["s3:ListBucket", "s3:ListBucketVersions"], resources = ["analytics_bucket"] },
      { sid = "RewriteRaw", actions = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObjectVersion"], resources = ["bucket/raw/*", "bucket/incoming/*", "bucket/rejected/*", "bucket/staged/*"] },
      { sid = "ForgetRequestObjects", actions = ["s3:GetObjectVersion", "s3:DeleteObjectVersion"], resources = ["bucket/requests/*"] },
      { sid = "ListRaw", actions = ["s3:ListBucket", "s3:ListBucketVersions"], resources = ["bucket"] },
      { sid = "DeleteCurated", actions = ["dynamodb:BatchWriteItem"], resources = ["curated_table"] },
      # DynamoQuarantine.iter_all (Scan) and remove (Query, BatchWriteItem, the shared item under its version);
      # ErasureTombstones.record (PutItem); the lake's lease (lake_lease.py: PutItem, UpdateItem, DeleteItem)
      {
        sid       = "Quarantine"
        actions   = ["dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"]
        resources = ["state_table"]
      },
    ]
  }

  # Environment of every function: the resource names eventpipe.settings.AwsResources reads at cold
  # start, and the Powertools names.
  common_environment = {
    EVENTPIPE_BUCKET              = aws_s3_bucket.raw.id
    EVENTPIPE_CURATED_TABLE       = aws_dynamodb_table.curated.name
    EVENTPIPE_STATE_TABLE         = aws_dynamodb_table.state.name
    EVENTPIPE_INSIGHTS_TABLE      = aws_dynamodb_table.insights.name
    EVENTPIPE_APPS_TABLE          = aws_dynamodb_table.apps.name
    EVENTPIPE_CURATED_TTL_DAYS    = tostring(var.curated_ttl_days)
    EVENTPIPE_QUARANTINE_TTL_DAYS = tostring(var.raw_retention_days)
    POWERTOOLS_SERVICE_NAME       = "eventpipe"
    POWERTOOLS_METRICS_NAMESPACE  = "eventpipe"
  }

  # The settings, as the SAM template's Globals set them from its parameters: values, or names of
  # where a value is (S3 keys, the SSM parameter), never a secret.
  settings_environment = {
    EVENTPIPE_MAX_EVENT_BYTES         = tostring(var.settings.max_event_bytes)
    EVENTPIPE_MAX_BODY_BYTES          = tostring(var.settings.max_body_bytes)
    EVENTPIPE_MAX_BATCH_EVENTS        = tostring(var.settings.max_batch_events)
    EVENTPIPE_MAX_FILE_BYTES          = tostring(var.settings.max_file_bytes)
    EVENTPIPE_ENRICHERS               = var.settings.enrichers
    EVENTPIPE_PSEUDONYMISE_FIELDS     = var.settings.pseudonymise_fields
    EVENTPIPE_PSEUDONYM_KEY_PARAM     = var.settings.pseudonym_key_name == "" ? "" : "/eventpipe/${local.name}/${var.settings.pseudonym_key_name}"
    EVENTPIPE_CURRENCY_RATES          = var.settings.currency_rates_key == "" ? "" : "s3://${aws_s3_bucket.raw.id}/${var.settings.currency_rates_key}"
    EVENTPIPE_SCHEMA_DIR              = var.settings.schema_prefix == "" ? "" : "s3://${aws_s3_bucket.raw.id}/${var.settings.schema_prefix}"
    EVENTPIPE_SCHEMA_REFRESH_S        = tostring(var.settings.schema_refresh_seconds)
    EVENTPIPE_FILE_RANGE_BYTES        = tostring(var.settings.file_range_bytes)
    EVENTPIPE_MICROBATCH_BELOW_EVENTS = tostring(var.settings.microbatch_below_events)
    EVENTPIPE_GEOIP_DB                = var.settings.geoip_db_key == "" ? "" : "s3://${aws_s3_bucket.raw.id}/${var.settings.geoip_db_key}"
    EVENTPIPE_LAKE                    = var.settings.lake
  }

  # <project>-<stage>-<entry point>, as the SAM stack names them (<stack>-process_batch): one
  # `aws lambda invoke --function-name eventpipe-dev-ingest` for both. At most 27 + 16 of Lambda's 64.
  function_names = { for key in keys(local.functions) : key => "${local.name}-${key}" }
}
