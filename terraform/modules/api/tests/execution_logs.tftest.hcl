# Offline: execution logging and per-method metrics on every method, never full request/response bodies.
mock_provider "aws" {
  mock_resource "aws_api_gateway_rest_api" {
    defaults = {
      id            = "abc123"
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
  name                   = "test"
  alarm_action_arns      = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
  access_log_kms_key_arn = "arn:aws:kms:us-east-1:000000000000:key/test"
  routes = {
    "GET /payments/{transaction_id}" = { function_name = "query", invoke_arn = "arn:query" }
  }
}

run "every_method_logs_errors_and_sends_metrics_without_bodies" {
  assert {
    condition     = aws_api_gateway_method_settings.all.method_path == "*/*" && aws_api_gateway_method_settings.all.stage_name == aws_api_gateway_stage.this.stage_name
    error_message = "the method settings must apply to every method of the stage"
  }

  assert {
    condition     = aws_api_gateway_method_settings.all.settings[0].logging_level == "ERROR" && aws_api_gateway_method_settings.all.settings[0].metrics_enabled
    error_message = "execution logs at ERROR and per-method metrics must be on"
  }

  assert {
    condition     = aws_api_gateway_method_settings.all.settings[0].data_trace_enabled == false && aws_api_gateway_method_settings.all.settings[0].caching_enabled == false
    error_message = "data tracing (full bodies: card details, keys) and response caching must stay off"
  }
}

run "execution_log_group_is_managed_with_retention_and_the_key" {
  assert {
    condition     = aws_cloudwatch_log_group.execution.name == "API-Gateway-Execution-Logs_abc123/v1"
    error_message = "the execution log group must be the one API Gateway writes to (API-Gateway-Execution-Logs_<api id>/<stage>)"
  }

  assert {
    condition = (
      aws_cloudwatch_log_group.execution.retention_in_days == aws_cloudwatch_log_group.access.retention_in_days
      && aws_cloudwatch_log_group.execution.kms_key_id == var.access_log_kms_key_arn
    )
    error_message = "the execution log group must have the access logs' retention and key"
  }
}
