output "parameter_names" {
  description = "Parameter names by key."
  value       = { for k, p in aws_ssm_parameter.this : k => p.name }
}

output "parameter_arns" {
  description = "Parameter ARNs by key."
  value       = { for k, p in aws_ssm_parameter.this : k => p.arn }
}
