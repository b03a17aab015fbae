variable "name" {
  description = "Name of the REST API."
  type        = string
}

variable "description" {
  description = "Description of the REST API."
  type        = string
  default     = null
}

variable "stage_name" {
  description = "Stage the API is deployed to (the public contract uses v1 in every environment)."
  type        = string
  default     = "v1"
}

variable "routes" {
  description = <<-EOT
    Routes by "METHOD /path/{param}" (up to 4 path segments), each proxied (AWS_PROXY) to one
    Lambda function: function_name (for the invoke permission), invoke_arn, api_key_required, and
    optionally request_schema: a JSON Schema draft-04 document (JSON text, e.g. file("…/schemas/
    payment-request.json")) that API Gateway validates application/json bodies against before the
    function runs (a failing body gets the BAD_REQUEST_BODY gateway response, 400).
  EOT
  type = map(object({
    function_name    = string
    invoke_arn       = string
    api_key_required = optional(bool, true)
    request_schema   = optional(string)
  }))

  validation {
    condition = alltrue([for route in keys(var.routes) :
      can(regex("^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /([A-Za-z0-9._-]+|\\{[A-Za-z0-9_]+\\})(/([A-Za-z0-9._-]+|\\{[A-Za-z0-9_]+\\})){0,3}$", route))
    ])
    error_message = "Route keys must look like \"POST /payments/{transaction_id}/refunds\": an upper-case method, a space, then 1 to 4 path segments (literal or {param})."
  }

  validation {
    condition = alltrue([for route in values(var.routes) :
      route.request_schema == null || try(jsondecode(route.request_schema)["$schema"] == "http://json-schema.org/draft-04/schema#", false)
    ])
    error_message = "A route's request_schema must be a JSON object declaring \"$schema\": \"http://json-schema.org/draft-04/schema#\" (API Gateway models are draft-04; generate them with python -m localdev.api_schemas)."
  }
}

variable "throttle_burst_limit" {
  description = "Usage plan burst limit (requests)."
  type        = number
  default     = 100

  validation {
    condition     = var.throttle_burst_limit >= 0
    error_message = "throttle_burst_limit must be 0 or more."
  }
}

variable "throttle_rate_limit" {
  description = "Usage plan steady rate limit (requests per second)."
  type        = number
  default     = 50

  validation {
    condition     = var.throttle_rate_limit >= 0
    error_message = "throttle_rate_limit must be 0 or more."
  }
}

variable "quota_limit" {
  description = "Usage plan quota: requests per quota_period."
  type        = number
  default     = 100000

  validation {
    condition     = var.quota_limit >= 1
    error_message = "quota_limit must be 1 or more."
  }
}

variable "quota_period" {
  description = "Usage plan quota period: DAY, WEEK or MONTH."
  type        = string
  default     = "DAY"

  validation {
    condition     = contains(["DAY", "WEEK", "MONTH"], var.quota_period)
    error_message = "quota_period must be DAY, WEEK or MONTH."
  }
}

variable "clients" {
  description = <<-EOT
    API clients by name, each given its own API key and usage plan on the stage: throttle_burst
    (requests), throttle_rate (requests per second), quota_limit (requests per quota_period: DAY,
    WEEK or MONTH). The default key and plan (throttle_*/quota_* variables) exist besides these.
  EOT
  type = map(object({
    throttle_burst = number
    throttle_rate  = number
    quota_limit    = number
    quota_period   = string
  }))
  default = {}

  validation {
    condition     = alltrue([for name in keys(var.clients) : can(regex("^[A-Za-z0-9_-]{1,64}$", name)) && name != "default"])
    error_message = "Client names must be 1 to 64 letters, digits, '_' or '-', and not \"default\" (the default key's name)."
  }

  validation {
    condition = alltrue([for client in values(var.clients) :
      client.throttle_burst >= 0 && client.throttle_rate >= 0 && client.quota_limit >= 1 && contains(["DAY", "WEEK", "MONTH"], client.quota_period)
    ])
    error_message = "Each client needs throttle_burst >= 0, throttle_rate >= 0, quota_limit >= 1 and quota_period DAY, WEEK or MONTH."
  }
}

variable "gateway_responses" {
  description = <<-EOT
    API Gateway's own error responses by response type (BAD_REQUEST_BODY, INVALID_API_KEY,
    DEFAULT_4XX, …): status_code (null: the type's own), response_templates by content type
    (simple $context substitution only, e.g. $context.error.messageString, which is already a JSON
    string), response_parameters (gatewayresponse.header.<name> = "'value'"). Types not listed keep
    API Gateway's default body {"message": "..."}.
  EOT
  type = map(object({
    status_code         = optional(string)
    response_templates  = optional(map(string), {})
    response_parameters = optional(map(string), {})
  }))
  default = {}

  validation {
    condition = alltrue([for type in keys(var.gateway_responses) : contains([
      "ACCESS_DENIED", "API_CONFIGURATION_ERROR", "AUTHORIZER_CONFIGURATION_ERROR", "AUTHORIZER_FAILURE",
      "BAD_REQUEST_BODY", "BAD_REQUEST_PARAMETERS", "DEFAULT_4XX", "DEFAULT_5XX", "EXPIRED_TOKEN",
      "INTEGRATION_FAILURE", "INTEGRATION_TIMEOUT", "INVALID_API_KEY", "INVALID_SIGNATURE",
      "MISSING_AUTHENTICATION_TOKEN", "QUOTA_EXCEEDED", "REQUEST_TOO_LARGE", "RESOURCE_NOT_FOUND",
      "THROTTLED", "UNAUTHORIZED", "UNSUPPORTED_MEDIA_TYPE", "WAF_FILTERED",
    ], type)])
    error_message = "gateway_responses keys must be API Gateway response types such as BAD_REQUEST_BODY or DEFAULT_4XX."
  }
}

variable "access_log_retention_in_days" {
  description = "Retention of the stage's access log group."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.access_log_retention_in_days)
    error_message = "access_log_retention_in_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "access_log_kms_key_arn" {
  description = "KMS key encrypting the access log group (null: CloudWatch's default encryption). Its policy must let the logs.<region>.amazonaws.com principal use it."
  type        = string
  default     = null
}

variable "manage_account_cloudwatch_role" {
  description = <<-EOT
    Create the IAM role API Gateway writes CloudWatch logs with and set it in the region's API
    Gateway account settings. Access logging needs that setting; it is one per account and region,
    shared by every API there, so exactly one configuration per account and region may set this to
    true (the others rely on it).
  EOT
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags for the API, stage, key and usage plan."
  type        = map(string)
  default     = {}
}

variable "xray_tracing_enabled" {
  description = "X-Ray tracing on the stage: each request's trace starts at API Gateway and continues into the functions (active tracing)."
  type        = bool
  default     = true
  nullable    = false
}

# -- alarms ----------------------------------------------------------------------------------------

variable "alarms_enabled" {
  description = "Create the stage's 5XXError and Latency alarms (AWS/ApiGateway, ApiName and Stage dimensions)."
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

variable "alarm_period_seconds" {
  description = "Period of the API alarms, in seconds."
  type        = number
  default     = 60
  nullable    = false

  validation {
    condition     = var.alarm_period_seconds >= 60 && var.alarm_period_seconds % 60 == 0
    error_message = "alarm_period_seconds must be a multiple of 60 (API Gateway publishes its metrics per minute)."
  }
}

variable "server_errors_alarm_threshold" {
  description = "The 5xx alarm fires when more than this many requests in one period got a 5xx answer (0: any). Every 5xx is a client left without an answer about its payment."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.server_errors_alarm_threshold >= 0
    error_message = "server_errors_alarm_threshold must be 0 or more."
  }
}

variable "latency_alarm_thresholds_ms" {
  description = "Latency alarms by percentile (p50 … p99.9): the alarm fires when the stage's Latency at that percentile stays above the value (milliseconds). POST /payments waits for Stripe, hence seconds rather than milliseconds."
  type        = map(number)
  default = {
    p95 = 3000
    p99 = 6000
  }
  nullable = false

  validation {
    condition     = alltrue([for p, ms in var.latency_alarm_thresholds_ms : can(regex("^p([1-9][0-9]?(\\.[0-9]+)?)$", p)) && ms > 0])
    error_message = "latency_alarm_thresholds_ms keys must be percentiles such as p95 or p99.9, and each threshold more than 0 ms."
  }
}

variable "latency_alarm_evaluation_periods" {
  description = "Consecutive periods a latency percentile must stay above its threshold before its alarm fires."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.latency_alarm_evaluation_periods >= 1 && floor(var.latency_alarm_evaluation_periods) == var.latency_alarm_evaluation_periods
    error_message = "latency_alarm_evaluation_periods must be a whole number, at least 1."
  }
}
