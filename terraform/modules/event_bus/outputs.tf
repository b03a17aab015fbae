output "bus_name" {
  description = "Name of the event bus."
  value       = aws_cloudwatch_event_bus.this.name
}

output "bus_arn" {
  description = "ARN of the event bus."
  value       = aws_cloudwatch_event_bus.this.arn
}

output "archive_name" {
  description = "Name of the archive of every event on the bus."
  value       = aws_cloudwatch_event_archive.all.name
}

output "archive_arn" {
  description = "ARN of the archive."
  value       = aws_cloudwatch_event_archive.all.arn
}

output "rule_arns" {
  description = "Rule ARNs by rule name."
  value       = { for name, rule in aws_cloudwatch_event_rule.this : name => rule.arn }
}

output "target_dlq_arn" {
  description = "ARN of the DLQ receiving events no target could accept."
  value       = aws_sqs_queue.target_dlq.arn
}

output "target_dlq_url" {
  description = "URL of the target DLQ."
  value       = aws_sqs_queue.target_dlq.id
}

output "target_dlq_name" {
  description = "Name of the target DLQ."
  value       = aws_sqs_queue.target_dlq.name
}

output "target_dlq_message_retention_seconds" {
  description = "How long the target DLQ keeps undeliverable events."
  value       = aws_sqs_queue.target_dlq.message_retention_seconds
}
