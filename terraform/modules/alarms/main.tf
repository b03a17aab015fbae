resource "aws_cloudwatch_metric_alarm" "dlq" {
  for_each = var.dead_letter_queues

  alarm_name          = "${var.name_prefix}-dlq-${each.key}"
  alarm_description   = "Messages are waiting in the dead-letter queue ${each.value}: inspect and redrive them. Runbook: docs/runbooks/dlq.md"
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
  alarm_description   = "${each.value.function_name} is more than ${each.value.threshold_seconds} s behind its stream: check its errors and throttles. Runbook: docs/runbooks/iterator-age.md"
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

# A provisioned Kinesis stream refusing writes: its shards take 1,000 records or 1 MB per second each.
# The outbox relay retries the refused records (nothing is lost), so one busy minute is not an incident;
# three in a row mean the stream is too small for the traffic and fraud scoring falls behind.
resource "aws_cloudwatch_metric_alarm" "stream_write_throttled" {
  for_each = var.provisioned_streams

  alarm_name          = "${var.name_prefix}-stream-write-throttled-${each.key}"
  alarm_description   = "The provisioned Kinesis stream ${each.value} refused writes for 3 periods in a row: its shards are too few for the traffic. The outbox relay retries the refused records, so fraud scoring lags but nothing is lost. Add shards (stream_shard_count) or switch stream_mode to ON_DEMAND. Runbook: docs/runbooks/stream-throughput.md"
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = each.value }
  statistic           = "Sum"
  period              = var.period_seconds
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = var.tags
}

# The Stripe circuit breaker opened (or reopened after a failed probe): payments are being parked and
# refunds refused until Stripe answers again. The functions that share the breaker emit the EMF metric
# (StripeBreakerOpened, Count) in their own Powertools namespace with their `service` dimension, so each
# publishes its own series; one alarm adds them up with metric math instead of one alarm per function.
resource "aws_cloudwatch_metric_alarm" "breaker_open" {
  count = var.breaker_open_alarm == null ? 0 : 1

  alarm_name          = "${var.name_prefix}-stripe-breaker-open"
  alarm_description   = "The Stripe circuit breaker opened: Stripe calls fail (connection errors, timeouts, 5xx), payments are parked and refunds answered 503 until a probe succeeds. Check Stripe's status and the functions' logs. Runbook: docs/runbooks/stripe-breaker-open.md"
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = var.tags

  metric_query {
    id          = "opened"
    label       = "${var.breaker_open_alarm.metric_name} (all functions)"
    expression  = "SUM(METRICS())"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = var.breaker_open_alarm.services
    content {
      id          = "m${metric_query.key}"
      return_data = false

      metric {
        namespace   = var.breaker_open_alarm.namespace
        metric_name = var.breaker_open_alarm.metric_name
        dimensions  = { service = metric_query.value }
        stat        = "Sum"
        period      = var.period_seconds
      }
    }
  }
}
