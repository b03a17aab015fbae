# Everything that differs between environments. Defaults are the safe choice for an AWS account; the
# local environment overrides the ones that would make drills slow or `destroy` impossible.
# Variables with a default are not nullable: an environment passing null gets the default.

# -- naming and inputs -----------------------------------------------------------------------

variable "name_prefix" {
  description = "Prefix of every resource name (tables, queues, functions, the API, the KMS alias, secrets, the SSM parameter), e.g. paystream-prod."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]{1,32}$", var.name_prefix))
    error_message = "name_prefix must be 1-32 lower-case letters, digits or '-'."
  }
}

variable "bus_name" {
  description = "Name of the event bus (the public contract is \"payments\"; tests sharing one emulator pick their own)."
  type        = string
  default     = "payments"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,256}$", var.bus_name)) && var.bus_name != "default"
    error_message = "bus_name must be 1-256 letters, digits, '.', '_' or '-', and not \"default\"."
  }
}

variable "artifacts_dir" {
  description = "Directory `make package` writes to (functions/<name>.zip, layers/core.zip, layers/deps.zip): absolute, or relative to the directory Terraform runs in (the environment's)."
  type        = string
  default     = "../../../build"
  nullable    = false

  validation {
    condition     = length(trimspace(var.artifacts_dir)) > 0
    error_message = "artifacts_dir must not be empty."
  }
}

variable "fraud_config_json" {
  description = "The fraud scorer's FraudConfig JSON document (docs/fraud.md): weights, thresholds, windows, blocklists. Pass file(\"$${path.module}/fraud-config.json\") of the environment. Its thresholds.review also routes fraud.scored on the bus."
  type        = string

  validation {
    condition     = can(keys(jsondecode(var.fraud_config_json)))
    error_message = "fraud_config_json must be a JSON object (the FraudConfig document)."
  }

  validation {
    # The bus rules match the score numerically against thresholds.review: a string there would make
    # EventBridge refuse the pattern, an out-of-range number would route every score (or none) to review.
    condition = !can(jsondecode(var.fraud_config_json).thresholds.review) || try(
      jsonencode(jsondecode(var.fraud_config_json).thresholds.review) == tostring(jsondecode(var.fraud_config_json).thresholds.review)
      && jsondecode(var.fraud_config_json).thresholds.review >= 0 && jsondecode(var.fraud_config_json).thresholds.review <= 100,
      false,
    )
    error_message = "fraud_config_json thresholds.review must be a number between 0 and 100."
  }
}

variable "tags" {
  description = "Tags for every resource that takes them. In AWS environments the provider's default_tags carry project and environment; pass only extra tags here."
  type        = map(string)
  default     = {}
  nullable    = false
}

# -- Stripe and payments behaviour -----------------------------------------------------------

variable "stripe_api_base" {
  description = "Base URL of the Stripe API the functions call. Empty (the default): real Stripe (live or test mode, by the key in Secrets Manager). Locally: localstripe."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.stripe_api_base == "" || can(regex("^https?://[^/]+", var.stripe_api_base))
    error_message = "stripe_api_base must be empty (real Stripe) or a base URL like http://127.0.0.1:8420."
  }
}

variable "capture_mode" {
  description = "automatic: PaymentIntents capture when confirmed. risk_gated: they are only authorized; a fraud score below review captures them, a payment held in review waits for scripts/review.py approve|decline (docs/fraud.md)."
  type        = string
  default     = "automatic"
  nullable    = false

  validation {
    condition     = contains(["automatic", "risk_gated"], var.capture_mode)
    error_message = "capture_mode must be automatic or risk_gated."
  }
}

variable "fault_injection_enabled" {
  description = "Let initiate_payment honour the X-Paystream-Fault header (crash at a chosen point) for the local e2e drills. Never in an AWS environment: anyone with an API key could make payments fail."
  type        = bool
  default     = false
  nullable    = false
}

variable "breaker_cooldown_seconds" {
  description = "Seconds the Stripe circuit breaker stays open before it lets a probe call through (5 locally, so an outage drill does not wait half a minute)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.breaker_cooldown_seconds >= 1 && var.breaker_cooldown_seconds <= 3600
    error_message = "breaker_cooldown_seconds must be between 1 and 3600."
  }
}

