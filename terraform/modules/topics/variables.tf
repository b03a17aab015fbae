variable "name_prefix" {
  description = "Prefix of every topic name: <prefix>-<topic>."
  type        = string
}

variable "topics" {
  description = "Short names of the topics to create (e.g. payment-notifications, fraud-alerts, ops-alerts)."
  type        = list(string)

  validation {
    condition     = alltrue([for t in var.topics : can(regex("^[A-Za-z0-9_-]{1,200}$", t))])
    error_message = "Topic names must be 1-200 letters, digits, '_' or '-'."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the topics (its policy must let the publishing services use it)."
  type        = string
}

variable "tags" {
  description = "Tags for the topics."
  type        = map(string)
  default     = {}
}
