# Offline: `terraform test` with a mocked provider checks event source mappings and the role.
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  function_name    = "consumer"
  filename         = "main.tf" # any existing file: the precondition only checks that the zip exists
  source_code_hash = "x"
  handler          = "handler.handler"
  event_source_mappings = {
    queue = {
      event_source_arn = "arn:aws:sqs:us-east-1:000000000000:orders"
      batch_size       = 10
      filter_patterns  = ["{\"body\":{\"type\":[\"payment.succeeded\"]}}"]
    }
    stream = {
      event_source_arn               = "arn:aws:kinesis:us-east-1:000000000000:stream/fraud"
      bisect_batch_on_function_error = true
      maximum_retry_attempts         = 3
      on_failure_destination_arn     = "arn:aws:sqs:us-east-1:000000000000:fraud-failures"
    }
  }
  iam_statements    = [{ sid = "Own", actions = ["dynamodb:PutItem"], resources = ["arn:aws:dynamodb:us-east-1:000000000000:table/t"] }]
  alarm_action_arns = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
}

run "mappings_follow_their_source_type" {
  command = plan

  assert {
    condition     = aws_lambda_event_source_mapping.this["queue"].starting_position == null && aws_lambda_event_source_mapping.this["stream"].starting_position == "LATEST"
    error_message = "starting_position must be set for streams only"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this["queue"].function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "partial batch failure must be on by default"
  }

  assert {
    condition     = [for f in aws_lambda_event_source_mapping.this["queue"].filter_criteria[0].filter : f.pattern] == ["{\"body\":{\"type\":[\"payment.succeeded\"]}}"]
    error_message = "filter patterns must reach the mapping"
  }

  assert {
    condition     = aws_lambda_event_source_mapping.this["stream"].destination_config[0].on_failure[0].destination_arn == "arn:aws:sqs:us-east-1:000000000000:fraud-failures"
    error_message = "the on-failure destination must reach the mapping"
  }

  assert {
    condition     = aws_lambda_function.this.tracing_config[0].mode == "Active" && aws_lambda_function.this.runtime == "python3.12"
    error_message = "tracing must be Active and the runtime default python3.12"
  }

  assert {
    condition     = aws_lambda_function.this.architectures == tolist(["arm64"])
    error_message = "functions must run on arm64 unless told otherwise"
  }

  assert {
    condition = toset([for s in data.aws_iam_policy_document.this.statement : s.sid]) == toset([
      "WriteOwnLogs", "WriteTraces", "ReadEventSourceQueue", "ReadEventSourceStream", "SendFailuresStream", "Own",
    ])
    error_message = "the role must hold exactly logs, traces, event source reads, failure destinations and the given statements"
  }

  assert {
    condition     = contains(one([for s in data.aws_iam_policy_document.this.statement : s.actions if s.sid == "ReadEventSourceStream"]), "kinesis:GetRecords")
    error_message = "a Kinesis source must be readable"
  }
}

run "stream_only_settings_are_refused_for_sqs" {
  command = plan

  variables {
    event_source_mappings = {
      queue = { event_source_arn = "arn:aws:sqs:us-east-1:000000000000:orders", bisect_batch_on_function_error = true }
    }
  }

  expect_failures = [var.event_source_mappings]
}

run "unsupported_runtime_is_refused" {
  command = plan

  variables {
    runtime = "python3.11"
  }

  expect_failures = [var.runtime]
}