variable "resume_backoff_base_seconds" {
  description = "First backoff of resume_payments while the breaker keeps a parked payment waiting; it doubles per attempt (2 locally)."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.resume_backoff_base_seconds >= 1 && var.resume_backoff_base_seconds <= 900 && floor(var.resume_backoff_base_seconds) == var.resume_backoff_base_seconds
    error_message = "resume_backoff_base_seconds must be a whole number between 1 and 900."
  }
}

variable "payment_retry_backoff_base_seconds" {
  description = "First wait before payment_retry charges a retryable failed payment again; it doubles per attempt (2 locally)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.payment_retry_backoff_base_seconds >= 1 && var.payment_retry_backoff_base_seconds <= 3600 && floor(var.payment_retry_backoff_base_seconds) == var.payment_retry_backoff_base_seconds
    error_message = "payment_retry_backoff_base_seconds must be a whole number between 1 and 3600."
  }
}

variable "payment_retry_backoff_max_seconds" {
  description = "Longest wait between two payment retries (60 locally). The wait is the message's visibility timeout, so at most 43200 (12 h)."
  type        = number
  default     = 900
  nullable    = false

  validation {
    condition     = var.payment_retry_backoff_max_seconds >= 1 && var.payment_retry_backoff_max_seconds <= 43200 && floor(var.payment_retry_backoff_max_seconds) == var.payment_retry_backoff_max_seconds
    error_message = "payment_retry_backoff_max_seconds must be a whole number between 1 and 43200."
  }
}

variable "fraud_config_cache_seconds" {
  description = "How long fraud_scorer, fraud_review and capture_payment keep the fraud configuration before reading SSM again: a change applies within this time (30 locally)."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = var.fraud_config_cache_seconds >= 0 && var.fraud_config_cache_seconds <= 3600 && floor(var.fraud_config_cache_seconds) == var.fraud_config_cache_seconds
    error_message = "fraud_config_cache_seconds must be a whole number between 0 and 3600."
  }
}

# -- functions -------------------------------------------------------------------------------

variable "lambda_architecture" {
  description = "Instruction set of every function: arm64 (Graviton: cheaper per GB-second) or x86_64. The deps layer must be built for the same one."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "log_retention_in_days" {
  description = "Retention of every function's log group."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "sqs_consumer_timeouts" {
  description = "Timeout in seconds of each function an SQS queue feeds. Its queue's visibility timeout is six times it (AWS guidance for SQS event sources), so this is also how long a failed message waits before it is received again. Locally shorter (5-15 s) so failure drills take seconds; an omitted function keeps its default."
  type = object({
    process_payment = optional(number, 20)
    resume_payments = optional(number, 30)
    notifier        = optional(number, 20)
    payment_retry   = optional(number, 30)
    fraud_review    = optional(number, 15)
    capture_payment = optional(number, 15)
  })
  default  = {}
  nullable = false

  validation {
    # 900 s is Lambda's maximum; 6 x 900 stays under SQS's 12 h visibility maximum.
    condition     = alltrue([for t in values(var.sqs_consumer_timeouts) : t >= 1 && t <= 900 && floor(t) == t])
    error_message = "Every SQS consumer timeout must be a whole number of seconds between 1 and 900."
  }
}

variable "consumer_batching_window_seconds" {
  description = "Seconds Lambda gathers records before invoking process_payment, the notifier (their SQS queues) and the fraud scorer (the fraud stream): their reads, writes and publishes are made per batch, so fuller batches cost fewer requests per payment. Each payment outcome, notification and fraud score waits at most this long; 0 invokes as soon as anything arrives."
  type        = number
  default     = 1
  nullable    = false

  validation {
    # Lambda accepts 0-300 s for both SQS and Kinesis mappings; a long window delays every payment's outcome.
    condition     = var.consumer_batching_window_seconds >= 0 && var.consumer_batching_window_seconds <= 30 && floor(var.consumer_batching_window_seconds) == var.consumer_batching_window_seconds
    error_message = "consumer_batching_window_seconds must be a whole number of seconds from 0 to 30."
  }
}

# -- durability and recovery -----------------------------------------------------------------

variable "point_in_time_recovery" {
  description = "Point-in-time recovery on every DynamoDB table (the event store is the system of record: on wherever the data matters)."
  type        = bool
  default     = true
  nullable    = false
}

variable "deletion_protection" {
  description = "Deletion protection on every DynamoDB table. It also blocks `terraform destroy`, so false only for throwaway environments."
  type        = bool
  default     = true
  nullable    = false
}

variable "kms_deletion_window_in_days" {
  description = "Days the customer-managed key stays recoverable after deletion. Everything is encrypted with it: a deleted key loses every table, queue and secret."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30
    error_message = "kms_deletion_window_in_days must be between 7 and 30."
  }
}

variable "secrets_recovery_window_in_days" {
  description = "Days a deleted secret (Stripe key, webhook signing secrets) stays recoverable; 0 deletes at once (throwaway environments only)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.secrets_recovery_window_in_days == 0 || (var.secrets_recovery_window_in_days >= 7 && var.secrets_recovery_window_in_days <= 30)
    error_message = "secrets_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "archive_retention_days" {
  description = "Days the event bus archive keeps every event for replay (0 = forever)."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.archive_retention_days >= 0 && floor(var.archive_retention_days) == var.archive_retention_days
    error_message = "archive_retention_days must be a whole number, 0 (forever) or more."
  }
}

