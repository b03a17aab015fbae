data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
# CloudWatch Logs' regional endpoint name is also its service principal (logs.<region>.amazonaws.com).
# Not data "aws_region": its `name` is deprecated in provider 6 and `region` does not exist in 5.
data "aws_service" "logs" {
  service_id = "logs"
}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  # CloudWatch Logs uses a regional principal; add it so log groups can be encrypted too.
  service_principals = distinct(concat(var.service_principals, [data.aws_service.logs.dns_name]))
}

data "aws_iam_policy_document" "key" {
  # A key policy, not an identity policy: "*" as resource means this key and nothing else.
  #checkov:skip=CKV_AWS_356:In a KMS key policy the resource "*" is the key the policy is attached to; no other resource can be named there.
  #checkov:skip=CKV_AWS_109:The account statement is the default key policy: without it IAM cannot manage the key and it becomes unmanageable; who may use the key is decided by IAM policies (each function gets kms:Decrypt/GenerateDataKey on this key only).
  #checkov:skip=CKV_AWS_111:Same account statement: the account root delegates to IAM, which grants the functions only the data-key actions on this key; the service statement is limited to encrypt/decrypt actions for the listed service principals.
  statement {
    sid       = "AccountAdministersAndUsesTheKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  statement {
    sid = "ServicesEncryptForTheAccount"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = local.service_principals
    }
  }
}

resource "aws_kms_key" "this" {
  description             = var.description
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.alias}"
  target_key_id = aws_kms_key.this.key_id
}
