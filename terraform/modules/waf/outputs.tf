output "web_acl_arn" {
  description = "ARN of the web ACL."
  value       = aws_wafv2_web_acl.this.arn
}

output "web_acl_id" {
  description = "ID of the web ACL."
  value       = aws_wafv2_web_acl.this.id
}

output "web_acl_name" {
  description = "Name of the web ACL (the WebACL dimension of its AWS/WAFV2 metrics)."
  value       = aws_wafv2_web_acl.this.name
}

output "log_group_name" {
  description = "CloudWatch log group receiving the web ACL's request logs (credential headers redacted)."
  value       = aws_cloudwatch_log_group.this.name
}

output "log_group_arn" {
  description = "ARN of the WAF log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "rule_metric_names" {
  description = "CloudWatch metric name (AWS/WAFV2, Rule dimension) of each rule, by rule name."
  value       = { for r in aws_wafv2_web_acl.this.rule : r.name => r.visibility_config[0].metric_name }
}
