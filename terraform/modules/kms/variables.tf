variable "alias" {
  description = "Alias of the key, without the \"alias/\" prefix (e.g. \"paystream-local\")."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]+$", var.alias)) && !startswith(var.alias, "aws/") && !startswith(var.alias, "alias/")
    error_message = "alias must be letters, digits, '/', '_' or '-', without the \"alias/\" prefix, and must not start with \"aws/\"."
  }
}

variable "description" {
  description = "Description of the key."
  type        = string
  default     = "paystream data at rest"
}

variable "deletion_window_in_days" {
  description = "Days a deleted key stays recoverable."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}

variable "service_principals" {
  description = "AWS service principals allowed to use the key for encryption on the account's behalf (e.g. sqs.amazonaws.com). The CloudWatch Logs regional principal is added automatically."
  type        = list(string)
  default = [
    "cloudwatch.amazonaws.com",
    "dynamodb.amazonaws.com",
    "events.amazonaws.com",
    "kinesis.amazonaws.com",
    "secretsmanager.amazonaws.com",
    "sns.amazonaws.com",
    "sqs.amazonaws.com",
  ]

  validation {
    condition     = alltrue([for p in var.service_principals : endswith(p, ".amazonaws.com")])
    error_message = "service_principals must be service principals ending in \".amazonaws.com\"."
  }
}

variable "tags" {
  description = "Tags for the key."
  type        = map(string)
  default     = {}
}
