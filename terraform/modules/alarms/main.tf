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
