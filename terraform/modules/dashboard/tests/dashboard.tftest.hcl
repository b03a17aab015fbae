# Offline: `terraform test` with a mocked provider checks that the dashboard graphs every part of the flow
# it is given, with the dimensions CloudWatch publishes them under.
mock_provider "aws" {}

variables {
  dashboard_name = "paystream-test-flow"
  region         = "eu-west-1"
  api            = { name = "paystream-test", stage = "v1" }
  business_metrics = [
    { title = "Payments", metrics = [
      { name = "PaymentsInitiated", service = "initiate_payment" },
      { name = "PaymentsFailed", service = "notifier", label = "failed" },
    ] },
    { title = "Webhooks", metrics = [{ name = "WebhooksRejected", service = "stripe_webhook" }] },
  ]
  function_names                 = { initiate_payment = "paystream-test-initiate-payment", outbox_relay = "paystream-test-outbox-relay" }
  queue_names                    = { notifications = "paystream-test-notifications" }
  dead_letter_queue_names        = { notifications = "paystream-test-notifications-dlq" }
  kinesis_stream_names           = { fraud = "paystream-test-fraud" }
  stream_consumer_function_names = { outbox_relay = "paystream-test-outbox-relay", fraud_scorer = "paystream-test-fraud-scorer" }
  alarm_arns                     = ["arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-dlq-notifications"]
}

run "every_part_of_the_flow_is_graphed" {
  command = plan

  assert {
    condition     = aws_cloudwatch_dashboard.this.dashboard_name == "paystream-test-flow"
    error_message = "the dashboard must take the given name"
  }

  # Every metric line on the dashboard as "namespace metric dim=value ...", whatever widget holds it.
  assert {
    condition = alltrue([for line in [
      "AWS/ApiGateway Count ApiName=paystream-test Stage=v1",
      "AWS/ApiGateway 4XXError ApiName=paystream-test Stage=v1",
      "AWS/ApiGateway 5XXError ApiName=paystream-test Stage=v1",
      "AWS/ApiGateway Latency ApiName=paystream-test Stage=v1",
      "paystream PaymentsInitiated service=initiate_payment",
      "paystream PaymentsFailed service=notifier",
      "paystream WebhooksRejected service=stripe_webhook",
      "AWS/Lambda Errors FunctionName=paystream-test-initiate-payment",
      "AWS/Lambda Throttles FunctionName=paystream-test-outbox-relay",
      "AWS/Lambda Duration FunctionName=paystream-test-outbox-relay",
      "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=paystream-test-notifications",
      "AWS/SQS ApproximateAgeOfOldestMessage QueueName=paystream-test-notifications",
      "AWS/SQS ApproximateNumberOfMessagesVisible QueueName=paystream-test-notifications-dlq",
      "AWS/Kinesis GetRecords.IteratorAgeMilliseconds StreamName=paystream-test-fraud",
      "AWS/Lambda IteratorAge FunctionName=paystream-test-outbox-relay",
      "AWS/Lambda IteratorAge FunctionName=paystream-test-fraud-scorer",
      ] : contains(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : [
        for m in try(w.properties.metrics, []) : join(" ", concat([m[0], m[1]], [
          for i in range(2, length(m) - 1, 2) : "${m[i]}=${m[i + 1]}"
        ]))
    ]]), line)])
    error_message = "a metric of the flow is missing from the dashboard, or graphed under the wrong dimensions"
  }

  assert {
    condition     = [for p in ["p50", "p95", "p99"] : p] == [for m in one([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : w.properties.metrics if try(w.properties.title, "") == "API latency (ms)"]) : m[length(m) - 1].stat]
    error_message = "API latency must be graphed at p50, p95 and p99"
  }

  assert {
    condition = alltrue([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets :
    w.properties.region == "eu-west-1" && w.properties.period == 60 if w.type == "metric"])
    error_message = "every graph must read the given region at the given period"
  }

  assert {
    condition     = jsonencode(one([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : w.properties.alarms if w.type == "alarm"])) == jsonencode(var.alarm_arns)
    error_message = "the alarm widget must show every given alarm"
  }

  assert {
    condition     = one([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : w.properties.stat if try(w.properties.title, "") == "Payments"]) == "Sum"
    error_message = "EMF counts must be added up per period"
  }
}

run "parts_left_empty_get_no_widget" {
  command = plan

  variables {
    business_metrics               = []
    function_names                 = {}
    queue_names                    = {}
    dead_letter_queue_names        = {}
    kinesis_stream_names           = {}
    stream_consumer_function_names = {}
    alarm_arns                     = []
  }

  assert {
    condition     = [for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : try(w.properties.title, "header")] == ["header", "API requests and errors", "API latency (ms)"]
    error_message = "only the header and the API graphs remain without other inputs (no empty widget)"
  }
}

run "more_than_100_alarms_are_refused" {
  command = plan

  variables {
    alarm_arns = [for i in range(101) : "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:a${i}"]
  }

  expect_failures = [var.alarm_arns]
}
