# Values are in terraform.tfvars. The platform module validates them; null takes the platform's default.

variable "environment" {
  description = "Name of the environment (the default_tags environment tag)."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "AWS region of every resource, e.g. us-east-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1 or eu-west-1."
  }
}

variable "allowed_account_ids" {
  description = "AWS account ids this environment may be applied to (empty: any). Set it: it stops an apply with the wrong credentials."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.allowed_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "allowed_account_ids must be 12-digit AWS account ids."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name, e.g. paystream-prod."
  type        = string
}

variable "artifacts_dir" {
  description = "Directory `make package` writes to, absolute or relative to this directory (null: ../../../build)."
  type        = string
  default     = null
}

variable "capture_mode" {
  description = "automatic or risk_gated (docs/fraud.md; null: automatic)."
  type        = string
  default     = null
}

variable "tags" {
  description = "Extra tags for every resource (project, environment and managed_by come from the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "lambda_architecture" {
  description = "arm64 or x86_64 for every function (null: arm64). The deps layer must be built for the same one."
  type        = string
  default     = null
}

variable "point_in_time_recovery" {
  description = "Point-in-time recovery on every DynamoDB table."
  type        = bool
}

variable "deletion_protection" {
  description = "Deletion protection on every DynamoDB table (blocks `terraform destroy`)."
  type        = bool
}

variable "kms_deletion_window_in_days" {
  description = "Days the KMS key stays recoverable after deletion (7-30)."
  type        = number
}

variable "secrets_recovery_window_in_days" {
  description = "Days a deleted secret stays recoverable (0 or 7-30)."
  type        = number
}

variable "log_retention_in_days" {
  description = "Retention of every function's log group (a CloudWatch Logs value: 7, 14, 30, 90, 365, …)."
  type        = number
}

variable "archive_retention_days" {
  description = "Days the event bus archive keeps events for replay (0 = forever)."
  type        = number
}

variable "stream_mode" {
  description = "Kinesis fraud stream capacity mode: ON_DEMAND or PROVISIONED."
  type        = string
}

variable "stream_shard_count" {
  description = "Shards of the fraud stream with PROVISIONED; null with ON_DEMAND."
  type        = number
  default     = null
}

variable "breaker_cooldown_seconds" {
  description = "Seconds the Stripe circuit breaker stays open before a probe (null: 30)."
  type        = number
  default     = null
}

variable "payment_retry_backoff_base_seconds" {
  description = "First wait before a retryable failed payment is charged again (null: 30)."
  type        = number
  default     = null
}

variable "payment_retry_backoff_max_seconds" {
  description = "Longest wait between two payment retries (null: 900)."
  type        = number
  default     = null
}

variable "resume_backoff_base_seconds" {
  description = "First backoff of resume_payments for a parked payment (null: 5)."
  type        = number
  default     = null
}

variable "fraud_config_cache_seconds" {
  description = "Seconds a fraud configuration change takes to apply (null: 300)."
  type        = number
  default     = null
}

variable "waf_enabled" {
  description = "WAF web ACL (per-IP rate limit, AWS managed rule groups) on the API stage (null: on)."
  type        = bool
  default     = null
}

variable "waf_rate_limit" {
  description = "Requests one client IP may send per 5 minutes before WAF blocks it; above the busiest legitimate caller (a merchant backend, Stripe's webhook senders) (null: 2000)."
  type        = number
  default     = null
}
