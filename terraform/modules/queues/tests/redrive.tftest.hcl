# Offline: `terraform test` with a mocked provider checks that every consumer queue has its own DLQ.
mock_provider "aws" {}

variables {
  name_prefix = "paystream-test"
  kms_key_arn = "arn:aws:kms:us-east-1:000000000000:key/test"
  queues = {
    process-payment = { visibility_timeout_seconds = 30, max_receive_count = 3 }
    notifications   = {}
  }
}

run "every_queue_redrives_to_its_own_dlq" {
  command = apply

  assert {
    condition = alltrue([for k, q in aws_sqs_queue.this :
      jsondecode(q.redrive_policy).deadLetterTargetArn == aws_sqs_queue.dlq[k].arn
    ])
    error_message = "each consumer queue must redrive to its own DLQ"
  }

  assert {
    condition = (jsondecode(aws_sqs_queue.this["process-payment"].redrive_policy).maxReceiveCount == 3
    && jsondecode(aws_sqs_queue.this["notifications"].redrive_policy).maxReceiveCount == 5)
    error_message = "maxReceiveCount must come from the queue's settings (default 5)"
  }

  assert {
    condition     = aws_sqs_queue.dlq["notifications"].name == "paystream-test-notifications-dlq" && output.dlq_names["process-payment"] == "paystream-test-process-payment-dlq"
    error_message = "DLQs are named <prefix>-<key>-dlq and listed by their source queue's key"
  }

  assert {
    condition = alltrue([for k, p in aws_sqs_queue_redrive_allow_policy.dlq :
      jsondecode(p.redrive_allow_policy).sourceQueueArns == [aws_sqs_queue.this[k].arn]
    ])
    error_message = "a DLQ may only take messages from its own source queue"
  }
}

# Dead letters are kept as long as SQS allows (14 days): time to notice the alarm, fix and redrive.
run "dead_letter_queues_keep_messages_14_days" {
  command = apply

  assert {
    condition     = alltrue([for q in aws_sqs_queue.dlq : q.message_retention_seconds == 1209600]) && length(aws_sqs_queue.dlq) == 2
    error_message = "every DLQ must keep its messages 14 days (1209600 s) by default"
  }

  assert {
    condition     = output.dlq_message_retention_seconds == { process-payment = 1209600, notifications = 1209600 }
    error_message = "the module must report each DLQ's retention"
  }
}

# AWS guidance for SQS event sources: visibility timeout >= 6 x the consuming function's timeout.
run "visibility_of_six_times_the_consumer_timeout_is_accepted" {
  command = plan

  variables {
    queues = {
      process-payment = { consumer_timeout_seconds = 20, visibility_timeout_seconds = 120 }
      relay-failures  = { visibility_timeout_seconds = 30 } # no Lambda consumer: no rule
    }
  }

  assert {
    condition     = aws_sqs_queue.this["process-payment"].visibility_timeout_seconds == 120
    error_message = "the queue must get the visibility timeout it is given"
  }
}

run "visibility_below_six_times_the_consumer_timeout_is_refused" {
  command = plan

  variables {
    queues = {
      process-payment = { consumer_timeout_seconds = 20, visibility_timeout_seconds = 119 }
    }
  }

  expect_failures = [var.queues]
}

run "the_default_visibility_is_checked_too" {
  command = plan

  variables {
    queues = {
      notifications = { consumer_timeout_seconds = 10 } # default visibility 30 s < 60 s
    }
  }

  expect_failures = [var.queues]
}
