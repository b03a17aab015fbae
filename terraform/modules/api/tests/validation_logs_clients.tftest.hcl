# Offline: request validation from the generated schemas, access logging, per-client keys and plans.
mock_provider "aws" {
  mock_resource "aws_api_gateway_rest_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:us-east-1:000000000000:abc123"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/apigateway/test/v1/access"
    }
  }
  mock_resource "aws_iam_role" {
    defaults = {
      arn = "arn:aws:iam::000000000000:role/test-apigateway-cloudwatch"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  name              = "test"
  alarm_action_arns = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
  routes = {
    "POST /payments"                          = { function_name = "initiate", invoke_arn = "arn:initiate", request_schema = file("schemas/payment-request.json") }
    "GET /payments/{transaction_id}"          = { function_name = "query", invoke_arn = "arn:query" }
    "POST /payments/{transaction_id}/refunds" = { function_name = "refund", invoke_arn = "arn:refund", request_schema = file("schemas/refund-request.json") }
    "POST /webhooks/stripe"                   = { function_name = "webhook", invoke_arn = "arn:webhook", api_key_required = false }
  }
}

run "post_payments_body_is_validated_against_its_model" {
  assert {
    condition     = toset(keys(aws_api_gateway_model.this)) == toset(["POST /payments", "POST /payments/{transaction_id}/refunds"])
    error_message = "exactly the routes with a request_schema must get a model"
  }

  assert {
    condition = (
      aws_api_gateway_model.this["POST /payments"].content_type == "application/json"
      && jsondecode(aws_api_gateway_model.this["POST /payments"].schema) == jsondecode(file("schemas/payment-request.json"))
      && can(regex("^[A-Za-z0-9]+$", aws_api_gateway_model.this["POST /payments"].name))
    )
    error_message = "POST /payments must have an application/json model holding the generated schema, with an alphanumeric name"
  }

  assert {
    condition     = aws_api_gateway_method.this["POST /payments"].request_models == tomap({ "application/json" = aws_api_gateway_model.this["POST /payments"].name })
    error_message = "POST /payments must validate application/json bodies with its model"
  }

  assert {
    condition = (
      aws_api_gateway_method.this["POST /payments"].request_validator_id == aws_api_gateway_request_validator.body_and_parameters.id
      && aws_api_gateway_request_validator.body_and_parameters.validate_request_body
      && aws_api_gateway_request_validator.body_and_parameters.validate_request_parameters
    )
    error_message = "POST /payments must use a validator that checks both body and parameters"
  }

  assert {
    condition = (
      aws_api_gateway_method.this["POST /payments/{transaction_id}/refunds"].request_validator_id == aws_api_gateway_request_validator.body_and_parameters.id
      && jsondecode(aws_api_gateway_model.this["POST /payments/{transaction_id}/refunds"].schema).title == "RefundRequest"
      && aws_api_gateway_model.this["POST /payments/{transaction_id}/refunds"].name != aws_api_gateway_model.this["POST /payments"].name
    )
    error_message = "the refunds route must validate its body against the refund model"
  }

  assert {
    condition = alltrue([for key in ["GET /payments/{transaction_id}", "POST /webhooks/stripe"] :
      aws_api_gateway_method.this[key].request_validator_id == aws_api_gateway_request_validator.parameters.id
      && length(coalesce(aws_api_gateway_method.this[key].request_models, {})) == 0
    ])
    error_message = "routes without a schema get only the parameters validator (the webhook's raw body must reach the function untouched)"
  }

  assert {
    condition     = !aws_api_gateway_request_validator.parameters.validate_request_body && aws_api_gateway_request_validator.parameters.validate_request_parameters
    error_message = "the parameters validator must not validate bodies"
  }

  assert {
    condition     = output.request_model_names["POST /payments"] == aws_api_gateway_model.this["POST /payments"].name
    error_message = "request_model_names must name each route's model"
  }
}

run "access_logs_are_json_metadata_only" {
  assert {
    condition     = aws_api_gateway_stage.this.access_log_settings[0].destination_arn == aws_cloudwatch_log_group.access.arn
    error_message = "the stage must send access logs to the module's log group"
  }

  assert {
    condition = alltrue([for field in ["requestId", "ip", "caller", "httpMethod", "resourcePath", "status", "responseLatency", "apiKeyId"] :
      contains(keys(jsondecode(aws_api_gateway_stage.this.access_log_settings[0].format)), field)
    ])
    error_message = "the access log format must be JSON with requestId, ip, caller, httpMethod, resourcePath, status, responseLatency and apiKeyId"
  }

  assert {
    condition = alltrue([for value in values(jsondecode(aws_api_gateway_stage.this.access_log_settings[0].format)) :
      !strcontains(value, "$input") && !strcontains(value, "$method.request") && value != "$context.identity.apiKey"
      && !strcontains(value, "validationErrorString") && !strcontains(value, "requestOverride")
    ])
    error_message = "access logs must never hold a body, a request header or parameter value, the API key or the validation message (it can quote the body)"
  }

  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 30 && aws_cloudwatch_log_group.access.kms_key_id == null
    error_message = "the access log group must default to 30 days' retention and CloudWatch's own encryption"
  }

  assert {
    condition     = aws_api_gateway_stage.this.xray_tracing_enabled
    error_message = "X-Ray tracing must stay on for the stage"
  }

  assert {
    condition     = length(aws_api_gateway_account.this) == 0 && length(aws_iam_role.cloudwatch) == 0
    error_message = "the account-wide CloudWatch role must not be managed unless asked for"
  }
}

