resource "aws_cloudwatch_metric_alarm" "dlq" {
  for_each = var.dead_letter_queues

  alarm_name          = "${var.name_prefix}-dlq-${each.key}"
  alarm_description   = "Messages are waiting in the dead-letter queue ${each.value}: inspect and redrive them."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = var.tags
}

# A stream consumer falling behind: Lambda's IteratorAge is the age of the last record of each batch it
# processed. Growing age means records wait (failing batches retried, throttling, too slow a function)
# and, past the mapping's maximum record age, are sent to the on-failure destination unprocessed.
resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  for_each = var.iterator_age_alarms

  alarm_name          = "${var.name_prefix}-iterator-age-${each.key}"
  alarm_description   = "${each.value.function_name} is more than ${each.value.threshold_seconds} s behind its stream: check its errors and throttles."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = each.value.function_name }
  statistic           = "Maximum"
  period              = var.period_seconds
  evaluation_periods  = each.value.evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold_seconds * 1000
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = var.tags
}
