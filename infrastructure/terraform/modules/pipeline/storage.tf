# The raw bucket: incoming/ (file drops), raw/ (accepted batches: the acknowledgement) and staged/
# (left by earlier versions); the insights export goes to the analytics bucket. Object-created events go to
# EventBridge, and only the rule filtered on incoming/ invokes ingest (triggers.tf): the pipeline's own
# writes never trigger it.

resource "aws_s3_bucket" "raw" {
  #checkov:skip=CKV_AWS_18:data-plane access is logged by CloudTrail data events when wanted; server access logs would need another bucket per stage
  #checkov:skip=CKV_AWS_144:no cross-region replication: raw batches are inputs kept for replay, expired after raw_retention_days
  #checkov:skip=CKV_AWS_145:SSE-S3 as in the SAM template: a customer key adds cost and a key policy for every function
  # Account and region make the name globally unique.
  bucket        = "${local.name}-raw-${local.account_id}-${local.region}"
  force_destroy = !var.deletion_protection
  tags          = local.tags
}

# The analytics bucket: the insights export (minute_counts/, hour_uniques/, day_uniques/, sketches/),
# all Athena and QuickSight read; only export_insights writes it. Raw events (raw IPs) never go there.
resource "aws_s3_bucket" "analytics" {
  #checkov:skip=CKV_AWS_18:data-plane access is logged by CloudTrail data events when wanted; server access logs would need another bucket per stage
  #checkov:skip=CKV_AWS_144:no cross-region replication: the export is recomputable from the insights table
  #checkov:skip=CKV_AWS_145:SSE-S3 as in the SAM template: a customer key adds cost and a key policy for QuickSight
  #checkov:skip=CKV2_AWS_62:nothing reacts to the export's objects; no event notifications needed
  bucket        = "${local.name}-analytics-${local.account_id}-${local.region}"
  force_destroy = !var.deletion_protection
  tags          = local.tags
}

resource "aws_s3_bucket_versioning" "analytics" {
  bucket = aws_s3_bucket.analytics.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "analytics" {
  bucket = aws_s3_bucket.analytics.id

  # The lake's objects go after lake_retention_days (from their last write), when it is set.
  dynamic "rule" {
    for_each = var.lake_retention_days > 0 ? {
      expire-lake            = { prefix = "events/", days = var.lake_retention_days }
      expire-lake-unreadable = { prefix = "lake-unreadable/", days = var.lake_retention_days }
    } : {}

    content {
      id     = rule.key
      status = "Enabled"

      filter {
        prefix = rule.value.prefix
      }

      expiration {
        days = rule.value.days
      }
    }
  }

  rule {
    # The exported tables are the history Athena and QuickSight read: kept. The export rewrites an
    # hour's objects while it changes; their old versions go as in the raw bucket.
    id     = "old-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }

    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.analytics]
}

locals {
  # Every bucket gets the same protections.
  buckets = {
    raw            = aws_s3_bucket.raw
    analytics      = aws_s3_bucket.analytics
    athena_results = aws_s3_bucket.athena_results
  }
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = each.value.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "raw" {
  # Versions name what a drop held (drops.py cuts the same batch ids from the same version), and
  # protect raw batches from an overwrite or a delete.
  bucket = aws_s3_bucket.raw.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = each.value.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "raw" {
  bucket = aws_s3_bucket.raw.id

  dynamic "rule" {
    for_each = {
      expire-incoming = { prefix = "incoming/", days = var.raw_retention_days }
      expire-raw      = { prefix = "raw/", days = var.raw_retention_days }
      expire-requests = { prefix = "requests/", days = var.raw_retention_days }
      expire-rejected = { prefix = "rejected/", days = var.raw_retention_days }
      expire-staged   = { prefix = "staged/", days = var.staged_retention_days }
    }

    content {
      id     = rule.key
      status = "Enabled"

      filter {
        prefix = rule.value.prefix
      }

      expiration {
        days = rule.value.days
      }
    }
  }

  rule {
    id     = "old-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }

    # A delete marker left with no noncurrent version behind it goes too (SAM: ExpiredObjectDeleteMarker).
    expiration {
      expired_object_delete_marker = true
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.raw]
}

data "aws_iam_policy_document" "https_only" {
  for_each = local.buckets

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [each.value.arn, "${each.value.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.buckets

  bucket = each.value.id
  policy = data.aws_iam_policy_document.https_only[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

resource "aws_s3_bucket_notification" "raw" {
  # Every event of the bucket goes to EventBridge; the object-created rule picks incoming/.
  bucket      = aws_s3_bucket.raw.id
  eventbridge = true
}
