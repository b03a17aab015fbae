output "queue_arns" {
  description = "Consumer queue ARNs by short name."
  value       = { for k, q in aws_sqs_queue.this : k => q.arn }
}

output "queue_urls" {
  description = "Consumer queue URLs by short name."
  value       = { for k, q in aws_sqs_queue.this : k => q.id }
}

output "queue_names" {
  description = "Consumer queue names by short name."
  value       = { for k, q in aws_sqs_queue.this : k => q.name }
}

output "dlq_arns" {
  description = "Dead-letter queue ARNs by the short name of their source queue."
  value       = { for k, q in aws_sqs_queue.dlq : k => q.arn }
}

output "dlq_urls" {
  description = "Dead-letter queue URLs by the short name of their source queue."
  value       = { for k, q in aws_sqs_queue.dlq : k => q.id }
}

output "dlq_names" {
  description = "Dead-letter queue names by the short name of their source queue."
  value       = { for k, q in aws_sqs_queue.dlq : k => q.name }
}

output "visibility_timeout_seconds" {
  description = "Visibility timeout of each consumer queue, by short name."
  value       = { for k, q in aws_sqs_queue.this : k => q.visibility_timeout_seconds }
}

output "dlq_message_retention_seconds" {
  description = "Message retention of each dead-letter queue, by the short name of its source queue."
  value       = { for k, q in aws_sqs_queue.dlq : k => q.message_retention_seconds }
}
