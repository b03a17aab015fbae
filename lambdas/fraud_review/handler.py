"""fraud_review — payments the bus rule flagged (`fraud.scored` with `risk_score >= 70`, via the
`fraud-review` queue): hold, block, alert (paystream.review, docs/fraud.md).

Thin: parse the EventBridge event, let the core hold the payment in `review` (or, at the block threshold,
cancel its PaymentIntent), then publish one alert with the score, its reasons and what was done to the SNS
`fraud-alerts` topic — once per fraud.scored event, under Powertools idempotency, so a redelivered message
never alerts twice. A payment without a PaymentIntent yet (parked while Stripe is down) and a Stripe call
that fails are retried by the queue; an unusable message ends in the DLQ (alarmed).
"""

from __future__ import annotations

import json
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.fraud_profiles import FraudConfigSource
from paystream.adapters.notification_topics import SnsTopicPublisher
from paystream.adapters.wiring import LazyClient, dynamodb_client, fraud_review_service
from paystream.config import Settings
from paystream.review import FraudFlag, InvalidFraudEvent, Thresholds, alert

logger = Logger()
# No Powertools Tracer: Lambda's active tracing records each invocation, and the X-Ray SDK the Tracer
# loads (it builds two botocore X-Ray clients at import) costs about 0.5 of the cold-start yardstick
# (docs/payments-core.md, "Observability and cold start").
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
# A batch where every record fails (e.g. one unusable message) is reported like any partial failure.
processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(InvalidFraudEvent,),
                                   raise_on_entire_batch_failure=False)
settings = Settings.from_env(require=("idempotency_table", "stripe_api_key_secret_id", "fraud_alerts_topic_arn",
                                      "fraud_config_parameter"))
config_source = FraudConfigSource(settings.fraud_config_parameter, max_age=settings.fraud_config_cache_seconds,
                                  on_invalid=lambda message: logger.error(message))
config_source.load()  # the thresholds: a bad document fails the cold start with one clear message
alerts = SnsTopicPublisher(LazyClient("sns"))
# Redeliveries come within the queue's retention (4 days).
idempotency_config = IdempotencyConfig(event_key_jmespath="fraud_event_id", expires_after_seconds=7 * 24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb_client())
ACTION_METRICS = {"held": "PaymentsHeldForReview", "blocked": "PaymentsBlocked",
                  "already_captured": "FlaggedAfterCapture", "already_closed": "FlaggedAfterClose"}


@idempotent_function(data_keyword_argument="message", persistence_store=persistence, config=idempotency_config)
def publish_alert_once(message: dict) -> dict:
    message_id = alerts.publish(
        settings.fraud_alerts_topic_arn, json.dumps(message),
        {"event_type": "fraud.alert", "decision": message["decision"], "action": message["action"],
         "currency": message["currency"]},
        subject=f"paystream fraud {message['decision']}: risk {message['risk_score']} on {message['transaction_id']}",
    )
    return {"message_id": message_id}


def review(record: SQSRecord) -> None:
    try:
        flag = FraudFlag.from_bus_event(json.loads(record.body))
    except (ValueError, InvalidFraudEvent) as exc:  # JSONDecodeError is a ValueError
        logger.error("unusable fraud review message: it will end in the DLQ", extra={"reason": str(exc)})
        raise
    logger.append_keys(transaction_id=flag.transaction_id)
    logger.set_correlation_id(flag.transaction_id)  # the payment's id correlates every log line
    configured = config_source.current().thresholds
    thresholds = Thresholds(review=configured.review, block=configured.block)
    outcome = fraud_review_service(settings, thresholds).flagged(flag)
    message = alert(flag, outcome, thresholds)
    published = publish_alert_once(message=message)
    logger.info("fraud alert published", extra={"risk_score": flag.risk_score, "action": outcome.action,
                                                "status": outcome.projection.status.value,
                                                "sns_message_id": published["message_id"]})
    metrics.add_metric(name=ACTION_METRICS[outcome.action], unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    idempotency_config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=review, processor=processor, context=context)
