# Offline: `terraform test` with a mocked provider plans the whole platform and checks its composition.
# The function and layer modules are replaced by their outputs: their zips need not exist here (their own
# tests cover them); what is checked is what the platform hands them.
mock_provider "aws" {
  source = "./tests/mocks"
}

override_module {
  target = module.functions
  outputs = {
    function_name = "paystream-test-fn"
    function_arn  = "arn:aws:lambda:eu-west-1:000000000000:function:paystream-test-fn"
    invoke_arn    = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:000000000000:function:paystream-test-fn/invocations"
    alarm_arns = {
      errors    = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-fn-errors"
      throttles = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-fn-throttles"
    }
  }
}

override_module {
  target  = module.layers
  outputs = { arn = "arn:aws:lambda:eu-west-1:000000000000:layer:paystream-test-core:1" }
}

variables {
  name_prefix       = "paystream-test"
  fraud_config_json = "{\"thresholds\": {\"review\": 65, \"block\": 90}}"
}

# Everything an AWS environment does not set: the defaults must be the production-safe ones.
run "aws_environment_defaults" {
  command = plan

  assert {
    condition     = local.functions.initiate_payment.environment.FAULT_INJECTION_ENABLED == "false"
    error_message = "fault injection must be off unless an environment turns it on (only local does)"
  }

  assert {
    condition     = alltrue([for fn in values(local.functions) : !contains(keys(fn.environment), "STRIPE_API_BASE")])
    error_message = "with stripe_api_base empty no function may get STRIPE_API_BASE: they call real Stripe"
  }

  assert {
    condition = alltrue([for fn in ["initiate_payment", "resume_payments", "refund_payment", "payment_retry"] :
      local.functions[fn].environment.BREAKER_COOLDOWN_SECONDS == "30"
    ])
    error_message = "every Stripe caller must share the breaker, with the 30 s default cooldown"
  }

  assert {
    condition = (local.functions.payment_retry.environment.PAYMENT_RETRY_BACKOFF_BASE_SECONDS == "30"
      && local.functions.payment_retry.environment.PAYMENT_RETRY_BACKOFF_MAX_SECONDS == "900"
    && local.functions.resume_payments.environment.RESUME_BACKOFF_BASE_SECONDS == "5")
    error_message = "retry backoffs must default to 30 s up to 900 s, resume backoff to 5 s"
  }

  assert {
    condition = alltrue([for fn in ["fraud_scorer", "fraud_review", "capture_payment"] :
      local.functions[fn].environment.FRAUD_CONFIG_CACHE_SECONDS == "300"
    ])
    error_message = "every reader of the fraud configuration must cache it 300 s by default"
  }

  assert {
    condition     = local.functions.initiate_payment.environment.CAPTURE_MODE == "automatic"
    error_message = "capture_mode must default to automatic"
  }
}

run "bus_rules_feed_platform_queues_on_the_configured_threshold" {
  command = plan

  assert {
    condition     = alltrue([for rule in values(merge(local.rules, local.fraud_rules)) : contains(keys(local.queues), rule.target_queue)])
    error_message = "a bus rule targets a queue the platform does not create"
  }

  assert {
    condition     = length(merge(local.rules, local.fraud_rules)) == length(local.rules) + length(local.fraud_rules)
    error_message = "a fraud rule has the name of another rule and would replace it"
  }

  # Routing and scoring agree: the fraud rules match on thresholds.review of the fraud configuration.
  assert {
    condition     = jsondecode(local.fraud_rules["fraud-review"].event_pattern).detail.risk_score[0].numeric == [">=", 65]
    error_message = "fraud-review must take scores at or above thresholds.review of the fraud configuration"
  }

  assert {
    condition     = jsondecode(local.fraud_rules["fraud-cleared"].event_pattern).detail.risk_score[0].numeric == ["<", 65]
    error_message = "fraud-cleared must take scores below thresholds.review of the fraud configuration"
  }
}

# What the local environment sets for its drills reaches the functions.
run "local_drill_settings" {
  command = plan

  variables {
    stripe_api_base                    = "http://127.0.0.1:8420"
    fault_injection_enabled            = true
    breaker_cooldown_seconds           = 5
    payment_retry_backoff_base_seconds = 2
    payment_retry_backoff_max_seconds  = 60
    fraud_config_cache_seconds         = 30
    capture_mode                       = "risk_gated"
  }

  assert {
    condition     = local.functions.initiate_payment.environment.FAULT_INJECTION_ENABLED == "true"
    error_message = "fault_injection_enabled must reach initiate_payment"
  }

  assert {
    condition = alltrue([for fn in ["stripe_webhook", "initiate_payment", "resume_payments", "refund_payment", "payment_retry", "fraud_review", "capture_payment"] :
      local.functions[fn].environment.STRIPE_API_BASE == "http://127.0.0.1:8420"
    ])
    error_message = "every function that talks to Stripe must get stripe_api_base"
  }

  assert {
    condition = (local.functions.initiate_payment.environment.BREAKER_COOLDOWN_SECONDS == "5"
      && local.functions.payment_retry.environment.PAYMENT_RETRY_BACKOFF_BASE_SECONDS == "2"
      && local.functions.payment_retry.environment.PAYMENT_RETRY_BACKOFF_MAX_SECONDS == "60"
      && local.functions.fraud_scorer.environment.FRAUD_CONFIG_CACHE_SECONDS == "30"
    && local.functions.initiate_payment.environment.CAPTURE_MODE == "risk_gated")
    error_message = "the drill timings and the capture mode must reach the functions as given"
  }
}

