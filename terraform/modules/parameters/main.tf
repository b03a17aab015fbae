# Plain (non-secret) configuration documents in SSM Parameter Store, read by functions at cold start
# (cached). Secrets never go here: they live in Secrets Manager (modules/secrets).
resource "aws_ssm_parameter" "this" {
  for_each = var.parameters

  name        = each.value.name
  description = each.value.description
  type        = "String"
  value       = each.value.value
  tags        = var.tags
}
