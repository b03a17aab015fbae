# Offline: `terraform test` with a mocked provider checks the platform's SQS visibility rule, DLQ retention
# and WAF wiring (items 3 and 5 of issue 6). The function and layer modules are replaced by their outputs, as
# in platform.tftest.hcl.
mock_provider "aws" {
  source = "./tests/mocks"
}

override_module {
  target = module.functions
  outputs = {
    function_name = "paystream-test-fn"
    function_arn  = "arn:aws:lambda:eu-west-1:000000000000:function:paystream-test-fn"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:000000000000:function:paystream-test-fn/invocations"
  }
}

override_module {
  target  = module.layers
  outputs = { arn = "arn:aws:lambda:eu-west-1:000000000000:layer:paystream-test-core:1" }
}

variables {
  name_prefix       = "paystream-test"
  fraud_config_json = "{\"thresholds\": {\"review\": 65, \"block\": 90}}"
}

# AWS guidance for SQS event sources: the queue's visibility timeout is at least six times the timeout of
# the function its mapping invokes. Checked against the functions that really consume each queue: every
# queue gets its own ARN here, and each SQS mapping is matched to its queue by ARN.
run "every_sqs_consumer_fits_six_times_in_its_queue_visibility" {
  command = plan

  override_resource {
    target          = module.queues.aws_sqs_queue.this["process-payment"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-process-payment" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["parked-payments"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-parked-payments" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["relay-failures"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-relay-failures" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["notifications"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-notifications" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["payment-retry"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-payment-retry" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["fraud-scoring-failures"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-fraud-scoring-failures" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["fraud-review"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-fraud-review" }
  }
  override_resource {
    target          = module.queues.aws_sqs_queue.this["payment-captures"]
    override_during = plan
    values          = { arn = "arn:aws:sqs:eu-west-1:000000000000:paystream-test-payment-captures" }
  }
  override_resource {
    target          = module.data.aws_dynamodb_table.transactions
    override_during = plan
    values          = { stream_arn = "arn:aws:dynamodb:eu-west-1:000000000000:table/paystream-test-transactions/stream/2024-01-01T00:00:00.000" }
  }
  override_resource {
    target          = module.streaming.aws_kinesis_stream.this
    override_during = plan
    values          = { arn = "arn:aws:kinesis:eu-west-1:000000000000:stream/paystream-test-fraud" }
  }

  assert {
    condition     = length(distinct(values(module.queues.queue_arns))) == length(local.queues)
    error_message = "test setup: every queue needs its own ARN, or mappings cannot be matched to queues"
  }

  assert {
    # Which queue each function's SQS mappings read, by ARN.
    condition = jsonencode({ for fn, spec in local.functions : fn => sort(flatten([
      for m in values(spec.event_source_mappings) : [for q, arn in module.queues.queue_arns : q if arn == m.event_source_arn]
      ])) if anytrue([for m in values(spec.event_source_mappings) : contains(values(module.queues.queue_arns), m.event_source_arn)]) }) == jsonencode({
      capture_payment = ["payment-captures"]
      fraud_review    = ["fraud-review"]
      notifier        = ["notifications"]
      payment_retry   = ["payment-retry"]
      process_payment = ["process-payment"]
      resume_payments = ["parked-payments"]
    })
    error_message = "the SQS consumers changed: check their queues' visibility timeouts and this test"
  }

  assert {
    condition = alltrue(flatten([for fn, spec in local.functions : [
      for m in values(spec.event_source_mappings) : [
        for q, arn in module.queues.queue_arns :
        module.queues.visibility_timeout_seconds[q] >= 6 * spec.timeout && local.queues[q].consumer_timeout_seconds == spec.timeout
        if arn == m.event_source_arn
      ]
    ]]))
    error_message = "every SQS queue's visibility timeout must be at least six times its consuming function's timeout, and the queue must be told that timeout (consumer_timeout_seconds)"
  }

  # The production values (the defaults): the consumers keep room for a slow Stripe call.
  assert {
    condition = module.queues.visibility_timeout_seconds == {
      process-payment = 120, parked-payments = 180, notifications = 120, payment-retry = 180
      fraud-review    = 90, payment-captures = 90, relay-failures = 60, fraud-scoring-failures = 60
    }
    error_message = "the AWS visibility timeouts must be six times the default consumer timeouts (20, 30, 20, 30, 15, 15 s)"
  }
}

# The local environment's shorter consumer timeouts keep today's visibility timeouts, which the e2e drills
# wait on (tests/e2e/test_dead_letters.py: 3 receives x 30 s on process-payment).
run "local_consumer_timeouts_keep_the_drills_fast" {
  command = plan

  variables {
    sqs_consumer_timeouts = { process_payment = 5, resume_payments = 10, notifier = 10, payment_retry = 10, fraud_review = 15, capture_payment = 15 }
  }

  assert {
    condition = module.queues.visibility_timeout_seconds == {
      process-payment = 30, parked-payments = 60, notifications = 60, payment-retry = 60
      fraud-review    = 90, payment-captures = 90, relay-failures = 60, fraud-scoring-failures = 60
    }
    error_message = "with the local consumer timeouts the visibility timeouts must stay 30/60/60/60/90/90 s"
  }

  assert {
    condition     = local.functions.process_payment.timeout == 5 && local.functions.resume_payments.timeout == 10 && local.functions.capture_payment.timeout == 15
    error_message = "sqs_consumer_timeouts must reach the consuming functions"
  }
}

run "a_consumer_timeout_over_the_lambda_maximum_is_refused" {
  command = plan

  variables {
    sqs_consumer_timeouts = { notifier = 901 }
  }

  expect_failures = [var.sqs_consumer_timeouts]
}

# The consumers that read, write and publish per batch gather records for a second by default (fewer AWS
# requests per payment); the others invoke at once (a parked payment or a capture should not wait).
run "batch_consumers_gather_records_for_the_batching_window" {
  command = plan

  assert {
    condition = {
      for fn, spec in local.functions : fn => [for m in values(spec.event_source_mappings) : try(m.maximum_batching_window_in_seconds, null)]
      if length(spec.event_source_mappings) > 0
      } == {
      process_payment = [1], notifier = [1], fraud_scorer = [1]
      resume_payments = [null], payment_retry = [null], fraud_review = [null], capture_payment = [null], outbox_relay = [null]
    }
    error_message = "process_payment, the notifier and the fraud scorer must gather records for consumer_batching_window_seconds (1 s by default); the other mappings invoke at once"
  }
}

run "a_batching_window_can_be_turned_off" {
  command = plan

  variables {
    consumer_batching_window_seconds = 0
  }

  assert {
    condition     = local.functions.notifier.event_source_mappings.notifications.maximum_batching_window_in_seconds == 0
    error_message = "consumer_batching_window_seconds must reach the mappings"
  }
}

run "a_batching_window_beyond_30_seconds_is_refused" {
  command = plan

  variables {
    consumer_batching_window_seconds = 31
  }

  expect_failures = [var.consumer_batching_window_seconds]
}

# Dead letters are kept 14 days (SQS's maximum) everywhere: every consumer queue's DLQ, the bus targets' DLQ
# and the two stream on-failure destinations (dead-letter queues in all but name).
run "dead_letters_are_kept_14_days" {
  command = plan

  assert {
    condition     = length(module.queues.dlq_message_retention_seconds) == length(local.queues) && alltrue([for s in values(module.queues.dlq_message_retention_seconds) : s == 1209600])
    error_message = "every consumer queue's DLQ must keep messages 14 days (1209600 s)"
  }

  assert {
    condition     = module.event_bus.target_dlq_message_retention_seconds == 1209600
    error_message = "the event bus targets' DLQ must keep events 14 days (1209600 s)"
  }

  assert {
    condition     = local.queues["relay-failures"].message_retention_seconds == 1209600 && local.queues["fraud-scoring-failures"].message_retention_seconds == 1209600
    error_message = "the stream on-failure destinations hold dead letters too: 14 days (1209600 s)"
  }
}

# WAF: on by default (the AWS environments), with the rate rule and both managed rule groups; off locally.
run "waf_protects_the_api_stage_by_default" {
  command = plan

  assert {
    condition     = length(module.waf) == 1
    error_message = "the WAF web ACL must be on unless an environment turns it off"
  }

  assert {
    condition = toset(keys(module.waf[0].rule_metric_names)) == toset([
      "rate-limit-per-ip", "AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
    ])
    error_message = "the web ACL must have the per-IP rate rule and the common and known-bad-inputs managed rule groups"
  }
}

run "waf_without_managed_rule_groups" {
  command = plan

  variables {
    waf = { managed_rule_groups = false, rate_limit = 100 }
  }

  assert {
    condition     = keys(module.waf[0].rule_metric_names) == ["rate-limit-per-ip"]
    error_message = "waf.managed_rule_groups = false must leave only the rate rule"
  }
}

run "waf_off_for_the_local_emulator" {
  command = plan

  variables {
    waf = { enabled = false }
  }

  assert {
    condition     = length(module.waf) == 0 && output.waf_web_acl_arn == null && output.waf_log_group_name == null
    error_message = "waf.enabled = false must create no WAF resource"
  }
}

run "a_waf_rate_limit_under_the_aws_minimum_is_refused" {
  command = plan

  variables {
    waf = { rate_limit = 9 }
  }

  expect_failures = [var.waf]
}
