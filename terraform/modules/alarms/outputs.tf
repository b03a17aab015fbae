output "alarm_names" {
  description = "Alarm names by DLQ key."
  value       = { for k, a in aws_cloudwatch_metric_alarm.dlq : k => a.alarm_name }
}

output "alarm_arns" {
  description = "Alarm ARNs by DLQ key."
  value       = { for k, a in aws_cloudwatch_metric_alarm.dlq : k => a.arn }
}

output "iterator_age_alarm_names" {
  description = "Iterator-age alarm names by key."
  value       = { for k, a in aws_cloudwatch_metric_alarm.iterator_age : k => a.alarm_name }
}
