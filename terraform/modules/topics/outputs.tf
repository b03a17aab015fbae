output "topic_arns" {
  description = "Topic ARNs by short name."
  value       = { for name, topic in aws_sns_topic.this : name => topic.arn }
}

output "topic_names" {
  description = "Topic names by short name."
  value       = { for name, topic in aws_sns_topic.this : name => topic.name }
}
