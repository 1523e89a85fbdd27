# The three tables of src/eventpipe/adapters/aws/tables.py, with the same keys, index and TTL, and
# the SAM template's protections (point-in-time recovery, encryption with the AWS managed key).

resource "aws_dynamodb_table" "curated" {
  #checkov:skip=CKV_AWS_119:encrypted with the AWS managed key as in the SAM template; a customer key adds cost and a key policy for every function
  # One item per curated event, keyed by event_id: a repeated write is a counted duplicate.
  name                        = "${local.name}-curated"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "event_id"
  deletion_protection_enabled = var.deletion_protection
  tags                        = local.tags

  attribute {
    name = "event_id"
    type = "S"
  }

  # Each item carries expires_at, curated_ttl_days after it was written (dynamodb_curated.py).
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  # New items reach write_lake through the stream (the lake, lake_stream.py): the new image holds every
  # lake column.
  stream_enabled   = true
  stream_view_type = "NEW_IMAGE"

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "state" {
  #checkov:skip=CKV_AWS_119:encrypted with the AWS managed key as in the SAM template; a customer key adds cost and a key policy for every function
  # Batch records (pk batch#<id>, sk batch) and the quarantine (sk rej#<index>).
  name                        = "${local.name}-state"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection
  tags                        = local.tags

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "open"
    type = "S"
  }

  attribute {
    name = "received_at_ms"
    type = "N"
  }

  global_secondary_index {
    # Sparse: only records that carry `open` (pending and failed batches) are in it. `open` is
    # unfinished#0 to unfinished#15 by a hash of the batch id (dynamodb_state.py): 16 partitions.
    name            = "unfinished"
    hash_key        = "open"
    range_key       = "received_at_ms"
    projection_type = "ALL"
  }

  # Erasure tombstones carry expires_at (erasure_tombstones.py), gone two days after their erasure, and
  # quarantine items, raw_retention_days after their last write (dynamodb_quarantine.py).
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "insights" {
  #checkov:skip=CKV_AWS_119:encrypted with the AWS managed key as in the SAM template; a customer key adds cost and a key policy for every function
  # Batches' deltas (with expires_at), minute items, counter copies, dirty hours (dynamodb_insights.py).
  # New deltas reach fold_insights through the stream.
  name                        = "${local.name}-insights"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection
  stream_enabled              = true
  stream_view_type            = "NEW_IMAGE"
  tags                        = local.tags

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}

resource "aws_dynamodb_table" "apps" {
  #checkov:skip=CKV_AWS_119:encrypted with the AWS managed key as in the SAM template; it holds key hashes, never keys
  # Apps and the SHA-256 of their write keys (dynamodb_apps.py); the ingest function reads it.
  name                        = "${local.name}-apps"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "key_hash"
  deletion_protection_enabled = var.deletion_protection
  tags                        = local.tags

  attribute {
    name = "key_hash"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}
