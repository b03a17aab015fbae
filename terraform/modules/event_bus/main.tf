locals {
  archive_name    = coalesce(var.archive_name, "${var.bus_name}-all")
  target_dlq_name = coalesce(var.target_dlq_name, "${var.bus_name}-target-dlq")
  # One queue policy per targeted queue, naming every rule that feeds it.
  rule_names_by_queue = { for name, rule in var.rules : rule.target_queue => name... }
}

resource "aws_cloudwatch_event_bus" "this" {
  name = var.bus_name
  tags = var.tags
}

resource "aws_cloudwatch_event_archive" "all" {
  name             = local.archive_name
  description      = "Every event on ${var.bus_name}, for replay."
  event_source_arn = aws_cloudwatch_event_bus.this.arn
  retention_days   = var.archive_retention_days
}

resource "aws_sqs_queue" "target_dlq" {
  name                              = local.target_dlq_name
  message_retention_seconds         = var.target_dlq_message_retention_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
  tags                              = var.tags
}

resource "aws_cloudwatch_event_rule" "this" {
  for_each = var.rules

  name           = each.key
  description    = each.value.description
  event_bus_name = aws_cloudwatch_event_bus.this.name
  event_pattern  = each.value.event_pattern
  tags           = var.tags
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = var.rules

  rule           = aws_cloudwatch_event_rule.this[each.key].name
  event_bus_name = aws_cloudwatch_event_bus.this.name
  target_id      = "sqs"
  arn            = var.target_queues[each.value.target_queue].arn
  input_path     = each.value.input_path

  retry_policy {
    maximum_event_age_in_seconds = var.retry_maximum_event_age_seconds
    maximum_retry_attempts       = var.retry_maximum_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.target_dlq.arn
  }
}

data "aws_iam_policy_document" "target_queue" {
  for_each = local.rule_names_by_queue

  statement {
    sid       = "EventBridgeRulesSend"
    actions   = ["sqs:SendMessage"]
    resources = [var.target_queues[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for name in each.value : aws_cloudwatch_event_rule.this[name].arn]
    }
  }
}

resource "aws_sqs_queue_policy" "target_queue" {
  for_each = local.rule_names_by_queue

  queue_url = var.target_queues[each.key].url
  policy    = data.aws_iam_policy_document.target_queue[each.key].json
}

data "aws_iam_policy_document" "target_dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.target_dlq.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for rule in aws_cloudwatch_event_rule.this : rule.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "target_dlq" {
  count = length(var.rules) > 0 ? 1 : 0

  queue_url = aws_sqs_queue.target_dlq.id
  policy    = data.aws_iam_policy_document.target_dlq.json
}
