# Offline: the function's environment variables and its log group are encrypted with the key passed in,
# and the role gets no KMS permission for it (Lambda decrypts the variables through its own grant).
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  function_name         = "encrypted"
  filename              = "main.tf" # any existing file: the precondition only checks that the zip exists
  source_code_hash      = "x"
  handler               = "handler.handler"
  environment_variables = { TABLE_NAME = "t" }
  kms_key_arn           = "arn:aws:kms:us-east-1:000000000000:key/platform"
  alarm_action_arns     = ["arn:aws:sns:us-east-1:000000000000:ops-alerts"]
}

run "environment_and_logs_use_the_key" {
  command = plan

  assert {
    condition     = aws_lambda_function.this.kms_key_arn == var.kms_key_arn
    error_message = "the environment variables must be encrypted with kms_key_arn"
  }

  assert {
    condition     = aws_cloudwatch_log_group.this.kms_key_id == var.kms_key_arn
    error_message = "the log group must be encrypted with kms_key_arn"
  }

  assert {
    condition     = !anytrue([for s in data.aws_iam_policy_document.this.statement : anytrue([for a in s.actions : startswith(a, "kms:")])])
    error_message = "the role must not get KMS actions for the environment variables: Lambda's grant decrypts them"
  }
}
