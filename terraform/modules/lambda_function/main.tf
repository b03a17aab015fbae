data "aws_partition" "current" {}

locals {
  log_group_name = "/aws/lambda/${var.function_name}"

  # The service of each event source decides what the role must be allowed to read from it.
  source_service = { for k, m in var.event_source_mappings : k => split(":", m.event_source_arn)[2] }
  source_actions = {
    sqs      = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
    kinesis  = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:SubscribeToShard"]
    dynamodb = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
  }
  failure_destinations = { for k, m in var.event_source_mappings : k => m.on_failure_destination_arn if m.on_failure_destination_arn != null }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # Tracing is Active: Lambda refuses the function if its role cannot send traces.
  statement {
    sid       = "WriteTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.event_source_mappings
    content {
      sid       = "ReadEventSource${replace(title(replace(statement.key, "/[^A-Za-z0-9]+/", " ")), " ", "")}"
      actions   = local.source_actions[local.source_service[statement.key]]
      resources = [statement.value.event_source_arn]
    }
  }

  dynamic "statement" {
    for_each = local.failure_destinations
    content {
      sid       = "SendFailures${replace(title(replace(statement.key, "/[^A-Za-z0-9]+/", " ")), " ", "")}"
      actions   = startswith(statement.value, "arn:${data.aws_partition.current.partition}:sns:") ? ["sns:Publish"] : ["sqs:SendMessage"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.iam_statements
    content {
      sid       = statement.value.sid
      effect    = statement.value.effect
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.function_name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.function_name}-policy"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:No function is invoked asynchronously (API Gateway invokes synchronously, SQS/Kinesis/DynamoDB streams through event source mappings whose failures go to the queues' DLQs and the mappings' on-failure destinations, EventBridge rules target SQS): a function DLQ would never receive anything.
  #checkov:skip=CKV_AWS_117:No private resources to reach: the functions call AWS APIs and Stripe over HTTPS with IAM/TLS; a VPC would only add NAT gateways (cost, a single egress path) and cold-start ENIs.
  #checkov:skip=CKV_AWS_272:Code signing is not used: zips are built reproducibly by `make package` and uploaded by the same Terraform apply; there is no AWS Signer profile or signing step in the pipeline to validate against.
  function_name                  = var.function_name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  filename                       = var.filename
  source_code_hash               = var.source_code_hash
  handler                        = var.handler
  runtime                        = var.runtime
  architectures                  = [var.architecture]
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions
  layers                         = var.layers
  # The environment variables hold names and ARNs, never secrets (those are read from Secrets Manager),
  # but they are encrypted at rest with the platform's key like everything else. Lambda decrypts them
  # through a grant it creates for the execution role: the role needs no kms:Decrypt for this.
  kms_key_arn = var.kms_key_arn

  dynamic "environment" {
    for_each = length(var.environment_variables) > 0 ? [var.environment_variables] : []
    content {
      variables = environment.value
    }
  }

  tracing_config {
    mode = "Active"
  }

  tags = var.tags

  # The log group must exist first, or Lambda creates an unmanaged one without retention.
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]

  lifecycle {
    precondition {
      condition     = fileexists(var.filename)
      error_message = "Function zip ${var.filename} does not exist: run `make package` first."
    }
  }
}

resource "aws_lambda_event_source_mapping" "this" {
  for_each = var.event_source_mappings

  function_name                      = aws_lambda_function.this.arn
  event_source_arn                   = each.value.event_source_arn
  enabled                            = each.value.enabled
  batch_size                         = each.value.batch_size
  maximum_batching_window_in_seconds = each.value.maximum_batching_window_in_seconds
  function_response_types            = each.value.function_response_types
  starting_position                  = local.source_service[each.key] == "sqs" ? null : coalesce(each.value.starting_position, "LATEST")
  bisect_batch_on_function_error     = each.value.bisect_batch_on_function_error
  maximum_retry_attempts             = each.value.maximum_retry_attempts
  maximum_record_age_in_seconds      = each.value.maximum_record_age_in_seconds
  parallelization_factor             = each.value.parallelization_factor

  dynamic "filter_criteria" {
    for_each = length(each.value.filter_patterns) > 0 ? [each.value.filter_patterns] : []
    content {
      dynamic "filter" {
        for_each = filter_criteria.value
        content {
          pattern = filter.value
        }
      }
    }
  }

  dynamic "destination_config" {
    for_each = each.value.on_failure_destination_arn == null ? [] : [each.value.on_failure_destination_arn]
    content {
      on_failure {
        destination_arn = destination_config.value
      }
    }
  }

  dynamic "scaling_config" {
    for_each = each.value.maximum_concurrency == null ? [] : [each.value.maximum_concurrency]
    content {
      maximum_concurrency = scaling_config.value
    }
  }

  # The role must be able to read the source before Lambda validates the mapping.
  depends_on = [aws_iam_role_policy.this]
}

# -- alarms ---------------------------------------------------------------------------------------
# The module owns its function's alarms, so every function gets them and their FunctionName dimension
# cannot drift from the function. Errors: invocations that raised or timed out (for an event source
# mapping, each failed batch). Throttles: invocations refused for want of concurrency (a reserved
# concurrency too low, or the account limit reached). Either, once a period, means work waits or is lost.
locals {
  function_alarms = var.alarms_enabled ? {
    errors = {
      metric_name = "Errors"
      threshold   = var.errors_alarm_threshold
      description = "${var.function_name} failed more than ${var.errors_alarm_threshold} invocation(s) in ${var.alarm_period_seconds} s: read its logs (errors, timeouts) and its DLQ or on-failure destination. Runbook: docs/runbooks/function-errors.md"
    }
    throttles = {
      metric_name = "Throttles"
      threshold   = var.throttles_alarm_threshold
      description = "${var.function_name} was throttled more than ${var.throttles_alarm_threshold} time(s) in ${var.alarm_period_seconds} s: check its reserved concurrency and the account's concurrency limit. Runbook: docs/runbooks/function-throttles.md"
    }
  } : {}
}

resource "aws_cloudwatch_metric_alarm" "function" {
  for_each = local.function_alarms

  alarm_name          = "${var.function_name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric_name
  dimensions          = { FunctionName = aws_lambda_function.this.function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  # No invocations means no datapoints: nothing failed.
  treat_missing_data = "notBreaching"
  alarm_actions      = var.alarm_action_arns
  ok_actions         = var.alarm_action_arns
  tags               = var.tags

  lifecycle {
    precondition {
      condition     = length(var.alarm_action_arns) > 0
      error_message = "alarm_action_arns needs at least one ARN while alarms_enabled is true: an alarm nobody hears is a silent failure."
    }
  }
}
