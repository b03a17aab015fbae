# Offline: `terraform test` with a mocked provider checks that every rule's target can fail safely.
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
  # The provider validates ARNs it is handed, so the mocked computed ARNs must look like ARNs.
  mock_resource "aws_cloudwatch_event_bus" {
    defaults = { arn = "arn:aws:events:us-east-1:000000000000:event-bus/payments" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:000000000000:rule/payments/rule" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:000000000000:payments-target-dlq", id = "http://sqs/000000000000/payments-target-dlq" }
  }
}

variables {
  bus_name    = "payments"
  kms_key_arn = "arn:aws:kms:us-east-1:000000000000:key/test"
  target_queues = {
    process = { arn = "arn:aws:sqs:us-east-1:000000000000:process", url = "http://sqs/000000000000/process" }
    notify  = { arn = "arn:aws:sqs:us-east-1:000000000000:notify", url = "http://sqs/000000000000/notify" }
  }
  rules = {
    stripe  = { description = "webhooks", event_pattern = "{\"source\":[\"paystream.stripe\"]}", target_queue = "process" }
    outcome = { description = "outcomes", event_pattern = "{\"detail-type\":[\"payment.succeeded\"]}", target_queue = "notify" }
    retries = { description = "retries", event_pattern = "{\"detail\":{\"retryable\":[true]}}", target_queue = "notify" }
  }
  retry_maximum_attempts          = 20
  retry_maximum_event_age_seconds = 7200
}

run "every_target_has_a_retry_policy_and_the_target_dlq" {
  command = apply

  assert {
    condition     = length(aws_cloudwatch_event_target.this) == 3
    error_message = "every rule needs exactly one target"
  }

  assert {
    condition = alltrue([for t in aws_cloudwatch_event_target.this :
      t.retry_policy[0].maximum_retry_attempts == 20 && t.retry_policy[0].maximum_event_age_in_seconds == 7200
    ])
    error_message = "every target must carry the retry policy (maximum attempts and event age)"
  }

  assert {
    condition     = alltrue([for t in aws_cloudwatch_event_target.this : t.dead_letter_config[0].arn == aws_sqs_queue.target_dlq.arn])
    error_message = "every target must dead-letter into the target DLQ"
  }

  assert {
    condition     = aws_sqs_queue.target_dlq.message_retention_seconds == 1209600 && output.target_dlq_message_retention_seconds == 1209600
    error_message = "the target DLQ must keep undeliverable events 14 days (1209600 s, SQS's maximum) by default"
  }

  assert {
    condition     = aws_sqs_queue.target_dlq.kms_master_key_id == "arn:aws:kms:us-east-1:000000000000:key/test"
    error_message = "the target DLQ must be encrypted with the customer-managed key"
  }

  assert {
    condition     = aws_cloudwatch_event_target.this["retries"].arn == "arn:aws:sqs:us-east-1:000000000000:notify"
    error_message = "a rule's target must be the queue it names"
  }

  assert {
    condition     = toset(keys(aws_sqs_queue_policy.target_queue)) == toset(["process", "notify"]) && length(aws_sqs_queue_policy.target_dlq) == 1
    error_message = "each targeted queue needs one policy letting its rules send, and the target DLQ one for EventBridge"
  }
}

run "a_rule_must_target_a_known_queue" {
  command = plan

  variables {
    rules = {
      lost = { description = "nowhere", event_pattern = "{\"source\":[\"x\"]}", target_queue = "missing" }
    }
  }

  expect_failures = [var.rules]
}
