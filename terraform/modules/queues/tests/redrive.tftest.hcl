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
