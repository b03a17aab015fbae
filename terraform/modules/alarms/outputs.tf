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

output "iterator_age_alarm_arns" {
  description = "Iterator-age alarm ARNs by key."
  value       = { for k, a in aws_cloudwatch_metric_alarm.iterator_age : k => a.arn }
}

output "stream_write_throttled_alarm_names" {
  description = "Names of the provisioned streams' write-throttling alarms by key."
  value       = { for k, a in aws_cloudwatch_metric_alarm.stream_write_throttled : k => a.alarm_name }
}

output "breaker_open_alarm_name" {
  description = "Name of the Stripe breaker-open alarm (null without breaker_open_alarm)."
  value       = one(aws_cloudwatch_metric_alarm.breaker_open[*].alarm_name)
}

output "breaker_open_alarm_arn" {
  description = "ARN of the Stripe breaker-open alarm (null without breaker_open_alarm)."
  value       = one(aws_cloudwatch_metric_alarm.breaker_open[*].arn)
}

output "dead_letter_queues" {
  description = "The alarmed dead-letter queues by key (queue names), as given: what a dashboard graphs as DLQ depth."
  value       = var.dead_letter_queues
}
