output "api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "execution_arn" {
  description = "Execution ARN of the REST API (for Lambda permissions)."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "stage_name" {
  description = "Name of the deployed stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "stage_arn" {
  description = "ARN of the deployed stage (what a WAF web ACL is associated with)."
  value       = aws_api_gateway_stage.this.arn
}

output "invoke_url" {
  description = "Base URL of the stage as AWS serves it."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "api_key_id" {
  description = "ID of the default API key (read its value with apigateway get-api-key --include-value)."
  value       = aws_api_gateway_api_key.this.id
}

output "usage_plan_id" {
  description = "ID of the usage plan."
  value       = aws_api_gateway_usage_plan.this.id
}

output "client_api_key_ids" {
  description = "API key id of each client in var.clients (read a value with apigateway get-api-key --include-value)."
  value       = { for name, key in aws_api_gateway_api_key.client : name => key.id }
}

output "client_usage_plan_ids" {
  description = "Usage plan id of each client in var.clients."
  value       = { for name, plan in aws_api_gateway_usage_plan.client : name => plan.id }
}

output "access_log_group_name" {
  description = "CloudWatch log group receiving the stage's access logs (one JSON object per request)."
  value       = aws_cloudwatch_log_group.access.name
}

output "access_log_group_arn" {
  description = "ARN of the access log group."
  value       = aws_cloudwatch_log_group.access.arn
}

output "request_model_names" {
  description = "API Gateway model validating each route's body, for the routes with a request_schema."
  value       = { for key, model in aws_api_gateway_model.this : key => model.name }
}

output "api_name" {
  description = "Name of the REST API (the ApiName dimension of its AWS/ApiGateway metrics)."
  value       = aws_api_gateway_rest_api.this.name
}

output "alarm_names" {
  description = "Names of the API's alarms: 5xx and latency-<percentile>; empty when alarms_enabled is false."
  value = merge(
    { for a in aws_cloudwatch_metric_alarm.server_errors : "5xx" => a.alarm_name },
    { for p, a in aws_cloudwatch_metric_alarm.latency : "latency-${p}" => a.alarm_name },
  )
}

output "alarm_arns" {
  description = "ARNs of the API's alarms: 5xx and latency-<percentile>; empty when alarms_enabled is false."
  value = merge(
    { for a in aws_cloudwatch_metric_alarm.server_errors : "5xx" => a.arn },
    { for p, a in aws_cloudwatch_metric_alarm.latency : "latency-${p}" => a.arn },
  )
}
