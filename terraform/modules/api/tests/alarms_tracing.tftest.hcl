# Offline: the stage's X-Ray tracing and the API's 5xx and latency alarms (REST API: ApiName + Stage).
mock_provider "aws" {
  mock_resource "aws_api_gateway_rest_api" {
    defaults = {
      execution_arn = "arn:aws:execute-api:us-east-1:000000000000:abc123"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = {
      arn = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/apigateway/paystream-test/v1/access"
    }
  }
}

variables {
  name       = "paystream-test"
  stage_name = "v1"
  routes = {
    "POST /payments" = { function_name = "initiate", invoke_arn = "arn:initiate" }
  }
  alarm_action_arns = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
}

run "the_stage_is_traced_by_default" {
  command = plan

  assert {
    condition     = aws_api_gateway_stage.this.xray_tracing_enabled == true
    error_message = "X-Ray tracing must be on for the stage unless turned off"
  }
}

run "tracing_can_be_turned_off" {
  command = plan

  variables {
    xray_tracing_enabled = false
  }

  assert {
    condition     = aws_api_gateway_stage.this.xray_tracing_enabled == false
    error_message = "xray_tracing_enabled must reach the stage"
  }
}

run "server_errors_and_latency_percentiles_are_alarmed_on_the_api_and_stage" {
  command = plan

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.server_errors[0].alarm_name == "paystream-test-api-5xx"
      && aws_cloudwatch_metric_alarm.server_errors[0].namespace == "AWS/ApiGateway"
      && aws_cloudwatch_metric_alarm.server_errors[0].metric_name == "5XXError"
      && aws_cloudwatch_metric_alarm.server_errors[0].statistic == "Sum"
      && aws_cloudwatch_metric_alarm.server_errors[0].comparison_operator == "GreaterThanThreshold"
      && aws_cloudwatch_metric_alarm.server_errors[0].threshold == 0
      && aws_cloudwatch_metric_alarm.server_errors[0].treat_missing_data == "notBreaching"
    )
    error_message = "any 5xx answer in a period must raise <name>-api-5xx"
  }

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.latency)) == toset(["p95", "p99"])
    error_message = "p95 and p99 latency must be alarmed by default"
  }

  assert {
    condition = alltrue([for p, a in aws_cloudwatch_metric_alarm.latency :
      a.alarm_name == "paystream-test-api-latency-${p}" && a.namespace == "AWS/ApiGateway" && a.metric_name == "Latency"
      && a.extended_statistic == p && a.statistic == null && a.threshold == var.latency_alarm_thresholds_ms[p]
      && a.comparison_operator == "GreaterThanThreshold" && a.evaluation_periods == 5
    ])
    error_message = "each latency alarm watches its own percentile of Latency against its threshold, sustained over 5 periods"
  }

  assert {
    condition = alltrue([for a in concat(aws_cloudwatch_metric_alarm.server_errors, values(aws_cloudwatch_metric_alarm.latency)) :
      a.dimensions["ApiName"] == "paystream-test" && a.dimensions["Stage"] == "v1" && length(a.dimensions) == 2
    ])
    error_message = "REST API metrics are published per ApiName and Stage: the alarms must use exactly those"
  }

  assert {
    condition = alltrue([for a in concat(aws_cloudwatch_metric_alarm.server_errors, values(aws_cloudwatch_metric_alarm.latency)) :
      a.alarm_actions == toset(var.alarm_action_arns) && a.ok_actions == toset(var.alarm_action_arns)
    ])
    error_message = "the ops topic must hear when an API alarm fires and when it clears"
  }
}

run "thresholds_are_configurable" {
  command = plan

  variables {
    server_errors_alarm_threshold = 3
    latency_alarm_thresholds_ms   = { "p99.9" = 10000 }
  }

  assert {
    condition = (aws_cloudwatch_metric_alarm.server_errors[0].threshold == 3
      && keys(aws_cloudwatch_metric_alarm.latency) == ["p99.9"]
    && aws_cloudwatch_metric_alarm.latency["p99.9"].threshold == 10000)
    error_message = "the given thresholds and percentiles must reach the alarms"
  }
}

run "alarms_without_an_action_are_refused" {
  command = plan

  variables {
    alarm_action_arns = []
  }

  expect_failures = [aws_cloudwatch_metric_alarm.server_errors, aws_cloudwatch_metric_alarm.latency]
}

run "a_latency_key_that_is_not_a_percentile_is_refused" {
  command = plan

  variables {
    latency_alarm_thresholds_ms = { Average = 1000 }
  }

  expect_failures = [var.latency_alarm_thresholds_ms]
}
