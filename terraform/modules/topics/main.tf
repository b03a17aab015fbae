resource "aws_sns_topic" "this" {
  for_each = toset(var.topics)

  name              = "${var.name_prefix}-${each.key}"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}
