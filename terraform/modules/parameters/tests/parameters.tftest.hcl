# Offline: `terraform test` with a mocked provider.
mock_provider "aws" {}

variables {
  parameters = {
    fraud_config = { name = "/paystream-test/fraud-config", description = "fraud scorer configuration", value = "{}" }
  }
}

run "plain_string_parameters_by_key" {
  command = plan

  assert {
    condition     = aws_ssm_parameter.this["fraud_config"].type == "String" && aws_ssm_parameter.this["fraud_config"].value == "{}"
    error_message = "configuration documents are plain String parameters (secrets belong in Secrets Manager)"
  }

  assert {
    condition     = aws_ssm_parameter.this["fraud_config"].name == "/paystream-test/fraud-config"
    error_message = "the parameter keeps its given name"
  }
}

run "a_name_that_is_not_a_path_is_refused" {
  command = plan

  variables {
    parameters = {
      fraud_config = { name = "fraud config", description = "d", value = "{}" }
    }
  }

  expect_failures = [var.parameters]
}

run "an_empty_value_is_refused" {
  command = plan

  variables {
    parameters = {
      fraud_config = { name = "/p/fraud-config", description = "d", value = "" }
    }
  }

  expect_failures = [var.parameters]
}
