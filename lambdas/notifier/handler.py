"""Notifications consumer: payment outcomes from the bus (via the `notifications` queue) to SNS.

Thin: each SQS record's body is an EventBridge event; the core decides what to publish
(paystream.notifications) and each (event, topic) is published once under Powertools idempotency
keyed by the payment event's id, so a redelivered message or a re-published event never notifies twice.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.wiring import dynamodb_client, notification_service
from paystream.config import Settings
from paystream.notifications import NOTIFICATIONS_TOPIC, Delivery, InvalidNotificationMessage, NotificationService

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(InvalidNotificationMessage,))
settings = Settings.from_env(require=("idempotency_table", "notifications_topic_arn", "ops_alerts_topic_arn"))
# Redeliveries come within the queue's retention (4 days) and relay retries within minutes.
IDEMPOTENCY_EXPIRY_SECONDS = 7 * 24 * 3600
OUTCOME_METRICS = {"payment.succeeded": "PaymentsSucceeded", "payment.failed": "PaymentsFailed",
                   "payment.refunded": "PaymentsRefunded", "payment.disputed": "PaymentsDisputed"}
idempotency_config = IdempotencyConfig(event_key_jmespath="idempotency_key",
                                       expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb_client())


@functools.cache
def service() -> NotificationService:
    return notification_service(settings)


@idempotent_function(data_keyword_argument="delivery", persistence_store=persistence, config=idempotency_config)
def publish_once(delivery: dict) -> dict:
    fields = {k: v for k, v in delivery.items() if k != "idempotency_key"}
    message_id = service().publish(Delivery(**fields))
    # The platform's outcome metrics, whichever path (API, webhook, retry, review) produced the outcome:
    # counted here because this runs once per (event, topic), and every outcome reaches the customer topic.
    outcome = OUTCOME_METRICS.get(fields["message"]["event_type"])
    if outcome and fields["topic"] == NOTIFICATIONS_TOPIC:
        metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
    return {"message_id": message_id}


def notify(record: SQSRecord) -> None:
    try:
        deliveries = service().deliveries(json.loads(record.body))
    except (ValueError, InvalidNotificationMessage) as exc:  # JSONDecodeError is a ValueError
        logger.error("unusable notification message: it will end in the DLQ", extra={"reason": str(exc)})
        raise
    if not deliveries:
        logger.info("failure will be retried: not notified yet", extra={"message_id": record.message_id})
        metrics.add_metric(name="NotificationsDeferredToRetry", unit=MetricUnit.Count, value=1)
        return
    for delivery in deliveries:
        logger.append_keys(transaction_id=delivery.message["transaction_id"])
        logger.set_correlation_id(delivery.message["transaction_id"])  # the payment's id correlates every log line
        published = publish_once(delivery={**dataclasses.asdict(delivery), "idempotency_key": delivery.idempotency_key})
        logger.info("notification published", extra={"topic": delivery.topic, "event_type": delivery.message["event_type"],
                                                      "sns_message_id": published["message_id"]})
        metrics.add_metric(name="NotificationsPublished", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    idempotency_config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=notify, processor=processor, context=context)
