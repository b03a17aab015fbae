# Offline: `terraform test` with a mocked provider checks that every DLQ is alarmed to the given topic.
mock_provider "aws" {}

variables {
  name_prefix = "paystream-test"
  dead_letter_queues = {
    process-payment   = "paystream-test-process-payment-dlq"
    event-bus-targets = "paystream-test-payments-target-dlq"
  }
  alarm_action_arns = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
}

run "one_alarm_per_dlq_with_the_ops_topic_as_action" {
  command = plan

  assert {
    condition     = toset(keys(aws_cloudwatch_metric_alarm.dlq)) == toset(keys(var.dead_letter_queues))
    error_message = "every DLQ needs its own alarm"
  }

  assert {
    condition = alltrue([for k, a in aws_cloudwatch_metric_alarm.dlq :
      a.namespace == "AWS/SQS" && a.metric_name == "ApproximateNumberOfMessagesVisible"
      && a.dimensions["QueueName"] == var.dead_letter_queues[k] && length(a.dimensions) == 1
      && a.comparison_operator == "GreaterThanThreshold" && a.threshold == 0
    ])
    error_message = "an alarm fires on any visible message in its own DLQ"
  }

  assert {
    condition = alltrue([for a in aws_cloudwatch_metric_alarm.dlq :
      a.alarm_actions == toset(var.alarm_action_arns) && a.ok_actions == toset(var.alarm_action_arns)
    ])
    error_message = "the ops topic must hear when an alarm fires and when it clears"
  }
}

run "an_alarm_without_an_action_is_refused" {
  command = plan

  variables {
    alarm_action_arns = []
  }

  expect_failures = [var.alarm_action_arns]
}

run "iterator_age_alarms_watch_each_consumer_in_milliseconds" {
  command = plan

  variables {
    iterator_age_alarms = {
      fraud-scorer = { function_name = "paystream-test-fraud-scorer", threshold_seconds = 60 }
    }
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].namespace == "AWS/Lambda"
      && aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].metric_name == "IteratorAge"
      && aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].dimensions["FunctionName"] == "paystream-test-fraud-scorer"
      && length(aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].dimensions) == 1
      && aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].threshold == 60000
      && aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].statistic == "Maximum"
    )
    error_message = "the alarm fires when the function's IteratorAge (ms) exceeds the threshold"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.iterator_age["fraud-scorer"].alarm_actions == toset(var.alarm_action_arns)
    error_message = "the ops topic must hear when a consumer falls behind"
  }
}

run "a_zero_iterator_age_threshold_is_refused" {
  command = plan

  variables {
    iterator_age_alarms = {
      fraud-scorer = { function_name = "f", threshold_seconds = 0 }
    }
  }

  expect_failures = [var.iterator_age_alarms]
}

run "no_breaker_alarm_unless_asked" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.breaker_open) == 0
    error_message = "without breaker_open_alarm there is no breaker alarm"
  }
}

run "breaker_open_alarm_sums_every_breaker_owner" {
  command = plan

  variables {
    breaker_open_alarm = {
      namespace = "paystream"
      services  = ["initiate_payment", "refund_payment"]
    }
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.breaker_open[0].alarm_name == "paystream-test-stripe-breaker-open"
      && aws_cloudwatch_metric_alarm.breaker_open[0].comparison_operator == "GreaterThanThreshold"
      && aws_cloudwatch_metric_alarm.breaker_open[0].threshold == 0
      && aws_cloudwatch_metric_alarm.breaker_open[0].treat_missing_data == "notBreaching"
    )
    error_message = "any breaker opening must raise <prefix>-stripe-breaker-open"
  }

  assert {
    condition = toset([for q in aws_cloudwatch_metric_alarm.breaker_open[0].metric_query : q.metric[0].dimensions["service"] if length(q.metric) > 0]) == toset(["initiate_payment", "refund_payment"]) && alltrue([
      for q in aws_cloudwatch_metric_alarm.breaker_open[0].metric_query : q.metric[0].namespace == "paystream" && q.metric[0].metric_name == "StripeBreakerOpened" && q.metric[0].stat == "Sum" && !q.return_data
      if length(q.metric) > 0
    ])
    error_message = "the alarm must read StripeBreakerOpened (Sum) of every given service in the given namespace"
  }

  assert {
    condition     = one([for q in aws_cloudwatch_metric_alarm.breaker_open[0].metric_query : q.expression if q.return_data]) == "SUM(METRICS())"
    error_message = "the alarm must fire on the sum over the services"
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.breaker_open[0].alarm_actions == toset(var.alarm_action_arns)
      && aws_cloudwatch_metric_alarm.breaker_open[0].ok_actions == toset(var.alarm_action_arns)
    )
    error_message = "the ops topic must hear when the breaker opens and when the alarm clears"
  }
}

run "a_breaker_alarm_without_services_is_refused" {
  command = plan

  variables {
    breaker_open_alarm = { namespace = "paystream", services = [] }
  }

  expect_failures = [var.breaker_open_alarm]
}

run "a_provisioned_stream_is_alarmed_when_its_writes_are_refused" {
  command = plan

  variables {
    provisioned_streams = { fraud = "paystream-test-fraud" }
  }

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.stream_write_throttled["fraud"].namespace == "AWS/Kinesis"
      && aws_cloudwatch_metric_alarm.stream_write_throttled["fraud"].metric_name == "WriteProvisionedThroughputExceeded"
      && aws_cloudwatch_metric_alarm.stream_write_throttled["fraud"].dimensions["StreamName"] == "paystream-test-fraud"
      && aws_cloudwatch_metric_alarm.stream_write_throttled["fraud"].threshold == 0
      && aws_cloudwatch_metric_alarm.stream_write_throttled["fraud"].alarm_actions == toset(var.alarm_action_arns)
    )
    error_message = "a provisioned stream's refused writes must reach the ops topic"
  }
}

run "no_stream_alarm_by_default" {
  command = plan

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.stream_write_throttled) == 0
    error_message = "ON_DEMAND streams (none given) get no throughput alarm"
  }
}
