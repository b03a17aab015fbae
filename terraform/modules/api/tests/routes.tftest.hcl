# Offline: `terraform test` with a mocked provider checks how routes become resources.
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
}

variables {
  name              = "test"
  alarm_action_arns = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
  routes = {
    "POST /payments"                          = { function_name = "initiate", invoke_arn = "arn:initiate" }
    "GET /payments/{transaction_id}"          = { function_name = "query", invoke_arn = "arn:query" }
    "POST /payments/{transaction_id}/refunds" = { function_name = "refund", invoke_arn = "arn:refund" }
    "POST /webhooks/stripe"                   = { function_name = "webhook", invoke_arn = "arn:webhook", api_key_required = false }
  }
}

run "paths_become_nested_resources" {
  command = plan

  assert {
    condition     = toset(keys(aws_api_gateway_resource.level1)) == toset(["payments", "webhooks"])
    error_message = "first-level resources are wrong"
  }

  assert {
    condition     = toset(keys(aws_api_gateway_resource.level2)) == toset(["payments/{transaction_id}", "webhooks/stripe"])
    error_message = "second-level resources are wrong"
  }

  assert {
    condition     = aws_api_gateway_resource.level3["payments/{transaction_id}/refunds"].path_part == "refunds"
    error_message = "third-level resource is wrong"
  }

  assert {
    condition     = aws_api_gateway_method.this["POST /webhooks/stripe"].api_key_required == false && aws_api_gateway_method.this["POST /payments"].api_key_required == true
    error_message = "api_key_required must default to true and be settable per route"
  }

  assert {
    condition     = alltrue([for i in aws_api_gateway_integration.this : i.type == "AWS_PROXY" && i.integration_http_method == "POST"])
    error_message = "every route must be an AWS_PROXY integration invoked with POST"
  }

  assert {
    condition     = aws_api_gateway_stage.this.stage_name == "v1"
    error_message = "the stage must default to v1"
  }
}

run "permissions_match_any_path_parameter" {
  assert {
    condition     = endswith(aws_lambda_permission.this["POST /payments/{transaction_id}/refunds"].source_arn, "/*/POST/payments/*/refunds")
    error_message = "path parameters must become * in the permission's source ARN"
  }

  assert {
    condition     = aws_lambda_permission.this["GET /payments/{transaction_id}"].statement_id == "apigw-get-payments-transaction_id"
    error_message = "statement ids must be derived from method and path"
  }
}

run "malformed_route_is_rejected" {
  command = plan

  variables {
    routes = { "post payments" = { function_name = "f", invoke_arn = "arn:f" } }
  }

  expect_failures = [var.routes]
}