run "access_log_retention_and_key_are_settable" {
  variables {
    access_log_retention_in_days   = 365
    access_log_kms_key_arn         = "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    manage_account_cloudwatch_role = true
  }

  assert {
    condition     = aws_cloudwatch_log_group.access.retention_in_days == 365 && aws_cloudwatch_log_group.access.kms_key_id == "arn:aws:kms:us-east-1:000000000000:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    error_message = "retention and KMS key of the access log group must come from the variables"
  }

  assert {
    condition = (
      aws_api_gateway_account.this[0].cloudwatch_role_arn == aws_iam_role.cloudwatch[0].arn
      && aws_iam_role_policy.cloudwatch[0].role == aws_iam_role.cloudwatch[0].id
    )
    error_message = "manage_account_cloudwatch_role must set API Gateway's CloudWatch role, with a policy, in the account settings"
  }

  assert {
    condition = (
      toset(data.aws_iam_policy_document.cloudwatch[0].statement[0].resources) == toset(["arn:aws:logs:us-east-1:000000000000:log-group:*"])
      && alltrue([for action in data.aws_iam_policy_document.cloudwatch[0].statement[0].actions : startswith(action, "logs:") && !strcontains(action, "*")])
    )
    error_message = "the CloudWatch role may only write log groups of its own account and region, with named actions"
  }
}

run "access_log_retention_must_be_a_cloudwatch_value" {
  command = plan

  variables {
    access_log_retention_in_days = 10
  }

  expect_failures = [var.access_log_retention_in_days]
}

run "each_client_gets_its_own_key_and_usage_plan" {
  variables {
    clients = {
      acme   = { throttle_burst = 20, throttle_rate = 10, quota_limit = 50000, quota_period = "DAY" }
      globex = { throttle_burst = 200, throttle_rate = 100.5, quota_limit = 1000000, quota_period = "MONTH" }
    }
  }

  assert {
    condition     = toset(keys(aws_api_gateway_usage_plan.client)) == toset(["acme", "globex"]) && toset(keys(aws_api_gateway_api_key.client)) == toset(["acme", "globex"])
    error_message = "one key and one usage plan per client"
  }

  assert {
    condition = (
      aws_api_gateway_usage_plan.client["acme"].throttle_settings[0].burst_limit == 20
      && aws_api_gateway_usage_plan.client["acme"].throttle_settings[0].rate_limit == 10
      && aws_api_gateway_usage_plan.client["acme"].quota_settings[0].limit == 50000
      && aws_api_gateway_usage_plan.client["acme"].quota_settings[0].period == "DAY"
      && aws_api_gateway_usage_plan.client["globex"].throttle_settings[0].rate_limit == 100.5
      && aws_api_gateway_usage_plan.client["globex"].quota_settings[0].period == "MONTH"
    )
    error_message = "each client's plan must carry its own throttle and quota"
  }

  assert {
    condition = alltrue([for name in ["acme", "globex"] :
      aws_api_gateway_usage_plan_key.client[name].key_id == aws_api_gateway_api_key.client[name].id
      && aws_api_gateway_usage_plan_key.client[name].usage_plan_id == aws_api_gateway_usage_plan.client[name].id
      && [for stage in aws_api_gateway_usage_plan.client[name].api_stages : stage.stage] == ["v1"]
      && aws_api_gateway_api_key.client[name].name == "test-${name}"
    ])
    error_message = "each client's key must be in its own plan, on the stage"
  }

  assert {
    condition     = output.client_api_key_ids == { for name, key in aws_api_gateway_api_key.client : name => key.id }
    error_message = "client_api_key_ids must map each client to its key id"
  }

  assert {
    condition     = output.api_key_id == aws_api_gateway_api_key.this.id && aws_api_gateway_usage_plan_key.this.usage_plan_id == aws_api_gateway_usage_plan.this.id
    error_message = "the default key and plan (read by the local stack through api_key_id) must stay"
  }
}

run "client_settings_are_validated" {
  command = plan

  variables {
    clients = { acme = { throttle_burst = 20, throttle_rate = 10, quota_limit = 0, quota_period = "YEAR" } }
  }

  expect_failures = [var.clients]
}

run "client_named_default_is_refused" {
  command = plan

  variables {
    clients = { default = { throttle_burst = 20, throttle_rate = 10, quota_limit = 10, quota_period = "DAY" } }
  }

  expect_failures = [var.clients]
}

run "request_schema_must_be_draft_04" {
  command = plan

  variables {
    routes = { "POST /payments" = { function_name = "f", invoke_arn = "arn:f", request_schema = "{\"type\": \"object\"}" } }
  }

  expect_failures = [var.routes]
}

run "gateway_responses_are_configurable" {
  variables {
    gateway_responses = {
      BAD_REQUEST_BODY = {
        response_templates = { "application/json" = "{\"error\":\"validation_error\",\"message\":$context.error.messageString}" }
      }
    }
  }

  assert {
    condition = (
      aws_api_gateway_gateway_response.this["BAD_REQUEST_BODY"].response_type == "BAD_REQUEST_BODY"
      && strcontains(aws_api_gateway_gateway_response.this["BAD_REQUEST_BODY"].response_templates["application/json"], "validation_error")
    )
    error_message = "a configured gateway response must be created for its type"
  }
}

run "unknown_gateway_response_type_is_refused" {
  command = plan

  variables {
    gateway_responses = { BAD_BODY = {} }
  }

  expect_failures = [var.gateway_responses]
}
