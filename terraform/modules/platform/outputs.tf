# Names, ids and ARNs only: secret values never leave Secrets Manager.

output "region" {
  description = "Region of every resource (read from the KMS key's ARN, so it is the provider's region)."
  value       = split(":", module.kms.key_arn)[3]
}

output "api_id" {
  description = "ID of the REST API."
  value       = module.api.api_id
}

output "api_stage" {
  description = "Stage the API is deployed to."
  value       = module.api.stage_name
}

output "api_invoke_url" {
  description = "Base URL of the API stage as AWS serves it (locally the data plane serves the API elsewhere)."
  value       = module.api.invoke_url
}

output "api_key_id" {
  description = "ID of the default API key (value: apigateway get-api-key --include-value)."
  value       = module.api.api_key_id
}

output "function_names" {
  description = "Lambda function names by function key."
  value       = { for k, fn in module.functions : k => fn.function_name }
}

output "queue_urls" {
  description = "Consumer queue URLs by short name."
  value       = module.queues.queue_urls
}

output "dlq_urls" {
  description = "URL of every dead-letter queue: consumer DLQs by queue name, event-bus-targets, and the outbox relay's on-failure destination."
  value = merge(module.queues.dlq_urls, {
    event-bus-targets          = module.event_bus.target_dlq_url
    relay-failures-destination = module.queues.queue_urls["relay-failures"]
    # The fraud scorer's on-failure destination.
    fraud-scoring-failures-destination = module.queues.queue_urls["fraud-scoring-failures"]
  })
}

output "table_names" {
  description = "DynamoDB table names."
  value = {
    transactions = module.data.transactions_table_name
    idempotency  = module.data.idempotency_table_name
    # Fraud risk profiles.
    fraud_profiles = module.data.fraud_profiles_table_name
  }
}

output "bus_name" {
  description = "Name of the event bus."
  value       = module.event_bus.bus_name
}

output "archive_name" {
  description = "Name of the archive of every event on the bus."
  value       = module.event_bus.archive_name
}

output "stream_name" {
  description = "Name of the Kinesis fraud stream."
  value       = module.streaming.stream_name
}

output "topic_arns" {
  description = "SNS topic ARNs by short name."
  value       = module.topics.topic_arns
}

output "secret_ids" {
  description = "Secret names (ids) by key; put their values out of band."
  value       = module.secrets.secret_names
}

output "parameter_names" {
  description = "SSM parameter names by key (fraud_config: the fraud scorer's configuration)."
  value       = module.parameters.parameter_names
}

output "capture_mode" {
  description = "automatic or risk_gated (docs/fraud.md)."
  value       = var.capture_mode
}

output "kms_key_arn" {
  description = "ARN of the customer-managed key encrypting the platform's data."
  value       = module.kms.key_arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard of the whole payment flow."
  value       = module.dashboard.dashboard_name
}

output "waf_web_acl_arn" {
  description = "ARN of the WAF web ACL on the API stage (null where var.waf.enabled is false)."
  value       = one(module.waf[*].web_acl_arn)
}

output "waf_log_group_name" {
  description = "CloudWatch log group of the WAF request logs, credential headers redacted (null without WAF)."
  value       = one(module.waf[*].log_group_name)
}
