# The whole platform on the local emulator: compositions of ../../modules only, no resources here.

locals {
  tags = {
    project     = "paystream"
    environment = "local"
  }

  artifacts_dir = trimsuffix(var.artifacts_dir, "/")

  layers = {
    core = "${local.artifacts_dir}/layers/core.zip"
    deps = "${local.artifacts_dir}/layers/deps.zip"
  }

  # The Stripe circuit breaker is shared state: every function that calls Stripe reads it the same way.
  # Locally it reopens for a probe after 5 s, so an outage drill does not wait half a minute.
  breaker_environment = {
    BREAKER_FAILURE_THRESHOLD = "5"
    BREAKER_WINDOW_SECONDS    = "60"
    BREAKER_COOLDOWN_SECONDS  = "5"
  }

  # What every function that calls Stripe needs: the event store, the Stripe key, the shared
  # breaker, the parked-payments queue and the ops-alerts topic. One definition keeps them in step.
  stripe_caller_environment = merge(local.breaker_environment, {
    TRANSACTIONS_TABLE       = module.data.transactions_table_name
    STRIPE_API_KEY_SECRET_ID = module.secrets.secret_names["stripe_api_key"]
    STRIPE_API_BASE          = var.stripe_api_base
    PARKED_QUEUE_URL         = module.queues.queue_urls["parked-payments"]
    OPS_ALERTS_TOPIC_ARN     = module.topics.topic_arns["ops-alerts"]
    LOG_LEVEL                = "INFO"
  })
  stripe_caller_statements = [
    # TransactWriteItems is authorised per item (PutItem); the breaker state is read with GetItem,
    # a retried payment with Query, and breaker transitions are conditional UpdateItem/PutItem.
    { sid = "EventStore", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:Query"], resources = [module.data.transactions_table_arn] },
    { sid = "StripeKey", actions = ["secretsmanager:GetSecretValue"], resources = [module.secrets.secret_arns["stripe_api_key"]] },
    { sid = "OpsAlerts", actions = ["sns:Publish"], resources = [module.topics.topic_arns["ops-alerts"]] },
    { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
  ]

  # One entry per Lambda function; routes and event sources hang off the function that serves them.
  functions = {
    stripe_webhook = {
      description = "Stores signed Stripe webhooks in the inbox (storage first, dedupe by event id)"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = 10
      layers      = ["core", "deps"]
      environment = {
        TRANSACTIONS_TABLE        = module.data.transactions_table_name
        WEBHOOK_SECRETS_SECRET_ID = module.secrets.secret_names["webhook_secrets"]
        INBOX_TTL_DAYS            = "90"
        STRIPE_API_BASE           = var.stripe_api_base
        POWERTOOLS_SERVICE_NAME   = "stripe_webhook"
        LOG_LEVEL                 = "INFO"
      }
      iam_statements = [
        { sid = "StoreWebhooks", actions = ["dynamodb:PutItem"], resources = [module.data.transactions_table_arn] },
        { sid = "ReadSigningSecrets", actions = ["secretsmanager:GetSecretValue"], resources = [module.secrets.secret_arns["webhook_secrets"]] },
        { sid = "DecryptWithDataKey", actions = ["kms:Decrypt"], resources = [module.kms.key_arn] },
      ]
      routes                = { "POST /webhooks/stripe" = { api_key_required = false } }
      event_source_mappings = {}
    }

    initiate_payment = {
      description = "POST /payments: idempotent initiation, event store + one Stripe call, parks when Stripe is down"
      handler     = "handler.handler"
      memory_size = 512
      timeout     = 15
      layers      = ["core", "deps"]
      environment = merge(local.stripe_caller_environment, {
        IDEMPOTENCY_TABLE       = module.data.idempotency_table_name
        POWERTOOLS_SERVICE_NAME = "initiate_payment"
        # Local only: lets the e2e suite crash the function at a chosen point (X-Paystream-Fault).
        FAULT_INJECTION_ENABLED = "true"
      })
      iam_statements = concat(local.stripe_caller_statements, [
        { sid = "Idempotency", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:DeleteItem"], resources = [module.data.idempotency_table_arn] },
        { sid = "ParkPayments", actions = ["sqs:SendMessage"], resources = [module.queues.queue_arns["parked-payments"]] },
      ])
      routes                = { "POST /payments" = { api_key_required = true } }
      event_source_mappings = {}
    }

    resume_payments = {
      description = "Resumes parked payments when the Stripe circuit breaker lets calls through (with backoff)"
      handler     = "handler.handler"
      memory_size = 512
      timeout     = 30
      layers      = ["core", "deps"]
      environment = merge(local.stripe_caller_environment, {
        RESUME_BACKOFF_BASE_SECONDS = "2"
        POWERTOOLS_SERVICE_NAME     = "resume_payments"
      })
      iam_statements = concat(local.stripe_caller_statements, [
        { sid = "Backoff", actions = ["sqs:ChangeMessageVisibility"], resources = [module.queues.queue_arns["parked-payments"]] },
      ])
      routes = {}
      event_source_mappings = {
        parked = {
          event_source_arn = module.queues.queue_arns["parked-payments"]
          batch_size       = 10
        }
      }
    }

    get_payment = {
      description = "GET /payments/{transaction_id}: the projection and its events"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = 10
      layers      = ["core", "deps"]
      environment = {
        TRANSACTIONS_TABLE      = module.data.transactions_table_name
        POWERTOOLS_SERVICE_NAME = "get_payment"
        LOG_LEVEL               = "INFO"
      }
      iam_statements = [
        { sid = "ReadPayments", actions = ["dynamodb:Query"], resources = [module.data.transactions_table_arn] },
        { sid = "DataKey", actions = ["kms:Decrypt"], resources = [module.kms.key_arn] },
      ]
      routes                = { "GET /payments/{transaction_id}" = { api_key_required = true } }
      event_source_mappings = {}
    }

    outbox_relay = {
      description = "Publishes stored events and webhooks from the transactions stream to the bus and the fraud stream"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = 60
      layers      = ["core", "deps"]
      environment = {
        TRANSACTIONS_TABLE      = module.data.transactions_table_name
        EVENT_BUS_NAME          = module.event_bus.bus_name
        FRAUD_STREAM_NAME       = module.streaming.stream_name
        POWERTOOLS_SERVICE_NAME = "outbox_relay"
        LOG_LEVEL               = "INFO"
      }
      iam_statements = [
        { sid = "Publish", actions = ["events:PutEvents"], resources = [module.event_bus.bus_arn] },
        { sid = "FraudStream", actions = ["kinesis:PutRecords"], resources = [module.streaming.stream_arn] },
        { sid = "MarkRelayed", actions = ["dynamodb:UpdateItem"], resources = [module.data.transactions_table_arn] },
        { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
      ]
      routes = {}
      event_source_mappings = {
        transactions = {
          event_source_arn  = module.data.transactions_stream_arn
          starting_position = "TRIM_HORIZON"
          batch_size        = 100
          # Only inserted events and webhook inbox items: projections, relay marks and breaker
          # state changes never reach the relay.
          filter_patterns = [jsonencode({
            eventName = ["INSERT"]
            dynamodb  = { NewImage = { item_type = { S = ["event", "stripe_event"] } } }
          })]
          bisect_batch_on_function_error = true
          maximum_retry_attempts         = 10
          maximum_record_age_in_seconds  = 86400
          on_failure_destination_arn     = module.queues.queue_arns["relay-failures"]
        }
      }
    }
  }

  # Consumer queues fed by bus rules; each gets its own DLQ.
  queues = {
    process-payment = { visibility_timeout_seconds = 180, max_receive_count = 5 }
    # Payments accepted while Stripe is unavailable, resumed when the breaker lets a probe through.
    parked-payments = { visibility_timeout_seconds = 60, max_receive_count = 10 }
    # The outbox relay's on-failure destination: pointers to stream records it could not publish.
    relay-failures = { visibility_timeout_seconds = 60, max_receive_count = 5 }
  }

  rules = {
    stripe-events = {
      description   = "Stored Stripe webhooks to the payment processor"
      event_pattern = jsonencode({ source = ["paystream.stripe"] })
      target_queue  = "process-payment"
    }
  }

  topics = ["payment-notifications", "fraud-alerts", "ops-alerts"]
}

module "kms" {
  source = "../../modules/kms"

  alias                   = var.name_prefix
  deletion_window_in_days = 7
  tags                    = local.tags
}

module "data" {
  source = "../../modules/data"

  transactions_table_name = "${var.name_prefix}-transactions"
  idempotency_table_name  = "${var.name_prefix}-idempotency"
  kms_key_arn             = module.kms.key_arn
  point_in_time_recovery  = false
  deletion_protection     = false
  tags                    = local.tags
}

module "queues" {
  source = "../../modules/queues"

  name_prefix = var.name_prefix
  queues      = local.queues
  kms_key_arn = module.kms.key_arn
  tags        = local.tags
}

module "event_bus" {
  source = "../../modules/event_bus"

  bus_name               = var.bus_name
  archive_retention_days = 7
  target_dlq_name        = "${var.name_prefix}-${var.bus_name}-target-dlq"
  target_queues          = { for k, arn in module.queues.queue_arns : k => { arn = arn, url = module.queues.queue_urls[k] } }
  rules                  = local.rules
  kms_key_arn            = module.kms.key_arn
  tags                   = local.tags
}

module "streaming" {
  source = "../../modules/streaming"

  name        = "${var.name_prefix}-fraud"
  stream_mode = "ON_DEMAND"
  kms_key_arn = module.kms.key_arn
  # No tags: moto 5.2.5 drops the Tags of CreateStream, which would show as a diff on every plan.
}

module "topics" {
  source = "../../modules/topics"

  name_prefix = var.name_prefix
  topics      = local.topics
  kms_key_arn = module.kms.key_arn
  tags        = local.tags
}

module "secrets" {
  source = "../../modules/secrets"

  secrets = {
    stripe_api_key  = { name = "${var.name_prefix}/stripe-api-key", description = "Stripe secret API key (put the value out of band)" }
    webhook_secrets = { name = "${var.name_prefix}/stripe-webhook-secrets", description = "Stripe webhook signing secrets, JSON {\"signing_secrets\": [...]} (put the value out of band)" }
  }
  kms_key_arn             = module.kms.key_arn
  recovery_window_in_days = 0
  tags                    = local.tags
}

module "layers" {
  source   = "../../modules/lambda_layer"
  for_each = local.layers

  layer_name       = "${var.name_prefix}-${each.key}"
  filename         = each.value
  source_code_hash = fileexists(each.value) ? filebase64sha256(each.value) : ""
}

module "functions" {
  source   = "../../modules/lambda_function"
  for_each = local.functions

  function_name         = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description           = each.value.description
  filename              = "${local.artifacts_dir}/functions/${each.key}.zip"
  source_code_hash      = fileexists("${local.artifacts_dir}/functions/${each.key}.zip") ? filebase64sha256("${local.artifacts_dir}/functions/${each.key}.zip") : ""
  handler               = each.value.handler
  memory_size           = each.value.memory_size
  timeout               = each.value.timeout
  layers                = [for layer in each.value.layers : module.layers[layer].arn]
  environment_variables = each.value.environment
  iam_statements        = each.value.iam_statements
  event_source_mappings = each.value.event_source_mappings
  log_retention_in_days = 7
  kms_key_arn           = module.kms.key_arn
  tags                  = local.tags
}

module "api" {
  source = "../../modules/api"

  name       = var.name_prefix
  stage_name = "v1"
  routes = merge([for fn, spec in local.functions : {
    for route, settings in spec.routes : route => {
      function_name    = module.functions[fn].function_name
      invoke_arn       = module.functions[fn].invoke_arn
      api_key_required = settings.api_key_required
    }
  }]...)
  tags = local.tags
}

module "alarms" {
  source = "../../modules/alarms"

  name_prefix = var.name_prefix
  dead_letter_queues = merge(
    module.queues.dlq_names,
    {
      event-bus-targets          = module.event_bus.target_dlq_name
      relay-failures-destination = module.queues.queue_names["relay-failures"]
    },
  )
  alarm_action_arns = [module.topics.topic_arns["ops-alerts"]]
  tags              = local.tags
}
