output "arn" {
  description = "ARN of this layer version (what functions reference)."
  value       = aws_lambda_layer_version.this.arn
}

output "layer_arn" {
  description = "ARN of the layer, without version."
  value       = aws_lambda_layer_version.this.layer_arn
}

output "version" {
  description = "Version number published."
  value       = aws_lambda_layer_version.this.version
}
