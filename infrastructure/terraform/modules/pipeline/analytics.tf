# The insights export as Athena tables (for QuickSight), JSON lines in the analytics bucket
# (src/eventpipe/core/export.py, docs/aws.md "Analytics export"): additive columns (minute_counts)
# apart from non-additive ones (hour_uniques, day_uniques), so that a sum over rows is always right.
# Partition projection computes the partitions from the key layout: no crawler, no MSCK REPAIR.

locals {
  insights_tables = {
    minute_counts = {
      description = "Per-minute additive insights (curated events by type, revenue, rejections, duplicates); sum freely"
      hourly      = true
      columns = [
        { name = "minute", type = "string", comment = "start of the minute, RFC 3339 UTC" },
        { name = "events", type = "map<string,bigint>", comment = "curated events by event type" },
        { name = "events_total", type = "bigint", comment = null },
        { name = "revenue", type = "double", comment = "in the base currency" },
        { name = "rejected", type = "map<string,bigint>", comment = "rejected events by reason code" },
        { name = "duplicates", type = "bigint", comment = null },
      ]
    }
    hour_uniques = {
      description = "Per-hour unique users and funnel (sketch unions); never sum over hours"
      hourly      = true
      columns = [
        { name = "hour", type = "string", comment = "start of the hour, RFC 3339 UTC" },
        { name = "unique_users", type = "bigint", comment = "HyperLogLog estimate for the hour" },
        { name = "funnel_page_view", type = "bigint", comment = "sessions that viewed a page in the hour" },
        { name = "funnel_add_to_cart", type = "bigint", comment = "of those, sessions that added to the cart in the hour" },
        { name = "funnel_purchase", type = "bigint", comment = "of those, sessions that bought in the hour" },
      ]
    }
    day_uniques = {
      description = "Per-day unique users (sketch union of the day hours); never sum over days"
      hourly      = false
      columns = [
        { name = "day", type = "string", comment = "the UTC day, YYYY-MM-DD" },
        { name = "unique_users", type = "bigint", comment = "HyperLogLog estimate for the day" },
      ]
    }
  }

  projection_dt = {
    "classification"              = "json"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.insights_projection_start},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
  }
  projection_hour = {
    "projection.hour.type"   = "integer"
    "projection.hour.range"  = "0,23"
    "projection.hour.digits" = "2"
  }
}

resource "aws_glue_catalog_database" "insights" {
  name        = var.glue_database_name
  description = "eventpipe insights exported by the export_insights function"
}

resource "aws_glue_catalog_table" "insights" {
  for_each = local.insights_tables

  database_name = aws_glue_catalog_database.insights.name
  name          = each.key
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.projection_dt, each.value.hourly ? local.projection_hour : {}, {
    "storage.location.template" = "s3://${aws_s3_bucket.analytics.id}/${each.key}/dt=$${dt}/${each.value.hourly ? "hour=$${hour}/" : ""}"
  })

  partition_keys {
    name = "dt"
    type = "string"
  }

  dynamic "partition_keys" {
    for_each = each.value.hourly ? ["hour"] : []

    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.analytics.id}/${each.key}/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
    }

    dynamic "columns" {
      for_each = each.value.columns

      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

# The lake (docs/lake.md): every curated event once, Parquet (zstd), written by process_batch and
# compacted per hour by compact_lake; the columns of src/eventpipe/lake/columns.py (a test checks).
locals {
  lake_columns = [
    { name = "event_id", type = "string", comment = "the event's id (a UUID): one row per id" },
    { name = "event_type", type = "string", comment = null },
    { name = "schema_version", type = "string", comment = null },
    { name = "occurred_at", type = "timestamp", comment = "event time, UTC" },
    { name = "received_at", type = "timestamp", comment = "when its batch was received, UTC" },
    { name = "user_id", type = "string", comment = "the pseudonym where pseudonymisation is configured" },
    { name = "anonymous_id", type = "string", comment = null },
    { name = "session_id", type = "string", comment = null },
    { name = "app_id", type = "string", comment = null },
    { name = "browser", type = "string", comment = null },
    { name = "os", type = "string", comment = null },
    { name = "device_type", type = "string", comment = null },
    { name = "bot", type = "boolean", comment = null },
    { name = "country", type = "string", comment = null },
    { name = "utm_source", type = "string", comment = null },
    { name = "utm_medium", type = "string", comment = null },
    { name = "utm_campaign", type = "string", comment = null },
    { name = "referrer_host", type = "string", comment = null },
    { name = "referrer_medium", type = "string", comment = null },
    { name = "revenue", type = "double", comment = "in the base currency" },
    { name = "properties", type = "string", comment = "JSON text" },
    { name = "enrichment", type = "string", comment = "JSON text" },
    { name = "batch_id", type = "string", comment = "the batch that curated the event" },
  ]
}

resource "aws_glue_catalog_table" "events" {
  database_name = aws_glue_catalog_database.insights.name
  name          = "events"
  description   = "Every curated event once (the lake), Parquet partitioned by the event time's UTC day and hour"
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.projection_dt, local.projection_hour, {
    "classification"            = "parquet"
    "parquet.compression"       = "ZSTD"
    "storage.location.template" = "s3://${aws_s3_bucket.analytics.id}/events/dt=$${dt}/hour=$${hour}/"
  })

  partition_keys {
    name = "dt"
    type = "string"
  }

  partition_keys {
    name = "hour"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.analytics.id}/events/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.lake_columns

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
