# The insights export as an Athena table (for QuickSight): insights/dt=YYYY-MM-DD/hour=HH/minutes.json,
# one JSON line per minute (src/eventpipe/core/export.py). Partition projection computes the
# partitions from the key layout: no crawler, no MSCK REPAIR.

locals {
  insights_path = "s3://${aws_s3_bucket.raw.id}/insights/"

  insights_columns = [
    { name = "minute", type = "string", comment = "start of the minute, RFC 3339 UTC" },
    { name = "events", type = "map<string,bigint>", comment = "curated events by event type" },
    { name = "events_total", type = "bigint", comment = null },
    { name = "unique_users", type = "bigint", comment = "HyperLogLog estimate for the minute" },
    { name = "revenue", type = "double", comment = "in the base currency" },
    { name = "rejected", type = "map<string,bigint>", comment = "rejected events by reason code" },
    { name = "duplicates", type = "bigint", comment = null },
  ]
}

resource "aws_glue_catalog_database" "insights" {
  name        = var.glue_database_name
  description = "eventpipe per-minute insights exported by the export_insights function"
}

resource "aws_glue_catalog_table" "minutes" {
  database_name = aws_glue_catalog_database.insights.name
  name          = "minutes"
  description   = "Per-minute insights (curated events by type, unique users, revenue, rejections, duplicates)"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "classification"              = "json"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.insights_projection_start},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "projection.hour.type"        = "integer"
    "projection.hour.range"       = "0,23"
    "projection.hour.digits"      = "2"
    "storage.location.template"   = "${local.insights_path}dt=$${dt}/hour=$${hour}/"
  }

  partition_keys {
    name = "dt"
    type = "string"
  }

  partition_keys {
    name = "hour"
    type = "string"
  }

  storage_descriptor {
    location      = local.insights_path
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
    }

    dynamic "columns" {
      for_each = local.insights_columns

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_s3_bucket" "athena_results" {
  #checkov:skip=CKV_AWS_18:holds query results only, expired after 7 days; access is logged by CloudTrail when wanted
  #checkov:skip=CKV_AWS_21:query results are recomputable and expire after 7 days; versions would only keep them longer
  #checkov:skip=CKV_AWS_144:query results are recomputable; no replica needed
  #checkov:skip=CKV_AWS_145:SSE-S3 as in the SAM template; query results are aggregates
  #checkov:skip=CKV2_AWS_62:nothing reacts to query results; no event notifications needed
  bucket        = "${local.name}-athena-results-${local.account_id}-${local.region}"
  force_destroy = true # recomputable results only
  tags          = local.tags
}

resource "aws_s3_bucket_lifecycle_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  rule {
    id     = "expire-results"
    status = "Enabled"

    filter {}

    expiration {
      days = 7
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_athena_workgroup" "insights" {
  name          = "${local.name}-insights"
  description   = "Queries over the eventpipe insights export"
  force_destroy = true
  tags          = local.tags

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = 10737418240 # 10 GiB

    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena_results.id}/results/"

      encryption_configuration {
        encryption_option = "SSE_S3"
      }
    }
  }
}
