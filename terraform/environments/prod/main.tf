# One AWS environment: one call of ../../modules/platform, no resources here. The environment's values
# are in terraform.tfvars, its state backend in backend.hcl, its fraud rules in fraud-config.json.
# dev, staging and prod share this file (and variables.tf, outputs.tf, providers.tf, versions.tf) byte for
# byte: tests/unit/test_terraform_environments.py fails if they drift.
#
# Not settable here on purpose: fault injection (local drills only) and a Stripe API base other than
# real Stripe's.

module "platform" {
  source = "../../modules/platform"

  name_prefix       = var.name_prefix
  artifacts_dir     = var.artifacts_dir
  capture_mode      = var.capture_mode
  fraud_config_json = file("${path.module}/fraud-config.json")
  tags              = var.tags

  lambda_architecture = var.lambda_architecture

  point_in_time_recovery          = var.point_in_time_recovery
  deletion_protection             = var.deletion_protection
  kms_deletion_window_in_days     = var.kms_deletion_window_in_days
  secrets_recovery_window_in_days = var.secrets_recovery_window_in_days
  log_retention_in_days           = var.log_retention_in_days
  archive_retention_days          = var.archive_retention_days
  stream_mode                     = var.stream_mode
  stream_shard_count              = var.stream_shard_count

  breaker_cooldown_seconds           = var.breaker_cooldown_seconds
  payment_retry_backoff_base_seconds = var.payment_retry_backoff_base_seconds
  payment_retry_backoff_max_seconds  = var.payment_retry_backoff_max_seconds
  resume_backoff_base_seconds        = var.resume_backoff_base_seconds
  fraud_config_cache_seconds         = var.fraud_config_cache_seconds

  # null attributes take the platform's defaults (on, 2000 requests per IP per 5 minutes).
  waf = { enabled = var.waf_enabled, rate_limit = var.waf_rate_limit }
}
