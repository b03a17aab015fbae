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
# The fraud stream carries one record per payment. One provisioned shard takes 1,000 records/s (1 MB/s),
# twenty times the API's default usage plan (50 requests/s), for ~$11 a month against ~$29 for an on-demand
# stream. `<prefix>-stream-write-throttled-fraud` fires if writes outgrow it (docs/runbooks/stream-throughput.md):
# raise stream_shard_count, or set stream_mode = "ON_DEMAND" (and no shard count) for spiky traffic.
stream_mode        = "PROVISIONED"
stream_shard_count = 1

# WAF web ACL on the API stage: a client IP over this many requests per 5 minutes is blocked (plus the AWS
# managed rule groups). Keep it above the busiest legitimate caller: a merchant backend, Stripe's webhooks.
waf_enabled    = true
waf_rate_limit = 2000
