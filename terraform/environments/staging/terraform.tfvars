# staging: prod's settings, so what is rehearsed here is what prod gets.
environment = "staging"
region      = "us-east-1"
# allowed_account_ids = ["123456789012"] # your staging account: an apply with other credentials is refused
name_prefix = "paystream-staging"

# Graviton. The deps layer's native wheels (pydantic-core) must be built for the same architecture:
# `make plan|apply` packages both (layers/deps-arm64.zip for arm64); the platform picks the matching one.
lambda_architecture = "arm64"

point_in_time_recovery          = true
deletion_protection             = true
kms_deletion_window_in_days     = 30
secrets_recovery_window_in_days = 30
log_retention_in_days           = 90
archive_retention_days          = 30
stream_mode                     = "ON_DEMAND"

# WAF web ACL on the API stage: a client IP over this many requests per 5 minutes is blocked (plus the AWS
# managed rule groups). Keep it above the busiest legitimate caller: a merchant backend, Stripe's webhooks.
waf_enabled    = true
waf_rate_limit = 2000
