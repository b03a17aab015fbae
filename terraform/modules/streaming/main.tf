resource "aws_kinesis_stream" "this" {
  name             = var.name
  shard_count      = var.stream_mode == "PROVISIONED" ? var.shard_count : null
  retention_period = var.retention_period_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = (var.stream_mode == "PROVISIONED") == (var.shard_count != null)
      error_message = "Set shard_count with stream_mode = \"PROVISIONED\", and leave it null with ON_DEMAND."
    }
  }
}
