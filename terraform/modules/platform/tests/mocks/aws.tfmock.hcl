# Mocked AWS provider for plans of the platform (its own tests and the environments'). The provider
# validates ARNs it is handed, so mocked computed ARNs must look like ARNs.
mock_data "aws_iam_policy_document" {
  defaults = {
    json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
  }
}

mock_resource "aws_kms_key" {
  defaults = { arn = "arn:aws:kms:eu-west-1:000000000000:key/test" }
}

mock_resource "aws_cloudwatch_event_bus" {
  defaults = { arn = "arn:aws:events:eu-west-1:000000000000:event-bus/payments" }
}

mock_resource "aws_cloudwatch_event_rule" {
  defaults = { arn = "arn:aws:events:eu-west-1:000000000000:rule/payments/rule" }
}

mock_resource "aws_sqs_queue" {
  defaults = { arn = "arn:aws:sqs:eu-west-1:000000000000:queue", id = "https://sqs.eu-west-1.amazonaws.com/000000000000/queue" }
}

mock_resource "aws_sns_topic" {
  defaults = { arn = "arn:aws:sns:eu-west-1:000000000000:topic" }
}

# The WAF module validates the stage ARN it protects, and the provider the web ACL's and log group's ARNs.
mock_resource "aws_api_gateway_stage" {
  defaults = { arn = "arn:aws:apigateway:eu-west-1::/restapis/abc123/stages/v1" }
}

mock_resource "aws_wafv2_web_acl" {
  defaults = { arn = "arn:aws:wafv2:eu-west-1:000000000000:regional/webacl/paystream-test/0000" }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:eu-west-1:000000000000:log-group:paystream-test" }
}
