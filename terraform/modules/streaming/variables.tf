variable "name" {
  description = "Name of the Kinesis stream."
  type        = string
}

variable "stream_mode" {
  description = "ON_DEMAND (pay per use, scales itself) or PROVISIONED (fixed shard_count)."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "shard_count" {
  description = "Number of shards; required with PROVISIONED, must be null with ON_DEMAND."
  type        = number
  default     = null

  validation {
    condition     = var.shard_count == null || try(var.shard_count >= 1, false)
    error_message = "shard_count must be 1 or more (or null for ON_DEMAND)."
  }
}

variable "retention_period_hours" {
  description = "How long records stay readable."
  type        = number
  default     = 24

  validation {
    condition     = var.retention_period_hours >= 24 && var.retention_period_hours <= 8760
    error_message = "retention_period_hours must be between 24 and 8760."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the stream."
  type        = string
}

variable "tags" {
  description = "Tags for the stream."
  type        = map(string)
  default     = {}
}
