output "secret_arns" {
  description = "Secret ARNs by key (never values)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}

output "secret_names" {
  description = "Secret names by key (never values)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.name }
}
