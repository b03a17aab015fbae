variable "secrets" {
  description = "Secrets by key: the full secret name and a description. Values are never managed here: put them out of band (aws secretsmanager put-secret-value)."
  type = map(object({
    name        = string
    description = string
  }))

  validation {
    condition     = alltrue([for s in values(var.secrets) : can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", s.name))])
    error_message = "Secret names must be 1-512 characters from letters, digits and /_+=.@-."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the secrets."
  type        = string
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret stays recoverable (0 deletes at once: use it only for throwaway environments)."
  type        = number
  default     = 30

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "tags" {
  description = "Tags for the secrets."
  type        = map(string)
  default     = {}
}
