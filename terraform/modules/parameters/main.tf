# Plain (non-secret) configuration documents in SSM Parameter Store, read by functions at cold start
# (cached). Secrets never go here: they live in Secrets Manager (modules/secrets).
resource "aws_ssm_parameter" "this" {
  #checkov:skip=CKV2_AWS_34:Plain configuration by design (the fraud rules' weights and thresholds, docs/fraud.md), no secrets or card data: secrets are in Secrets Manager under the platform key. Reads are limited by IAM to the functions that use it.
  for_each = var.parameters

  name        = each.value.name
  description = each.value.description
  type        = "String"
  value       = each.value.value
  tags        = var.tags
}
