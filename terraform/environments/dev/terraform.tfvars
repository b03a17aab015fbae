# dev: a cheap, disposable environment for trying changes against real AWS and Stripe test mode.
# The Stripe key goes into Secrets Manager out of band (see secret_ids in the outputs).
environment = "dev"
region      = "us-east-1"
# allowed_account_ids = ["123456789012"] # your dev account: an apply with other credentials is refused
name_prefix = "paystream-dev"

# Graviton. The deps layer's native wheels (pydantic-core) must be built for the same architecture:
# `make plan|apply` packages both (layers/deps-arm64.zip for arm64); the platform picks the matching one.
lambda_architecture = "arm64"

# Throwaway data: no point-in-time recovery (it is billed per GB), `terraform destroy` allowed, short windows.
point_in_time_recovery          = false
deletion_protection             = false
kms_deletion_window_in_days     = 7
secrets_recovery_window_in_days = 7
log_retention_in_days           = 14
archive_retention_days          = 7
# One provisioned shard costs less than an on-demand stream at dev volume.
stream_mode        = "PROVISIONED"
stream_shard_count = 1

# No WAF web ACL in dev: it costs per ACL and rule each month, and dev takes no outside traffic.
waf_enabled = false
