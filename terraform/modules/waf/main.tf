# A regional WAF web ACL in front of the API stage: a per-IP rate limit, AWS managed rule groups, metrics
# for every rule, and request logs (without credentials) in an encrypted log group.

locals {
  # WAF matches a single_header redaction on the lower-cased header name.
  redacted_headers = distinct([for h in var.redacted_headers : lower(h)])
}

resource "aws_wafv2_web_acl" "this" {
  #checkov:skip=CKV_AWS_192:AWSManagedRulesKnownBadInputsRuleSet (Log4JRCE blocking, override none) comes from var.managed_rule_groups through a dynamic block checkov does not expand; tests/web_acl.tftest.hcl and platform/tests/queues_waf.tftest.hcl assert it is on
  name        = var.name
  description = "Rate limit and AWS managed rules in front of ${var.name}"
  scope       = "REGIONAL"
  tags        = var.tags

  default_action {
    allow {}
  }

  # Evaluated first: a client over its rate is blocked before any other rule spends capacity on it.
  rule {
    name     = "rate-limit-per-ip"
    priority = 0

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.rate_limit
        aggregate_key_type    = "IP"
        evaluation_window_sec = var.rate_limit_window_seconds
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit-per-ip"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = var.managed_rule_groups
    content {
      name     = rule.key
      priority = rule.value.priority

      # "none" keeps the group's own block actions; "count" only counts (to try a group out first).
      override_action {
        dynamic "none" {
          for_each = rule.value.count_only ? [] : [1]
          content {}
        }
        dynamic "count" {
          for_each = rule.value.count_only ? [1] : []
          content {}
        }
      }

      statement {
        managed_rule_group_statement {
          name        = rule.key
          vendor_name = rule.value.vendor_name

          # Rules of the group that would block legitimate traffic of this API only count instead.
          dynamic "rule_action_override" {
            for_each = toset(rule.value.count_rules)
            content {
              name = rule_action_override.value
              action_to_use {
                count {}
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name}-${rule.key}"
        sampled_requests_enabled   = true
      }
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = var.resource_arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

# WAF only delivers to log groups whose name starts with aws-waf-logs-. It adds the log group's resource
# policy for delivery itself (the applying principal needs logs:PutResourcePolicy).
resource "aws_cloudwatch_log_group" "this" {
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.this.arn]

  # The API key, a bearer token and Stripe's webhook signature never reach the logs.
  dynamic "redacted_fields" {
    for_each = toset(local.redacted_headers)
    content {
      single_header {
        name = redacted_fields.value
      }
    }
  }
}
