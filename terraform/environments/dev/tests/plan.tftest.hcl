# Offline: plans this environment with its own terraform.tfvars against a mocked provider, so a value the
# platform refuses (or a combination its modules refuse, e.g. PROVISIONED without shards) fails here, not at
# apply time. The function and layer modules are replaced by their outputs: no zips are needed.
mock_provider "aws" {
  source = "../../modules/platform/tests/mocks"
}

override_module {
  target = module.platform.module.functions
  outputs = {
    function_name = "paystream-dev-fn"
    function_arn  = "arn:aws:lambda:us-east-1:000000000000:function:paystream-dev-fn"
    invoke_arn    = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:paystream-dev-fn/invocations"
  }
}

override_module {
  target  = module.platform.module.layers
  outputs = { arn = "arn:aws:lambda:us-east-1:000000000000:layer:paystream-dev-core:1" }
}

run "plans_with_its_tfvars" {
  command = plan

  assert {
    condition     = var.environment == "dev" && var.name_prefix == "paystream-dev"
    error_message = "dev must plan as dev, under its own prefix"
  }

  assert {
    condition     = !var.deletion_protection && var.secrets_recovery_window_in_days <= 7 && var.log_retention_in_days <= 30
    error_message = "dev is throwaway: destroyable, short recovery windows and log retention"
  }
}
