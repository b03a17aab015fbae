# The platform's outputs, under the names the local environment uses too, so the ops scripts read either
# (`terraform output -json > outputs.json`, then `--outputs outputs.json`). Names and ids only: secret values
# never leave Secrets Manager.

output "region" {
  description = "Region of every resource."
  value       = module.platform.region
}

output "api_id" {
  description = "ID of the REST API."
  value       = module.platform.api_id
}

output "api_stage" {
  description = "Stage the API is deployed to."
  value       = module.platform.api_stage
}

output "api_invoke_url" {
  description = "Base URL of the API stage (https://<api>.execute-api.<region>.amazonaws.com/v1)."
  value       = module.platform.api_invoke_url
}

output "api_key_id" {
  description = "ID of the default API key (value: apigateway get-api-key --include-value)."
  value       = module.platform.api_key_id
}

output "function_names" {
  description = "Lambda function names by function key."
  value       = module.platform.function_names
}

output "queue_urls" {
  description = "Consumer queue URLs by short name."
  value       = module.platform.queue_urls
}

output "dlq_urls" {
  description = "URL of every dead-letter queue: consumer DLQs by queue name, event-bus-targets, and the outbox relay's on-failure destination."
  value       = module.platform.dlq_urls
}

output "table_names" {
  description = "DynamoDB table names."
  value       = module.platform.table_names
}

output "bus_name" {
  description = "Name of the event bus."
  value       = module.platform.bus_name
}

output "archive_name" {
  description = "Name of the archive of every event on the bus."
  value       = module.platform.archive_name
}

output "stream_name" {
  description = "Name of the Kinesis fraud stream."
  value       = module.platform.stream_name
}

output "topic_arns" {
  description = "SNS topic ARNs by short name."
  value       = module.platform.topic_arns
}

output "secret_ids" {
  description = "Secret names (ids) by key; put their values out of band."
  value       = module.platform.secret_ids
}

output "parameter_names" {
  description = "SSM parameter names by key (fraud_config: the fraud scorer's configuration)."
  value       = module.platform.parameter_names
}

output "capture_mode" {
  description = "automatic or risk_gated (docs/fraud.md)."
  value       = module.platform.capture_mode
}

output "waf_web_acl_arn" {
  description = "ARN of the WAF web ACL on the API stage (null where waf_enabled is false)."
  value       = module.platform.waf_web_acl_arn
}

output "waf_log_group_name" {
  description = "CloudWatch log group of the WAF request logs, credential headers redacted (null without WAF)."
  value       = module.platform.waf_log_group_name
}
