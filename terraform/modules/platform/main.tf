# The whole paystream platform, composed of the sibling modules only (no resources of its own). Every
# environment (local, dev, staging, prod) calls this module once; what differs between them is a variable.

locals {
  artifacts_dir = trimsuffix(var.artifacts_dir, "/")

  # The fraud configuration the scorer reads from SSM; the bus rules below use the same thresholds, so a
  # score routes to review exactly when the scorer calls it a review (docs/fraud.md).
  fraud_config     = jsondecode(var.fraud_config_json)
  review_threshold = try(local.fraud_config.thresholds.review, 70)

  layers = {
    core = "${local.artifacts_dir}/layers/core.zip"
    # Compiled wheels (pydantic-core…) differ per architecture: `python -m localdev package --architecture arm64`
    # builds deps-arm64.zip for Graviton functions.
    deps = "${local.artifacts_dir}/layers/${var.lambda_architecture == "arm64" ? "deps-arm64.zip" : "deps.zip"}"
  }

  # The Stripe circuit breaker is shared state: every function that calls Stripe reads it the same way.
  breaker_environment = {
    BREAKER_FAILURE_THRESHOLD = "5"
    BREAKER_WINDOW_SECONDS    = "60"
    BREAKER_COOLDOWN_SECONDS  = tostring(var.breaker_cooldown_seconds)
  }

  # Unset (not empty) when the functions call real Stripe: the functions then use Stripe's own base URL.
  stripe_api_base_environment = var.stripe_api_base == "" ? {} : { STRIPE_API_BASE = var.stripe_api_base }

  # What every function that calls Stripe needs: the event store, the Stripe key, the shared
  # breaker, the parked-payments queue and the ops-alerts topic. One definition keeps them in step.
  stripe_caller_environment = merge(local.breaker_environment, local.stripe_api_base_environment, {
    TRANSACTIONS_TABLE       = module.data.transactions_table_name
    STRIPE_API_KEY_SECRET_ID = module.secrets.secret_names["stripe_api_key"]
    PARKED_QUEUE_URL         = module.queues.queue_urls["parked-payments"]
    OPS_ALERTS_TOPIC_ARN     = module.topics.topic_arns["ops-alerts"]
    LOG_LEVEL                = "INFO"
  })
  stripe_caller_statements = [
    # TransactWriteItems is authorised per item (PutItem); a projection and the breaker state are read
    # with GetItem, and breaker transitions are conditional UpdateItem/PutItem.
    { sid = "EventStore", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"], resources = [module.data.transactions_table_arn] },
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
      environment = merge(local.stripe_api_base_environment, {
        TRANSACTIONS_TABLE        = module.data.transactions_table_name
        WEBHOOK_SECRETS_SECRET_ID = module.secrets.secret_names["webhook_secrets"]
        INBOX_TTL_DAYS            = "90"
        POWERTOOLS_SERVICE_NAME   = "stripe_webhook"
        LOG_LEVEL                 = "INFO"
      })
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
      # No IDEMPOTENCY_TABLE: POST /payments keeps its idempotency record in the transactions table, inside
      # the event store's transactions (docs/payments-core.md, "Idempotency"); EventStore grants cover it.
      environment = merge(local.stripe_caller_environment, {
        CAPTURE_MODE            = var.capture_mode
        POWERTOOLS_SERVICE_NAME = "initiate_payment"
        # Local drills only: lets the e2e suite crash the function at a chosen point (X-Paystream-Fault).
        FAULT_INJECTION_ENABLED = tostring(var.fault_injection_enabled)
      })
      iam_statements = concat(local.stripe_caller_statements, [
        { sid = "ParkPayments", actions = ["sqs:SendMessage"], resources = [module.queues.queue_arns["parked-payments"]] },
      ])
      # API Gateway checks the body's shape against the model generated from PaymentRequest
      # (python -m localdev.api_schemas); the function checks the values.
      routes = { "POST /payments" = {
        api_key_required = true
        request_schema   = file("${path.module}/../api/schemas/payment-request.json")
      } }
      event_source_mappings = {}
    }

    resume_payments = {
      description = "Resumes parked payments when the Stripe circuit breaker lets calls through (with backoff)"
      handler     = "handler.handler"
      memory_size = 512
      timeout     = var.sqs_consumer_timeouts.resume_payments # its queue's visibility is six times this
      layers      = ["core", "deps"]
      environment = merge(local.stripe_caller_environment, {
        RESUME_BACKOFF_BASE_SECONDS = tostring(var.resume_backoff_base_seconds)
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

    refund_payment = {
      description = "POST /payments/{transaction_id}/refunds: idempotent full or partial refund, cumulative amount from Stripe"
      handler     = "handler.handler"
      memory_size = 512
      timeout     = 15
      layers      = ["core", "deps"]
      environment = merge(local.stripe_caller_environment, {
        IDEMPOTENCY_TABLE       = module.data.idempotency_table_name
        POWERTOOLS_SERVICE_NAME = "refund_payment"
      })
      # Refunds are never parked (503 + Retry-After instead): no queue access. Query reads the payment's
      # events (a refund request already recorded is answered from them).
      iam_statements = concat(local.stripe_caller_statements, [
        { sid = "ReadPaymentHistory", actions = ["dynamodb:Query"], resources = [module.data.transactions_table_arn] },
        { sid = "Idempotency", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:DeleteItem"], resources = [module.data.idempotency_table_arn] },
      ])
      routes = { "POST /payments/{transaction_id}/refunds" = {
        api_key_required = true
        request_schema   = file("${path.module}/../api/schemas/refund-request.json")
      } }
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
        # Events are marked by BatchWriteItem puts (RelayMarks); webhook inbox items are not marked
        # (process_payment's recorded outcome shows them through).
        { sid = "MarkRelayed", actions = ["dynamodb:BatchWriteItem"], resources = [module.data.transactions_table_arn] },
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

    process_payment = {
      description = "Maps stored Stripe webhooks onto the payments' events through the state machine"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = var.sqs_consumer_timeouts.process_payment # its queue's visibility is six times this
      layers      = ["core", "deps"]
      environment = {
        TRANSACTIONS_TABLE       = module.data.transactions_table_name
        OPS_ALERTS_TOPIC_ARN     = module.topics.topic_arns["ops-alerts"]
        UNMATCHED_RETRY_RECEIVES = "3"
        # An unmatched event comes back after 1 s × its receive count instead of the queue's visibility
        # timeout (six times this function's timeout: 2 min in AWS, 30 s locally).
        UNMATCHED_RETRY_DELAY_SECONDS = "1"
        PROCESS_PAYMENT_QUEUE_URL     = module.queues.queue_urls["process-payment"]
        POWERTOOLS_SERVICE_NAME       = "process_payment"
        LOG_LEVEL                     = "INFO"
      }
      iam_statements = [
        # TransactWriteItems is authorised per action (PutItem: events, projection, PaymentIntent link;
        # UpdateItem: the batch's webhook outcomes on their inbox items, also one UpdateItem each when that
        # transaction is cancelled); BatchGetItem reads a batch's links and projections, GetItem a projection
        # again after a concurrent append.
        { sid = "EventStore", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"], resources = [module.data.transactions_table_arn] },
        { sid = "OpsAlerts", actions = ["sns:Publish"], resources = [module.topics.topic_arns["ops-alerts"]] },
        { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
      ]
      routes = {}
      # The mapping also grants ChangeMessageVisibility on the queue (the short retry delay above).
      event_source_mappings = {
        stripe_events = {
          event_source_arn                   = module.queues.queue_arns["process-payment"]
          batch_size                         = 10
          maximum_batching_window_in_seconds = var.consumer_batching_window_seconds
        }
      }
    }

    notifier = {
      description = "Publishes payment outcomes to payment-notifications (disputes also to ops-alerts), once per event"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = var.sqs_consumer_timeouts.notifier # its queue's visibility is six times this
      layers      = ["core", "deps"]
      environment = {
        # Required by every function's settings; the notifier itself never reads the table.
        TRANSACTIONS_TABLE      = module.data.transactions_table_name
        IDEMPOTENCY_TABLE       = module.data.idempotency_table_name
        NOTIFICATIONS_TOPIC_ARN = module.topics.topic_arns["payment-notifications"]
        OPS_ALERTS_TOPIC_ARN    = module.topics.topic_arns["ops-alerts"]
        POWERTOOLS_SERVICE_NAME = "notifier"
        LOG_LEVEL               = "INFO"
      }
      iam_statements = [
        # Claims: one TransactWriteItems of conditional puts (authorised per item: PutItem); completions and
        # releases: BatchWriteItem (puts, deletes). sns:Publish authorises PublishBatch too.
        { sid = "Idempotency", actions = ["dynamodb:PutItem", "dynamodb:BatchWriteItem"], resources = [module.data.idempotency_table_arn] },
        { sid = "Notify", actions = ["sns:Publish"], resources = [module.topics.topic_arns["payment-notifications"], module.topics.topic_arns["ops-alerts"]] },
        { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
      ]
      routes = {}
      event_source_mappings = {
        notifications = {
          event_source_arn                   = module.queues.queue_arns["notifications"]
          batch_size                         = 10
          maximum_batching_window_in_seconds = var.consumer_batching_window_seconds
        }
      }
    }

    payment_retry = {
      description = "Charges retryable failed payments again with exponential backoff, at most PAYMENT_RETRY_MAX_ATTEMPTS in all"
      handler     = "handler.handler"
      memory_size = 512
      timeout     = var.sqs_consumer_timeouts.payment_retry # its queue's visibility is six times this
      layers      = ["core", "deps"]
      environment = merge(local.stripe_caller_environment, {
        IDEMPOTENCY_TABLE          = module.data.idempotency_table_name
        PAYMENT_RETRY_QUEUE_URL    = module.queues.queue_urls["payment-retry"]
        PAYMENT_RETRY_MAX_ATTEMPTS = "3"
        # 30 s, 60 s, … up to 15 min by default; locally 2 s, 4 s, … so a retry drill takes seconds.
        PAYMENT_RETRY_BACKOFF_BASE_SECONDS = tostring(var.payment_retry_backoff_base_seconds)
        PAYMENT_RETRY_BACKOFF_MAX_SECONDS  = tostring(var.payment_retry_backoff_max_seconds)
        POWERTOOLS_SERVICE_NAME            = "payment_retry"
      })
      iam_statements = concat(local.stripe_caller_statements, [
        { sid = "Idempotency", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:DeleteItem"], resources = [module.data.idempotency_table_arn] },
      ])
      routes = {}
      # The mapping grants ChangeMessageVisibility on the queue: the backoff is the message's visibility.
      event_source_mappings = {
        retries = {
          event_source_arn = module.queues.queue_arns["payment-retry"]
          batch_size       = 10
        }
      }
    }

    fraud_scorer = {
      description = "Scores each new payment on the fraud stream (risk profiles, weighted rules) and appends fraud.scored"
      handler     = "handler.handler"
      memory_size = 512
      timeout     = 60
      layers      = ["core", "deps"]
      environment = {
        TRANSACTIONS_TABLE     = module.data.transactions_table_name
        FRAUD_PROFILES_TABLE   = module.data.fraud_profiles_table_name
        FRAUD_CONFIG_PARAMETER = module.parameters.parameter_names["fraud_config"]
        # A changed configuration applies within this many seconds.
        FRAUD_CONFIG_CACHE_SECONDS = tostring(var.fraud_config_cache_seconds)
        POWERTOOLS_SERVICE_NAME    = "fraud_scorer"
        LOG_LEVEL                  = "INFO"
      }
      iam_statements = [
        # BatchGetItem reads profiles and payment projections in one call; TransactWriteItems is
        # authorised per item (PutItem: the profiles, the fraud.scored event and the projection).
        { sid = "RiskProfiles", actions = ["dynamodb:BatchGetItem", "dynamodb:PutItem"], resources = [module.data.fraud_profiles_table_arn] },
        { sid = "AppendFraudScored", actions = ["dynamodb:BatchGetItem", "dynamodb:PutItem"], resources = [module.data.transactions_table_arn] },
        { sid = "FraudConfig", actions = ["ssm:GetParameter"], resources = [module.parameters.parameter_arns["fraud_config"]] },
        # Decrypt: the encrypted stream and tables; GenerateDataKey: writing the encrypted tables.
        { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
      ]
      routes = {}
      # The module grants the Kinesis read actions and SendMessage on the on-failure queue.
      event_source_mappings = {
        fraud_stream = {
          event_source_arn                   = module.streaming.stream_arn
          starting_position                  = "TRIM_HORIZON"
          batch_size                         = 100
          maximum_batching_window_in_seconds = var.consumer_batching_window_seconds
          # A malformed record is isolated by bisecting and sent to the on-failure queue after the
          # retries; a score more than an hour late is only a report, so older records go there too.
          bisect_batch_on_function_error = true
          maximum_retry_attempts         = 5
          maximum_record_age_in_seconds  = 3600
          on_failure_destination_arn     = module.queues.queue_arns["fraud-scoring-failures"]
        }
      }
    }

    fraud_review = {
      description = "Holds flagged payments in review (cancels them at the block threshold) and alerts fraud-alerts, once per score"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = var.sqs_consumer_timeouts.fraud_review # its queue's visibility is six times this
      layers      = ["core", "deps"]
      environment = merge(local.stripe_api_base_environment, {
        TRANSACTIONS_TABLE         = module.data.transactions_table_name
        IDEMPOTENCY_TABLE          = module.data.idempotency_table_name
        STRIPE_API_KEY_SECRET_ID   = module.secrets.secret_names["stripe_api_key"]
        FRAUD_ALERTS_TOPIC_ARN     = module.topics.topic_arns["fraud-alerts"]
        FRAUD_CONFIG_PARAMETER     = module.parameters.parameter_names["fraud_config"]
        FRAUD_CONFIG_CACHE_SECONDS = tostring(var.fraud_config_cache_seconds)
        POWERTOOLS_SERVICE_NAME    = "fraud_review"
        LOG_LEVEL                  = "INFO"
      })
      iam_statements = [
        # GetItem reads the projection (again after a concurrent append), TransactWriteItems (authorised
        # per item: PutItem) appends payment.review / payment.canceled.
        { sid = "EventStore", actions = ["dynamodb:PutItem", "dynamodb:GetItem"], resources = [module.data.transactions_table_arn] },
        { sid = "Idempotency", actions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:DeleteItem"], resources = [module.data.idempotency_table_arn] },
        { sid = "StripeKey", actions = ["secretsmanager:GetSecretValue"], resources = [module.secrets.secret_arns["stripe_api_key"]] },
        { sid = "FraudConfig", actions = ["ssm:GetParameter"], resources = [module.parameters.parameter_arns["fraud_config"]] },
        { sid = "FraudAlerts", actions = ["sns:Publish"], resources = [module.topics.topic_arns["fraud-alerts"]] },
        { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
      ]
      routes = {}
      event_source_mappings = {
        flagged = {
          event_source_arn = module.queues.queue_arns["fraud-review"]
          batch_size       = 10
        }
      }
    }

    capture_payment = {
      description = "Risk-gated capture: captures an authorized payment once its fraud score is below review"
      handler     = "handler.handler"
      memory_size = 256
      timeout     = var.sqs_consumer_timeouts.capture_payment # its queue's visibility is six times this
      layers      = ["core", "deps"]
      environment = merge(local.stripe_api_base_environment, {
        TRANSACTIONS_TABLE         = module.data.transactions_table_name
        STRIPE_API_KEY_SECRET_ID   = module.secrets.secret_names["stripe_api_key"]
        FRAUD_CONFIG_PARAMETER     = module.parameters.parameter_names["fraud_config"]
        FRAUD_CONFIG_CACHE_SECONDS = tostring(var.fraud_config_cache_seconds)
        POWERTOOLS_SERVICE_NAME    = "capture_payment"
        LOG_LEVEL                  = "INFO"
      })
      iam_statements = [
        { sid = "EventStore", actions = ["dynamodb:PutItem", "dynamodb:GetItem"], resources = [module.data.transactions_table_arn] },
        { sid = "StripeKey", actions = ["secretsmanager:GetSecretValue"], resources = [module.secrets.secret_arns["stripe_api_key"]] },
        { sid = "FraudConfig", actions = ["ssm:GetParameter"], resources = [module.parameters.parameter_arns["fraud_config"]] },
        { sid = "DataKey", actions = ["kms:Decrypt", "kms:GenerateDataKey"], resources = [module.kms.key_arn] },
      ]
      routes = {}
      event_source_mappings = {
        captures = {
          event_source_arn = module.queues.queue_arns["payment-captures"]
          batch_size       = 10
        }
      }
    }
  }

  # Consumer queues fed by bus rules; each gets its own DLQ (14 days' retention, the queues module's default).
  # consumer_timeout_seconds is the timeout of the function the queue feeds: the queues module refuses a
  # visibility timeout under six times it (AWS guidance for SQS event sources: a message still being
  # processed must not be received again). Both come from var.sqs_consumer_timeouts, the one place.
  queues = {
    process-payment = {
      consumer_timeout_seconds   = var.sqs_consumer_timeouts.process_payment
      visibility_timeout_seconds = 6 * var.sqs_consumer_timeouts.process_payment
      max_receive_count          = 3
    }
    # Payments accepted while Stripe is unavailable, resumed when the breaker lets a probe through.
    parked-payments = {
      consumer_timeout_seconds   = var.sqs_consumer_timeouts.resume_payments
      visibility_timeout_seconds = 6 * var.sqs_consumer_timeouts.resume_payments
      max_receive_count          = 10
    }
    # The outbox relay's on-failure destination: pointers to stream records it could not publish. No Lambda
    # reads it; it is a dead-letter queue in all but name, so it keeps messages as long as the DLQs.
    relay-failures = { visibility_timeout_seconds = 60, max_receive_count = 5, message_retention_seconds = 1209600 }
    # Payment outcomes for the notifier.
    notifications = {
      consumer_timeout_seconds   = var.sqs_consumer_timeouts.notifier
      visibility_timeout_seconds = 6 * var.sqs_consumer_timeouts.notifier
      max_receive_count          = 5
    }
    # Retryable failed payments; a message waits out its backoff invisible (one receive per wait), so
    # it may be received a few times per attempt before it lands in the DLQ.
    payment-retry = {
      consumer_timeout_seconds   = var.sqs_consumer_timeouts.payment_retry
      visibility_timeout_seconds = 6 * var.sqs_consumer_timeouts.payment_retry
      max_receive_count          = 10
    }
    # The fraud scorer's on-failure destination: pointers to fraud-stream records it could not score (no
    # Lambda reads it; kept as long as the DLQs).
    fraud-scoring-failures = { visibility_timeout_seconds = 60, max_receive_count = 5, message_retention_seconds = 1209600 }
    # Flagged payments for fraud_review. A payment parked while Stripe is down has no PaymentIntent to
    # hold yet: its message comes back every visibility timeout (90 s), 20 times (30 minutes), before
    # the DLQ (alarmed).
    fraud-review = {
      consumer_timeout_seconds   = var.sqs_consumer_timeouts.fraud_review
      visibility_timeout_seconds = 6 * var.sqs_consumer_timeouts.fraud_review
      max_receive_count          = 20
    }
    # Risk-gated capture checks for capture_payment.
    payment-captures = {
      consumer_timeout_seconds   = var.sqs_consumer_timeouts.capture_payment
      visibility_timeout_seconds = 6 * var.sqs_consumer_timeouts.capture_payment
      max_receive_count          = 5
    }
  }

  rules = {
    stripe-events = {
      description = "Stored Stripe webhooks to the payment processor"
      # Only the relayed webhooks (stripe.<type>), never a payment event.
      event_pattern = jsonencode({ source = ["paystream.stripe"], "detail-type" = [{ prefix = "stripe." }] })
      target_queue  = "process-payment"
    }
    notifications = {
      description = "Payment outcomes a customer hears about, to the notifier"
      event_pattern = jsonencode({
        source        = ["paystream.payments"]
        "detail-type" = ["payment.succeeded", "payment.failed", "payment.refunded", "payment.disputed"]
      })
      target_queue = "notifications"
    }
    payment-retries = {
      description = "Retryable payment failures (never card declines) to the retry function"
      event_pattern = jsonencode({
        source        = ["paystream.payments"]
        "detail-type" = ["payment.failed"]
        detail        = { retryable = [true] }
      })
      target_queue = "payment-retry"
    }
  }

  # Fraud scores route by numeric matching on the score (thresholds from the fraud configuration).
  fraud_rules = {
    fraud-review = {
      description = "Payments scored at or above the review threshold, to fraud_review (hold, block, alert)"
      event_pattern = jsonencode({
        source        = ["paystream.fraud"]
        "detail-type" = ["fraud.scored"]
        detail        = { risk_score = [{ numeric = [">=", local.review_threshold] }] }
      })
      target_queue = "fraud-review"
    }
    # Risk-gated capture needs two facts, each with its own event; whichever comes last captures.
    fraud-cleared = {
      description = "Risk-gated payments scored below the review threshold, to capture_payment"
      # capture_method: only risk-gated (manual capture) payments have anything to capture; the scorer copies
      # it from payment.created into fraud.scored, so automatic ones never reach capture_payment.
      event_pattern = jsonencode({
        source        = ["paystream.fraud"]
        "detail-type" = ["fraud.scored"]
        detail        = { risk_score = [{ numeric = ["<", local.review_threshold] }], capture_method = ["manual"] }
      })
      target_queue = "payment-captures"
    }
    payment-authorized = {
      description = "Manual-capture PaymentIntents Stripe authorized, to capture_payment"
      event_pattern = jsonencode({
        source        = ["paystream.payments"]
        "detail-type" = ["payment.processing"]
        detail        = { stripe_status = ["requires_capture"] }
      })
      target_queue = "payment-captures"
    }
  }

  topics = ["payment-notifications", "fraud-alerts", "ops-alerts"]
}

module "kms" {
  source = "../kms"

  alias                   = var.name_prefix
  deletion_window_in_days = var.kms_deletion_window_in_days
  tags                    = var.tags
}

module "data" {
  source = "../data"

  transactions_table_name = "${var.name_prefix}-transactions"
  idempotency_table_name  = "${var.name_prefix}-idempotency"
  kms_key_arn             = module.kms.key_arn
  point_in_time_recovery  = var.point_in_time_recovery
  deletion_protection     = var.deletion_protection
  tags                    = var.tags

  # Risk profiles of the fraud scorer (docs/fraud.md).
  fraud_profiles_table_name = "${var.name_prefix}-fraud-profiles"
}

module "queues" {
  source = "../queues"

  name_prefix = var.name_prefix
  queues      = local.queues
  kms_key_arn = module.kms.key_arn
  tags        = var.tags
}

module "event_bus" {
  source = "../event_bus"

  bus_name               = var.bus_name
  archive_retention_days = var.archive_retention_days
  target_dlq_name        = "${var.name_prefix}-${var.bus_name}-target-dlq"
  target_queues          = { for k, arn in module.queues.queue_arns : k => { arn = arn, url = module.queues.queue_urls[k] } }
  rules                  = merge(local.rules, local.fraud_rules)
  kms_key_arn            = module.kms.key_arn
  tags                   = var.tags
}

module "streaming" {
  source = "../streaming"

  name        = "${var.name_prefix}-fraud"
  stream_mode = var.stream_mode
  shard_count = var.stream_shard_count
  kms_key_arn = module.kms.key_arn
  # Not locally: moto 5.2.5 drops the Tags of CreateStream, which would show as a diff on every plan.
  tags = var.tag_stream ? var.tags : {}
}

module "topics" {
  source = "../topics"

  name_prefix = var.name_prefix
  topics      = local.topics
  kms_key_arn = module.kms.key_arn
  tags        = var.tags
}

module "secrets" {
  source = "../secrets"

  secrets = {
    stripe_api_key  = { name = "${var.name_prefix}/stripe-api-key", description = "Stripe secret API key (put the value out of band)" }
    webhook_secrets = { name = "${var.name_prefix}/stripe-webhook-secrets", description = "Stripe webhook signing secrets, JSON {\"signing_secrets\": [...]} (put the value out of band)" }
  }
  kms_key_arn             = module.kms.key_arn
  recovery_window_in_days = var.secrets_recovery_window_in_days
  tags                    = var.tags
}

module "parameters" {
  source = "../parameters"

  parameters = {
    # The fraud scorer's rules, weights and thresholds (docs/fraud.md), validated at its cold start.
    fraud_config = {
      name        = "/${var.name_prefix}/fraud-config"
      description = "FraudConfig JSON for lambdas/fraud_scorer (weights, thresholds, windows, blocklists)"
      value       = var.fraud_config_json
    }
  }
  tags = var.tags
}

module "layers" {
  source   = "../lambda_layer"
  for_each = local.layers

  layer_name       = "${var.name_prefix}-${each.key}"
  filename         = each.value
  source_code_hash = fileexists(each.value) ? filebase64sha256(each.value) : ""
}

module "functions" {
  source   = "../lambda_function"
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
  architecture          = var.lambda_architecture
  log_retention_in_days = var.log_retention_in_days
  kms_key_arn           = module.kms.key_arn
  # Each function's Errors and Throttles alarms (the module owns them) notify ops-alerts.
  alarm_action_arns = [module.topics.topic_arns["ops-alerts"]]
  tags              = var.tags
}

module "api" {
  source = "../api"

  name       = var.name_prefix
  stage_name = "v1"
  routes = merge([for fn, spec in local.functions : {
    for route, settings in spec.routes : route => {
      function_name    = module.functions[fn].function_name
      invoke_arn       = module.functions[fn].invoke_arn
      api_key_required = settings.api_key_required
      request_schema   = try(settings.request_schema, null)
    }
  }]...)
  # API Gateway's own 400 for a body failing its model, in the contract's error shape (DESIGN.md §2).
  gateway_responses = {
    BAD_REQUEST_BODY = {
      response_templates = {
        "application/json" = "{\"error\":\"validation_error\",\"message\":$context.error.messageString,\"details\":[{\"field\":\"body\",\"message\":\"does not match the request schema: check field names, required fields and JSON types\"}]}"
      }
    }
  }
  clients                        = var.api_clients
  access_log_retention_in_days   = var.log_retention_in_days
  access_log_kms_key_arn         = module.kms.key_arn
  manage_account_cloudwatch_role = var.manage_api_gateway_account_role
  # The stage's 5xx and latency alarms (the module owns them) notify ops-alerts.
  alarm_action_arns = [module.topics.topic_arns["ops-alerts"]]
  tags              = var.tags
}

# The API stage behind a WAF web ACL (rate limit per IP, AWS managed rules), in AWS environments only:
# the local emulator's WAFv2 is partial.
module "waf" {
  source = "../waf"
  count  = var.waf.enabled ? 1 : 0

  name         = var.name_prefix
  resource_arn = module.api.stage_arn
  rate_limit   = var.waf.rate_limit
  # null: the module's default groups (common rule set, known bad inputs).
  managed_rule_groups   = var.waf.managed_rule_groups ? null : {}
  log_retention_in_days = var.log_retention_in_days
  log_kms_key_arn       = module.kms.key_arn
  tags                  = var.tags
}

module "alarms" {
  source = "../alarms"

  name_prefix = var.name_prefix
  dead_letter_queues = merge(
    module.queues.dlq_names,
    {
      event-bus-targets          = module.event_bus.target_dlq_name
      relay-failures-destination = module.queues.queue_names["relay-failures"]
      # The fraud scorer's on-failure destination is itself a place where records end up unprocessed.
      fraud-scoring-failures-destination = module.queues.queue_names["fraud-scoring-failures"]
    },
  )
  iterator_age_alarms = {
    fraud-scorer = { function_name = module.functions["fraud_scorer"].function_name, threshold_seconds = 60 }
    # The outbox relay on the transactions table's DynamoDB stream: its lag delays every event on the bus.
    outbox-relay = { function_name = module.functions["outbox_relay"].function_name, threshold_seconds = 60 }
  }
  # A provisioned fraud stream has a fixed write capacity; an on-demand one scales itself.
  provisioned_streams = var.stream_mode == "PROVISIONED" ? { fraud = module.streaming.stream_name } : {}
  breaker_open_alarm = {
    namespace   = local.metrics_namespace
    metric_name = "StripeBreakerOpened"
    services    = local.breaker_services
  }
  alarm_action_arns = [module.topics.topic_arns["ops-alerts"]]
  tags              = var.tags
}

# -- observability -----------------------------------------------------------------------------------

locals {
  # The functions' Powertools EMF namespace (no function sets POWERTOOLS_METRICS_NAMESPACE: the handlers'
  # default); each metric carries a `service` dimension, the function's POWERTOOLS_SERVICE_NAME.
  metrics_namespace = "paystream"
  service_names     = { for fn, spec in local.functions : fn => spec.environment.POWERTOOLS_SERVICE_NAME }
  # The functions that share the Stripe circuit breaker (they get its settings) report its openings.
  breaker_services = sort([for fn, spec in local.functions : local.service_names[fn] if contains(keys(spec.environment), "BREAKER_COOLDOWN_SECONDS")])
}

module "dashboard" {
  source = "../dashboard"

  dashboard_name = "${var.name_prefix}-flow"
  region         = split(":", module.kms.key_arn)[3]
  api            = { name = module.api.api_name, stage = module.api.stage_name }

  metrics_namespace = local.metrics_namespace
  business_metrics = [
    { title = "Payments", metrics = [
      { name = "PaymentsInitiated", service = local.service_names["initiate_payment"], label = "initiated" },
      { name = "PaymentsParked", service = local.service_names["initiate_payment"], label = "parked (Stripe unavailable)" },
      # Outcomes are counted once by the notifier, whichever path (API, webhook, retry, review) produced them.
      { name = "PaymentsSucceeded", service = local.service_names["notifier"], label = "succeeded" },
      { name = "PaymentsFailed", service = local.service_names["notifier"], label = "failed" },
      { name = "PaymentsRefunded", service = local.service_names["notifier"], label = "refunded" },
    ] },
    { title = "Webhooks", metrics = [
      { name = "WebhooksStored", service = local.service_names["stripe_webhook"], label = "stored" },
      { name = "WebhooksDuplicate", service = local.service_names["stripe_webhook"], label = "duplicate" },
      { name = "WebhooksRejected", service = local.service_names["stripe_webhook"], label = "rejected (signature)" },
    ] },
    { title = "Fraud", metrics = [
      { name = "PaymentsFlagged", service = local.service_names["fraud_scorer"], label = "flagged" },
      { name = "PaymentsHeldForReview", service = local.service_names["fraud_review"], label = "held for review" },
      { name = "PaymentsBlocked", service = local.service_names["fraud_review"], label = "blocked" },
      { name = "PaymentsCaptured", service = local.service_names["capture_payment"], label = "captured (risk-gated)" },
    ] },
    { title = "Stripe circuit breaker openings", metrics = [
      for service in local.breaker_services : { name = "StripeBreakerOpened", service = service, label = service }
    ] },
  ]

  function_names          = { for fn, f in module.functions : fn => f.function_name }
  queue_names             = module.queues.queue_names
  dead_letter_queue_names = module.alarms.dead_letter_queues # every alarmed DLQ and on-failure destination
  kinesis_stream_names    = { fraud = module.streaming.stream_name }
  stream_consumer_function_names = {
    fraud_scorer = module.functions["fraud_scorer"].function_name
    outbox_relay = module.functions["outbox_relay"].function_name
  }
  # Every alarm of the platform: DLQs, stream lag, the breaker, each function's and the API's.
  alarm_arns = concat(
    values(module.alarms.alarm_arns),
    values(module.alarms.iterator_age_alarm_arns),
    compact([module.alarms.breaker_open_alarm_arn]),
    # (null only in the environments' plan tests, which replace the function module by a few outputs)
    flatten([for f in module.functions : values(f.alarm_arns) if f.alarm_arns != null]),
    values(module.api.alarm_arns),
  )
}
