# Offline: plans this environment with its own terraform.tfvars against a mocked provider, so a value the
# platform refuses (or a combination its modules refuse, e.g. PROVISIONED without shards) fails here, not at
# apply time. The function and layer modules are replaced by their outputs: no zips are needed.
mock_provider "aws" {
  source = "../../modules/platform/tests/mocks"
}

override_module {
  target = module.platform.module.functions
  outputs = {
    function_name = "paystream-prod-fn"
    function_arn  = "arn:aws:lambda:us-east-1:000000000000:function:paystream-prod-fn"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:paystream-prod-fn/invocations"
  }
}

override_module {
  target  = module.platform.module.layers
  outputs = { arn = "arn:aws:lambda:us-east-1:000000000000:layer:paystream-prod-core:1" }
}

run "plans_with_its_tfvars" {
  command = plan

  assert {
    condition     = var.environment == "prod" && var.name_prefix == "paystream-prod"
    error_message = "prod must plan as prod, under its own prefix"
  }

  assert {
    condition     = var.point_in_time_recovery && var.deletion_protection
    error_message = "prod tables need point-in-time recovery and deletion protection"
  }

  assert {
    condition     = var.kms_deletion_window_in_days == 30 && var.secrets_recovery_window_in_days == 30 && var.log_retention_in_days >= 90
    error_message = "prod needs the longest key and secret recovery windows and at least 90 days of logs"
  }

  assert {
    condition     = var.waf_enabled && module.platform.waf_log_group_name != null
    error_message = "prod's API stage must sit behind the WAF web ACL with its rate-based rule (checkov's CKV2_AWS_29 skip relies on it)"
  }
}
