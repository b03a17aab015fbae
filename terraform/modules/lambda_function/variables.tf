variable "function_name" {
  description = "Name of the function."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be 1-64 letters, digits, '_' or '-'."
  }
}

variable "description" {
  description = "Description of the function."
  type        = string
  default     = null
}

variable "filename" {
  description = "Path of the deployment zip (built by `make package`)."
  type        = string
}

variable "source_code_hash" {
  description = "base64 SHA-256 of the zip (filebase64sha256): the code is redeployed when it changes."
  type        = string
}

variable "handler" {
  description = "Handler as module.function (e.g. handler.handler)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.]+\\.[A-Za-z0-9_]+$", var.handler))
    error_message = "handler must look like module.function, e.g. \"handler.handler\"."
  }
}

variable "runtime" {
  description = "Python runtime."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be python3.12 or python3.13."
  }
}

variable "architecture" {
  description = "Instruction set: arm64 (Graviton, cheaper per GB-second) or x86_64. The layers' native wheels must match it."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "memory_size" {
  description = "Memory in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 10

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency; null leaves the function unreserved."
  type        = number
  default     = null

  validation {
    condition     = var.reserved_concurrent_executions == null || try(var.reserved_concurrent_executions >= 0, false)
    error_message = "reserved_concurrent_executions must be 0 or more, or null."
  }
}

variable "environment_variables" {
  description = "Environment variables of the function."
  type        = map(string)
  default     = {}
}

variable "layers" {
  description = "Layer version ARNs, in order."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.layers) <= 5
    error_message = "A function can use at most 5 layers."
  }
}

variable "iam_statements" {
  description = "The function's own permissions. The role gets exactly these, plus writing its logs and traces and reading its event sources."
  type = list(object({
    sid       = optional(string)
    effect    = optional(string, "Allow")
    actions   = list(string)
    resources = list(string)
  }))
  default = []

  validation {
    condition     = alltrue([for s in var.iam_statements : contains(["Allow", "Deny"], s.effect) && length(s.actions) > 0 && length(s.resources) > 0])
    error_message = "Each IAM statement needs effect Allow or Deny and at least one action and one resource."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the function's log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the log group and the function's environment variables (null: the services' default encryption)."
  type        = string
  default     = null
}

variable "event_source_mappings" {
  description = <<-EOT
    Event sources by a static key. event_source_arn is an SQS queue, Kinesis stream or DynamoDB
    stream ARN. Stream-only settings (starting_position, bisect, retries, record age, on-failure
    destination, parallelization) must stay null for SQS: SQS retries through its own redrive policy.
  EOT
  type = map(object({
    event_source_arn                   = string
    enabled                            = optional(bool, true)
    batch_size                         = optional(number)
    maximum_batching_window_in_seconds = optional(number)
    filter_patterns                    = optional(list(string), [])
    function_response_types            = optional(list(string), ["ReportBatchItemFailures"])
    maximum_concurrency                = optional(number)
    starting_position                  = optional(string)
    bisect_batch_on_function_error     = optional(bool)
    maximum_retry_attempts             = optional(number)
    maximum_record_age_in_seconds      = optional(number)
    parallelization_factor             = optional(number)
    on_failure_destination_arn         = optional(string)
  }))
  default = {}

  validation {
    condition = alltrue([for m in values(var.event_source_mappings) :
      try(split(":", m.event_source_arn)[2], "") != "sqs" || (
        m.starting_position == null && m.bisect_batch_on_function_error == null && m.maximum_retry_attempts == null
        && m.maximum_record_age_in_seconds == null && m.parallelization_factor == null && m.on_failure_destination_arn == null
      )
    ])
    error_message = "SQS event sources take no starting_position, bisect_batch_on_function_error, maximum_retry_attempts, maximum_record_age_in_seconds, parallelization_factor or on_failure_destination_arn: configure retries with the queue's redrive policy."
  }

  validation {
    condition     = alltrue([for m in values(var.event_source_mappings) : m.starting_position == null || contains(["LATEST", "TRIM_HORIZON"], coalesce(m.starting_position, "LATEST"))])
    error_message = "starting_position must be LATEST or TRIM_HORIZON."
  }

  validation {
    condition     = alltrue([for m in values(var.event_source_mappings) : alltrue([for t in m.function_response_types : t == "ReportBatchItemFailures"])])
    error_message = "function_response_types may only contain \"ReportBatchItemFailures\"."
  }

  validation {
    condition     = alltrue([for m in values(var.event_source_mappings) : alltrue([for p in m.filter_patterns : can(jsondecode(p))])])
    error_message = "Every filter pattern must be a JSON document (use jsonencode)."
  }
}

variable "tags" {
  description = "Tags for the function, role and log group."
  type        = map(string)
  default     = {}
}

# -- alarms ---------------------------------------------------------------------------------------

variable "alarms_enabled" {
  description = "Create the function's Errors and Throttles alarms (AWS/Lambda, FunctionName dimension). Leave on: turning them off is for throwaway test stacks only."
  type        = bool
  default     = true
  nullable    = false
}

variable "alarm_action_arns" {
  description = "ARNs notified when an alarm fires and when it clears (the ops-alerts SNS topic). At least one is required while alarms_enabled is true."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.alarm_action_arns : startswith(arn, "arn:")])
    error_message = "alarm_action_arns must be ARNs (e.g. of an SNS topic)."
  }
}

variable "errors_alarm_threshold" {
  description = "The Errors alarm fires when the function's failed invocations in one period exceed this number (0: any failure)."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.errors_alarm_threshold >= 0
    error_message = "errors_alarm_threshold must be 0 or more."
  }
}

variable "throttles_alarm_threshold" {
  description = "The Throttles alarm fires when the function's throttled invocations in one period exceed this number (0: any throttle)."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.throttles_alarm_threshold >= 0
    error_message = "throttles_alarm_threshold must be 0 or more."
  }
}

variable "alarm_period_seconds" {
  description = "Period of the Errors and Throttles alarms, in seconds."
  type        = number
  default     = 60
  nullable    = false

  validation {
    condition     = var.alarm_period_seconds >= 60 && var.alarm_period_seconds % 60 == 0
    error_message = "alarm_period_seconds must be a multiple of 60 (Lambda publishes its metrics per minute)."
  }
}

variable "alarm_evaluation_periods" {
  description = "Consecutive periods above the threshold before the Errors or Throttles alarm fires."
  type        = number
  default     = 1
  nullable    = false

  validation {
    condition     = var.alarm_evaluation_periods >= 1 && floor(var.alarm_evaluation_periods) == var.alarm_evaluation_periods
    error_message = "alarm_evaluation_periods must be a whole number, at least 1."
  }
}
