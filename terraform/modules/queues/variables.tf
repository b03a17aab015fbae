variable "name_prefix" {
  description = "Prefix of every queue name: <prefix>-<key> and <prefix>-<key>-dlq."
  type        = string
}

variable "queues" {
  description = <<-EOT
    Consumer queues by short name. Each gets its own dead-letter queue through a redrive policy (DLQ retention:
    14 days, SQS's maximum, unless dlq_message_retention_seconds says otherwise). consumer_timeout_seconds is the
    timeout of the Lambda function an event source mapping feeds from the queue (null: no Lambda consumer);
    visibility_timeout_seconds must then be at least six times it (AWS guidance for SQS event sources).
  EOT
  type = map(object({
    consumer_timeout_seconds      = optional(number)
    visibility_timeout_seconds    = optional(number, 30)
    max_receive_count             = optional(number, 5)
    delay_seconds                 = optional(number, 0)
    receive_wait_time_seconds     = optional(number, 0)
    message_retention_seconds     = optional(number, 345600)
    dlq_message_retention_seconds = optional(number, 1209600)
  }))

  validation {
    condition = alltrue([for q in values(var.queues) :
      q.visibility_timeout_seconds >= 0 && q.visibility_timeout_seconds <= 43200
      && q.max_receive_count >= 1 && q.max_receive_count <= 1000
      && q.delay_seconds >= 0 && q.delay_seconds <= 900
      && q.receive_wait_time_seconds >= 0 && q.receive_wait_time_seconds <= 20
      && q.message_retention_seconds >= 60 && q.message_retention_seconds <= 1209600
      && q.dlq_message_retention_seconds >= 60 && q.dlq_message_retention_seconds <= 1209600
    ])
    error_message = "Each queue needs visibility_timeout_seconds 0-43200, max_receive_count 1-1000, delay_seconds 0-900, receive_wait_time_seconds 0-20 and retention periods 60-1209600."
  }

  # A message stays invisible only for the visibility timeout. Shorter than the consumer's timeout (plus the
  # retries of a throttled invocation), a message still being processed is delivered again, processed twice,
  # and counted towards maxReceiveCount until it lands in the DLQ unprocessed.
  validation {
    condition = alltrue([for q in values(var.queues) :
      q.consumer_timeout_seconds == null || try(q.consumer_timeout_seconds >= 1 && q.consumer_timeout_seconds <= 900
      && q.visibility_timeout_seconds >= 6 * q.consumer_timeout_seconds, false)
    ])
    error_message = "A queue with a Lambda consumer needs visibility_timeout_seconds of at least six times consumer_timeout_seconds (1-900): ${join(", ", [for k, q in var.queues : "${k} (visibility ${q.visibility_timeout_seconds} s, consumer timeout ${q.consumer_timeout_seconds} s)" if q.consumer_timeout_seconds != null && try(q.visibility_timeout_seconds < 6 * q.consumer_timeout_seconds, true)])}."
  }

  validation {
    condition     = alltrue([for name in keys(var.queues) : can(regex("^[a-zA-Z0-9_-]{1,60}$", name))])
    error_message = "Queue keys must be 1-60 letters, digits, '_' or '-' (they become part of the queue name)."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting every queue and DLQ."
  type        = string
}

variable "kms_data_key_reuse_period_seconds" {
  description = "How long SQS reuses a data key before asking KMS again."
  type        = number
  default     = 300

  validation {
    condition     = var.kms_data_key_reuse_period_seconds >= 60 && var.kms_data_key_reuse_period_seconds <= 86400
    error_message = "kms_data_key_reuse_period_seconds must be between 60 and 86400."
  }
}

variable "tags" {
  description = "Tags for the queues."
  type        = map(string)
  default     = {}
}
