output "function_name" {
  description = "Name of the function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the function."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "ARN API Gateway integrations invoke."
  value       = aws_lambda_function.this.invoke_arn
}

output "role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the function's execution role."
  value       = aws_iam_role.this.name
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "event_source_mapping_uuids" {
  description = "Event source mapping UUIDs by key."
  value       = { for k, m in aws_lambda_event_source_mapping.this : k => m.uuid }
}

output "alarm_names" {
  description = "Names of the function's alarms by kind (errors, throttles); empty when alarms_enabled is false."
  value       = { for k, a in aws_cloudwatch_metric_alarm.function : k => a.alarm_name }
}

output "alarm_arns" {
  description = "ARNs of the function's alarms by kind (errors, throttles); empty when alarms_enabled is false."
  value       = { for k, a in aws_cloudwatch_metric_alarm.function : k => a.arn }
}
