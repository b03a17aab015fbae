# Offline: `terraform test` with a mocked provider checks the alarms every function gets from the module.
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  function_name     = "paystream-test-initiate-payment"
  filename          = "main.tf" # any existing file: the precondition only checks that the zip exists
  source_code_hash  = "x"
  handler           = "handler.handler"
  alarm_action_arns = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
}

run "errors_and_throttles_are_alarmed_to_the_ops_topic" {
  command = plan

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.function)) == toset(["errors", "throttles"])
    error_message = "every function needs an Errors and a Throttles alarm"
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.function["errors"].metric_name == "Errors"
      && aws_cloudwatch_metric_alarm.function["throttles"].metric_name == "Throttles"
    )
    error_message = "the errors alarm watches Errors, the throttles alarm Throttles"
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.function :
      a.namespace == "AWS/Lambda" && a.dimensions["FunctionName"] == "paystream-test-initiate-payment" && length(a.dimensions) == 1
      && a.statistic == "Sum" && a.comparison_operator == "GreaterThanThreshold" && a.threshold == 0
      && a.period == 60 && a.evaluation_periods == 1 && a.treat_missing_data == "notBreaching"
    ])
    error_message = "by default an alarm fires on any error or throttle of this function within a minute; no invocations is not a failure"
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.function :
      a.alarm_actions == toset(var.alarm_action_arns) && a.ok_actions == toset(var.alarm_action_arns)
    ])
    error_message = "the ops topic must hear when an alarm fires and when it clears"
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.function["errors"].alarm_name == "paystream-test-initiate-payment-errors"
      && aws_cloudwatch_metric_alarm.function["throttles"].alarm_name == "paystream-test-initiate-payment-throttles"
    )
    error_message = "alarm names must start with the function's name (<prefix>-<function>-errors)"
  }
}

run "thresholds_and_periods_are_configurable" {
  command = plan

  variables {
    errors_alarm_threshold    = 5
    throttles_alarm_threshold = 2
    alarm_period_seconds      = 300
    alarm_evaluation_periods  = 2
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.function["errors"].threshold == 5
      && aws_cloudwatch_metric_alarm.function["throttles"].threshold == 2
      && alltrue([for a in aws_cloudwatch_metric_alarm.function : a.period == 300 && a.evaluation_periods == 2])
    )
    error_message = "the given thresholds, period and evaluation periods must reach the alarms"
  }
}

run "alarms_without_an_action_are_refused" {
  command = plan

  variables {
    alarm_action_arns = []
  }

  expect_failures = [aws_cloudwatch_metric_alarm.function]
}

run "alarms_can_be_turned_off_and_then_need_no_action" {
  command = plan

  variables {
    alarms_enabled    = false
    alarm_action_arns = []
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.function) == 0
    error_message = "alarms_enabled = false must create no alarm"
  }
}

run "a_negative_threshold_is_refused" {
  command = plan

  variables {
    errors_alarm_threshold = -1
  }

  expect_failures = [var.errors_alarm_threshold]
}

run "a_period_that_is_not_whole_minutes_is_refused" {
  command = plan

  variables {
    alarm_period_seconds = 90
  }

  expect_failures = [var.alarm_period_seconds]
}
