# The whole platform on the local emulator: one call of ../../modules/platform, no resources here.
# Only what makes the emulator and the e2e drills work differs from an AWS environment.

module "platform" {
  source = "../../modules/platform"

  name_prefix       = var.name_prefix
  bus_name          = var.bus_name
  artifacts_dir     = var.artifacts_dir
  stripe_api_base   = var.stripe_api_base
  capture_mode      = var.capture_mode
  fraud_config_json = file("${path.module}/fraud-config.json")
  tags = {
    project     = "paystream"
    environment = "local"
  }

  # What the emulator runs on: the functions run on this machine, the deps layer is built for x86_64.
  lambda_architecture = "x86_64"

  # Throwaway: `local-down` and a new emulator must be able to delete everything at once.
  point_in_time_recovery          = false
  deletion_protection             = false
  kms_deletion_window_in_days     = 7
  secrets_recovery_window_in_days = 0
  log_retention_in_days           = 7
  archive_retention_days          = 7
  stream_mode                     = "ON_DEMAND"
  # moto 5.2.5 drops the Tags of CreateStream, which would show as a diff on every plan.
  tag_stream = false

  # The e2e suite crashes initiate_payment at chosen points (X-Paystream-Fault); never in AWS.
  fault_injection_enabled = true

  # Drills take seconds: the breaker reopens for a probe after 5 s, retries wait 2 s, 4 s, … at most
  # 60 s, parked payments resume after 2 s, and a changed fraud configuration applies within 30 s.
  breaker_cooldown_seconds           = 5
  payment_retry_backoff_base_seconds = 2
  payment_retry_backoff_max_seconds  = 60
  resume_backoff_base_seconds        = 2
  fraud_config_cache_seconds         = 30

  # Each queue's visibility timeout is six times its consumer's timeout: short consumer timeouts keep the
  # e2e drills' waits (a poison message: 3 receives x 30 s) as they were. Longest local invocations seen:
  # under 3 s (process_payment, notifier, capture_payment), 5 s (resume_payments).
  sqs_consumer_timeouts = {
    process_payment = 5
    resume_payments = 10
    notifier        = 10
    payment_retry   = 10
    fraud_review    = 15
    capture_payment = 15
  }

  # moto's WAFv2 is partial: the web ACL is an AWS-only layer.
  waf = { enabled = false }
}

# Before the platform module existed these modules were called from here: the moved blocks let an
# existing local state upgrade in place (no table, queue or key is destroyed and created again).
moved {
  from = module.kms
  to   = module.platform.module.kms
}

moved {
  from = module.data
  to   = module.platform.module.data
}

moved {
  from = module.queues
  to   = module.platform.module.queues
}

moved {
  from = module.event_bus
  to   = module.platform.module.event_bus
}

moved {
  from = module.streaming
  to   = module.platform.module.streaming
}

moved {
  from = module.topics
  to   = module.platform.module.topics
}

moved {
  from = module.secrets
  to   = module.platform.module.secrets
}

moved {
  from = module.parameters
  to   = module.platform.module.parameters
}

moved {
  from = module.layers
  to   = module.platform.module.layers
}

moved {
  from = module.functions
  to   = module.platform.module.functions
}

moved {
  from = module.api
  to   = module.platform.module.api
}

moved {
  from = module.alarms
  to   = module.platform.module.alarms
}
