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
    Lambda function: function_name (for the invoke permission), invoke_arn, api_key_required.
  EOT
  type = map(object({
    function_name    = string
    invoke_arn       = string
    api_key_required = optional(bool, true)
  }))

  validation {
    condition = alltrue([for route in keys(var.routes) :
      can(regex("^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|ANY) /([A-Za-z0-9._-]+|\\{[A-Za-z0-9_]+\\})(/([A-Za-z0-9._-]+|\\{[A-Za-z0-9_]+\\})){0,3}$", route))
    ])
    error_message = "Route keys must look like \"POST /payments/{transaction_id}/refunds\": an upper-case method, a space, then 1 to 4 path segments (literal or {param})."
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

variable "tags" {
  description = "Tags for the API, stage, key and usage plan."
  type        = map(string)
  default     = {}
}
