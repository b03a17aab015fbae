variable "name" {
  description = "Name of the web ACL; also the suffix of its log group (aws-waf-logs-<name>) and the prefix of its metric names."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,128}$", var.name))
    error_message = "name must be 1-128 letters, digits, '_' or '-'."
  }
}

variable "resource_arn" {
  description = "ARN of the API Gateway REST API stage the web ACL protects (arn:aws:apigateway:<region>::/restapis/<id>/stages/<stage>)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:apigateway:[a-z0-9-]+::/restapis/[^/]+/stages/[^/]+$", var.resource_arn))
    error_message = "resource_arn must be an API Gateway REST API stage ARN: arn:aws:apigateway:<region>::/restapis/<id>/stages/<stage>."
  }
}

variable "rate_limit" {
  description = "Requests one client IP may send in rate_limit_window_seconds before the web ACL blocks it (until its rate falls back under the limit)."
  type        = number
  default     = 2000
  nullable    = false

  validation {
    # AWS WAF's own bounds for a rate-based rule's limit (the minimum was lowered from 100 to 10 in 2024).
    condition     = var.rate_limit >= 10 && var.rate_limit <= 2000000000 && floor(var.rate_limit) == var.rate_limit
    error_message = "rate_limit must be a whole number between 10 and 2000000000."
  }
}

variable "rate_limit_window_seconds" {
  description = "Window over which WAF counts each IP's requests for rate_limit (300 s: the classic \"per 5 minutes\")."
  type        = number
  default     = 300
  nullable    = false

  validation {
    condition     = contains([60, 120, 300, 600], var.rate_limit_window_seconds)
    error_message = "rate_limit_window_seconds must be 60, 120, 300 or 600."
  }
}

variable "managed_rule_groups" {
  description = <<-EOT
    Managed rule groups by their name (e.g. AWSManagedRulesCommonRuleSet). priority orders them after the rate
    rule (priority 0); count_only counts the whole group's matches instead of blocking (to try a group out);
    count_rules names rules of the group that only count (false positives on this API). {} turns them all off.
  EOT
  type = map(object({
    priority    = number
    vendor_name = optional(string, "AWS")
    count_only  = optional(bool, false)
    count_rules = optional(list(string), [])
  }))
  nullable = false
  default = {
    AWSManagedRulesCommonRuleSet = {
      priority = 10
      # Its 8 KB body limit would block larger Stripe webhook events; API Gateway's request models and the
      # functions' own validation check the bodies.
      count_rules = ["SizeRestrictions_BODY"]
    }
    # Known exploit payloads (Log4j JNDI lookups, …) in paths, headers and bodies.
    AWSManagedRulesKnownBadInputsRuleSet = { priority = 20 }
  }

  validation {
    condition     = alltrue([for g in values(var.managed_rule_groups) : g.priority >= 1 && floor(g.priority) == g.priority])
    error_message = "Managed rule group priorities must be whole numbers of 1 or more (0 is the rate-limit rule)."
  }

  validation {
    condition     = length(distinct([for g in values(var.managed_rule_groups) : g.priority])) == length(var.managed_rule_groups)
    error_message = "Every managed rule group needs its own priority."
  }

  validation {
    # The Log4j JNDI-lookup rule (CVE-2021-44228) of the known-bad-inputs group must keep blocking.
    condition = alltrue([for name, g in var.managed_rule_groups : !(g.count_only || contains(g.count_rules, "Log4JRCE"))
    if name == "AWSManagedRulesKnownBadInputsRuleSet"])
    error_message = "AWSManagedRulesKnownBadInputsRuleSet must block: neither count_only nor Log4JRCE in count_rules."
  }

  validation {
    condition     = alltrue([for name in keys(var.managed_rule_groups) : can(regex("^[A-Za-z0-9_-]{1,128}$", name))])
    error_message = "Managed rule group names must be 1-128 letters, digits, '_' or '-'."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the WAF request logs."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_kms_key_arn" {
  description = "Customer-managed KMS key encrypting the WAF log group (its policy must let logs.<region>.amazonaws.com use it)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.log_kms_key_arn))
    error_message = "log_kms_key_arn must be a KMS key ARN."
  }
}

variable "redacted_headers" {
  description = "Request headers WAF replaces with REDACTED in its logs: credentials and signatures never reach a log group."
  type        = list(string)
  default     = ["authorization", "x-api-key", "stripe-signature"]
  nullable    = false

  validation {
    condition     = alltrue([for h in var.redacted_headers : can(regex("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$", h))])
    error_message = "redacted_headers must be HTTP header names (1-64 token characters)."
  }
}

variable "tags" {
  description = "Tags for the web ACL and its log group."
  type        = map(string)
  default     = {}
}