variable "stream_mode" {
  description = "Capacity mode of the Kinesis fraud stream: ON_DEMAND (scales itself) or PROVISIONED (fixed stream_shard_count; cheaper at low, steady volume)."
  type        = string
  default     = "ON_DEMAND"
  nullable    = false

  validation {
    condition     = contains(["ON_DEMAND", "PROVISIONED"], var.stream_mode)
    error_message = "stream_mode must be ON_DEMAND or PROVISIONED."
  }
}

variable "stream_shard_count" {
  description = "Shards of the fraud stream: required with stream_mode PROVISIONED, null with ON_DEMAND."
  type        = number
  default     = null

  validation {
    condition     = var.stream_shard_count == null || try(var.stream_shard_count >= 1, false)
    error_message = "stream_shard_count must be 1 or more (or null for ON_DEMAND)."
  }
}

variable "tag_stream" {
  description = "Tag the Kinesis stream. False only against an emulator that drops CreateStream tags (moto 5.2.5), where tags would show as a diff on every plan."
  type        = bool
  default     = true
  nullable    = false
}

variable "api_clients" {
  description = "API clients: one API key and usage plan each (throttle per second and burst, quota per period). The default key and plan always exist."
  type = map(object({
    throttle_burst = number
    throttle_rate  = number
    quota_limit    = number
    quota_period   = string
  }))
  default = {}
}

variable "manage_api_gateway_account_role" {
  description = "Create the region's API Gateway account CloudWatch role (needed for access logs). It is one per account and region: set false where another configuration in the same account and region manages it."
  type        = bool
  default     = true
}

# -- edge protection -------------------------------------------------------------------------

variable "waf" {
  description = "WAF web ACL on the API stage: a rate-based rule blocking a client IP over rate_limit requests per 5 minutes, and the AWS managed rule groups (common, known bad inputs) unless managed_rule_groups is false. Off only where WAFv2 is unavailable (the local emulator) or unwanted (dev)."
  type = object({
    enabled             = optional(bool, true)
    rate_limit          = optional(number, 2000)
    managed_rule_groups = optional(bool, true)
  })
  default  = {}
  nullable = false

  validation {
    # AWS WAF's bounds for a rate-based rule's limit.
    condition     = var.waf.rate_limit >= 10 && var.waf.rate_limit <= 2000000000 && floor(var.waf.rate_limit) == var.waf.rate_limit
    error_message = "waf.rate_limit must be a whole number between 10 and 2000000000 (requests per IP per 5 minutes)."
  }
}
