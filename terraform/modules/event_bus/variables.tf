variable "bus_name" {
  description = "Name of the custom event bus."
  type        = string
  default     = "payments"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,256}$", var.bus_name)) && var.bus_name != "default"
    error_message = "bus_name must be 1-256 letters, digits, '.', '_' or '-', and not \"default\" (this module creates a custom bus)."
  }
}

variable "archive_name" {
  description = "Name of the archive of every event on the bus (default: <bus_name>-all)."
  type        = string
  default     = null
}

variable "archive_retention_days" {
  description = "Days the archive keeps events for replay (0 = forever)."
  type        = number
  default     = 30

  validation {
    condition     = var.archive_retention_days >= 0
    error_message = "archive_retention_days must be 0 (forever) or more."
  }
}

variable "target_queues" {
  description = "SQS queues the rules may target, by a static key: {arn, url}. This module gives each a queue policy letting exactly the rules that target it send."
  type = map(object({
    arn = string
    url = string
  }))
}

variable "rules" {
  description = <<-EOT
    Rules by name. Each routes matching events to one SQS queue: event_pattern is the JSON pattern,
    target_queue is a key of target_queues, input_path optionally selects part of the event.
  EOT
  type = map(object({
    description   = string
    event_pattern = string
    target_queue  = string
    input_path    = optional(string)
  }))

  validation {
    condition     = alltrue([for r in values(var.rules) : can(jsondecode(r.event_pattern))])
    error_message = "Every rule's event_pattern must be a JSON document (use jsonencode)."
  }

  validation {
    condition     = alltrue([for r in values(var.rules) : contains(keys(var.target_queues), r.target_queue)])
    error_message = "Every rule's target_queue must be a key of target_queues."
  }

  validation {
    condition     = alltrue([for name in keys(var.rules) : can(regex("^[A-Za-z0-9._-]{1,64}$", name))])
    error_message = "Rule names must be 1-64 letters, digits, '.', '_' or '-'."
  }
}

variable "retry_maximum_event_age_seconds" {
  description = "How long EventBridge keeps retrying delivery to a target before sending the event to the target DLQ."
  type        = number
  default     = 3600

  validation {
    condition     = var.retry_maximum_event_age_seconds >= 60 && var.retry_maximum_event_age_seconds <= 86400
    error_message = "retry_maximum_event_age_seconds must be between 60 and 86400."
  }
}

variable "retry_maximum_attempts" {
  description = "How many times EventBridge retries delivery to a target."
  type        = number
  default     = 185

  validation {
    condition     = var.retry_maximum_attempts >= 0 && var.retry_maximum_attempts <= 185
    error_message = "retry_maximum_attempts must be between 0 and 185."
  }
}

variable "target_dlq_name" {
  description = "Name of the SQS queue receiving events no target could accept (default: <bus_name>-target-dlq)."
  type        = string
  default     = null
}

variable "target_dlq_message_retention_seconds" {
  description = "How long undeliverable events stay in the target DLQ."
  type        = number
  default     = 1209600

  validation {
    condition     = var.target_dlq_message_retention_seconds >= 60 && var.target_dlq_message_retention_seconds <= 1209600
    error_message = "target_dlq_message_retention_seconds must be between 60 and 1209600."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the target DLQ (its policy must let events.amazonaws.com use it)."
  type        = string
}

variable "tags" {
  description = "Tags for the bus, rules and target DLQ."
  type        = map(string)
  default     = {}
}