run "a_review_threshold_that_is_not_a_number_is_refused" {
  command = plan

  variables {
    fraud_config_json = "{\"thresholds\": {\"review\": \"70\"}}"
  }

  expect_failures = [var.fraud_config_json]
}

run "a_stripe_base_that_is_not_a_url_is_refused" {
  command = plan

  variables {
    stripe_api_base = "localhost:8420"
  }

  expect_failures = [var.stripe_api_base]
}

# Observability (issue 6): the alarms the platform adds, and the dashboard covering the whole flow.
run "alarms_and_dashboard_cover_the_flow" {
  command = plan

  # The dashboard's body lists the alarms' ARNs and the key's region, which a plan does not know: the
  # mock provides them.
  override_resource {
    target          = module.kms.aws_kms_key.this
    override_during = plan
    values          = { arn = "arn:aws:kms:eu-west-1:000000000000:key/test" }
  }
  override_resource {
    target          = module.alarms.aws_cloudwatch_metric_alarm.dlq
    override_during = plan
    values          = { arn = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-dlq" }
  }
  override_resource {
    target          = module.alarms.aws_cloudwatch_metric_alarm.iterator_age
    override_during = plan
    values          = { arn = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-iterator-age" }
  }
  override_resource {
    target          = module.alarms.aws_cloudwatch_metric_alarm.breaker_open
    override_during = plan
    values          = { arn = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-stripe-breaker-open" }
  }
  override_resource {
    target          = module.api.aws_cloudwatch_metric_alarm.server_errors
    override_during = plan
    values          = { arn = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-api-5xx" }
  }
  override_resource {
    target          = module.api.aws_cloudwatch_metric_alarm.latency
    override_during = plan
    values          = { arn = "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:paystream-test-api-latency" }
  }

  assert {
    condition     = toset(keys(module.alarms.iterator_age_alarm_names)) == toset(["fraud-scorer", "outbox-relay"])
    error_message = "both stream consumers (Kinesis: fraud_scorer, DynamoDB stream: outbox_relay) need an iterator-age alarm"
  }

  assert {
    condition     = local.breaker_services == tolist(["initiate_payment", "payment_retry", "refund_payment", "resume_payments"])
    error_message = "the breaker alarm must sum StripeBreakerOpened over every function that shares the Stripe breaker"
  }

  assert {
    condition     = module.alarms.breaker_open_alarm_name == "paystream-test-stripe-breaker-open"
    error_message = "the breaker-open alarm must exist under the platform's prefix"
  }

  assert {
    condition     = length(module.api.alarm_names) == 3 && alltrue([for n in values(module.api.alarm_names) : startswith(n, "paystream-test-api-")])
    error_message = "the API's 5xx, p95 and p99 latency alarms must exist under the platform's prefix"
  }

  assert {
    condition = alltrue([for fn, spec in local.functions : anytrue([
      for w in jsondecode(module.dashboard.dashboard_body).widgets : contains([for m in try(w.properties.metrics, []) : m[3]], spec.environment.POWERTOOLS_SERVICE_NAME)
    ]) if contains(["initiate_payment", "notifier", "stripe_webhook", "fraud_scorer"], fn)])
    error_message = "the dashboard must graph the EMF metrics of the payment, webhook and fraud functions under their service dimension"
  }

  assert {
    condition = toset(keys(local.functions)) == toset(flatten([for w in jsondecode(module.dashboard.dashboard_body).widgets : [
      for m in w.properties.metrics : m[4].label
    ] if try(w.properties.title, "") == "Function errors"]))
    error_message = "the dashboard must graph the errors of every function"
  }

  assert {
    condition = length(one([for w in jsondecode(module.dashboard.dashboard_body).widgets : w.properties.alarms if w.type == "alarm"])) == (
      length(module.alarms.alarm_names) + length(module.alarms.iterator_age_alarm_names) + 1 + 2 * length(local.functions) + length(module.api.alarm_names)
    )
    error_message = "the dashboard's alarm widget must show every alarm: DLQs, iterator ages, the breaker, each function's two and the API's"
  }
}
