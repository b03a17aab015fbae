# No aws_secretsmanager_secret_version on purpose: a value in Terraform would also sit in its state.
resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:Stripe issues these values (secret API key, webhook signing secrets) and rolls them in its dashboard; Secrets Manager rotation would need a rotation function able to create Stripe keys, which Stripe's API does not offer. Rolling is an operator runbook step: roll in Stripe, put the new value here.
  for_each = var.secrets

  name                    = each.value.name
  description             = each.value.description
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}
