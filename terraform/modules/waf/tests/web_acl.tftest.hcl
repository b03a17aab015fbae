# Offline: `terraform test` with a mocked provider checks the web ACL's rules, its association with the
# API stage and its logging (name, encryption, retention, redacted credentials).
mock_provider "aws" {
  # The provider validates ARNs it is handed, so the mocked computed ARNs must look like ARNs.
  mock_resource "aws_wafv2_web_acl" {
    defaults = { arn = "arn:aws:wafv2:us-east-1:000000000000:regional/webacl/paystream-test/0000" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:000000000000:log-group:aws-waf-logs-paystream-test" }
  }
}

variables {
  name                  = "paystream-test"
  resource_arn          = "arn:aws:apigateway:us-east-1::/restapis/abc123/stages/v1"
  rate_limit            = 500
  log_retention_in_days = 90
  log_kms_key_arn       = "arn:aws:kms:us-east-1:000000000000:key/test"
}

run "rate_limit_managed_rules_association_and_logging" {
  command = apply

  assert {
    condition     = aws_wafv2_web_acl.this.scope == "REGIONAL" && length(aws_wafv2_web_acl.this.default_action[0].allow) == 1
    error_message = "the web ACL must be regional (API Gateway) and allow what no rule blocks"
  }

  assert {
    condition = (one([for r in aws_wafv2_web_acl.this.rule : r if r.name == "rate-limit-per-ip"]).statement[0].rate_based_statement[0].limit == 500
      && one([for r in aws_wafv2_web_acl.this.rule : r if r.name == "rate-limit-per-ip"]).statement[0].rate_based_statement[0].aggregate_key_type == "IP"
    && one([for r in aws_wafv2_web_acl.this.rule : r if r.name == "rate-limit-per-ip"]).statement[0].rate_based_statement[0].evaluation_window_sec == 300)
    error_message = "the rate-based rule must count rate_limit requests per client IP over 5 minutes"
  }

  assert {
    condition = (length(one([for r in aws_wafv2_web_acl.this.rule : r if r.name == "rate-limit-per-ip"]).action[0].block) == 1
    && one([for r in aws_wafv2_web_acl.this.rule : r if r.name == "rate-limit-per-ip"]).priority == 0)
    error_message = "the rate-based rule must block, and be evaluated first"
  }

  assert {
    condition = toset([for r in aws_wafv2_web_acl.this.rule : r.statement[0].managed_rule_group_statement[0].name
      if length(r.statement[0].managed_rule_group_statement) > 0
    ]) == toset(["AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"])
    error_message = "the common and known-bad-inputs AWS managed rule groups must be on by default"
  }

  assert {
    condition = alltrue([for r in aws_wafv2_web_acl.this.rule :
      length(r.override_action[0].none) == 1 && r.statement[0].managed_rule_group_statement[0].vendor_name == "AWS"
      if length(r.statement[0].managed_rule_group_statement) > 0
    ])
    error_message = "the managed rule groups must keep their own block actions (override none)"
  }

  assert {
    condition = alltrue(concat(
      [for r in aws_wafv2_web_acl.this.rule : r.visibility_config[0].cloudwatch_metrics_enabled && r.visibility_config[0].sampled_requests_enabled],
      [aws_wafv2_web_acl.this.visibility_config[0].cloudwatch_metrics_enabled],
    ))
    error_message = "every rule and the web ACL must publish CloudWatch metrics and sample requests"
  }

  assert {
    condition = (aws_wafv2_web_acl_association.this.resource_arn == "arn:aws:apigateway:us-east-1::/restapis/abc123/stages/v1"
    && aws_wafv2_web_acl_association.this.web_acl_arn == aws_wafv2_web_acl.this.arn)
    error_message = "the web ACL must be associated with the API stage it is given"
  }

  assert {
    condition = (startswith(aws_cloudwatch_log_group.this.name, "aws-waf-logs-")
      && aws_cloudwatch_log_group.this.kms_key_id == "arn:aws:kms:us-east-1:000000000000:key/test"
    && aws_cloudwatch_log_group.this.retention_in_days == 90)
    error_message = "WAF logs need a log group named aws-waf-logs-*, encrypted with the given key, with the given retention"
  }

  assert {
    condition     = one(aws_wafv2_web_acl_logging_configuration.this.log_destination_configs) == aws_cloudwatch_log_group.this.arn && aws_wafv2_web_acl_logging_configuration.this.resource_arn == aws_wafv2_web_acl.this.arn
    error_message = "the web ACL must log to its log group"
  }

  assert {
    condition = toset([for f in aws_wafv2_web_acl_logging_configuration.this.redacted_fields : f.single_header[0].name]) == toset([
      "authorization", "x-api-key", "stripe-signature",
    ])
    error_message = "the Authorization, x-api-key and Stripe-Signature headers must be redacted from the WAF logs"
  }
}

run "managed_rule_groups_can_be_turned_off" {
  command = apply

  variables {
    managed_rule_groups = {}
  }

  assert {
    condition     = [for r in aws_wafv2_web_acl.this.rule : r.name] == ["rate-limit-per-ip"]
    error_message = "without managed rule groups only the rate-based rule remains"
  }
}

# The provider's own validation of the limit accepts AWS's minimum too (the mocked provider still validates).
run "the_aws_minimum_rate_limit_is_accepted" {
  command = plan

  variables {
    rate_limit = 10
  }
}

run "a_rate_limit_below_the_aws_minimum_is_refused" {
  command = plan

  variables {
    rate_limit = 9
  }

  expect_failures = [var.rate_limit]
}

run "a_rate_limit_above_the_aws_maximum_is_refused" {
  command = plan

  variables {
    rate_limit = 2000000001
  }

  expect_failures = [var.rate_limit]
}

run "only_an_api_stage_can_be_protected" {
  command = plan

  variables {
    resource_arn = "arn:aws:apigateway:us-east-1::/restapis/abc123"
  }

  expect_failures = [var.resource_arn]
}

run "two_rule_groups_cannot_share_a_priority" {
  command = plan

  variables {
    managed_rule_groups = {
      AWSManagedRulesCommonRuleSet         = { priority = 10 }
      AWSManagedRulesKnownBadInputsRuleSet = { priority = 10 }
    }
  }

  expect_failures = [var.managed_rule_groups]
}

run "the_log4j_rule_cannot_be_set_to_count" {
  command = plan

  variables {
    managed_rule_groups = {
      AWSManagedRulesKnownBadInputsRuleSet = { priority = 20, count_rules = ["Log4JRCE"] }
    }
  }

  expect_failures = [var.managed_rule_groups]
}
