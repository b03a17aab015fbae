output "transactions_table_name" {
  description = "Name of the transactions table."
  value       = aws_dynamodb_table.transactions.name
}

output "transactions_table_arn" {
  description = "ARN of the transactions table."
  value       = aws_dynamodb_table.transactions.arn
}

output "transactions_stream_arn" {
  description = "ARN of the transactions table's stream (NEW_AND_OLD_IMAGES)."
  value       = aws_dynamodb_table.transactions.stream_arn
}

output "idempotency_table_name" {
  description = "Name of the idempotency table."
  value       = aws_dynamodb_table.idempotency.name
}

output "idempotency_table_arn" {
  description = "ARN of the idempotency table."
  value       = aws_dynamodb_table.idempotency.arn
}

output "fraud_profiles_table_name" {
  description = "Name of the fraud risk-profiles table."
  value       = aws_dynamodb_table.fraud_profiles.name
}

output "fraud_profiles_table_arn" {
  description = "ARN of the fraud risk-profiles table."
  value       = aws_dynamodb_table.fraud_profiles.arn
}
