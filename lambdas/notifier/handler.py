"""Notifications consumer: payment outcomes from the bus (via the `notifications` queue) to SNS.

Thin: each SQS record's body is an EventBridge event; the core decides what to publish
(paystream.notifications). The whole batch is delivered first (`deliver_batch`: one claim transaction for
every (event, topic) of the batch, one PublishBatch per topic, one BatchWriteItem completing them — a few
requests per batch instead of three per record), then Powertools' batch processor reports each record from
its deliveries' results: a record is acknowledged once each of its deliveries is published (now or before,
the same event twice in a batch included), and fails — SQS delivers it again — when one was not (another
invocation is publishing it, or claiming or publishing failed). An unusable message fails every time and
ends in the DLQ.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.wiring import notification_service
from paystream.config import Settings
from paystream.notifications import (ALREADY_PUBLISHED, NOTIFICATIONS_TOPIC, PUBLISHED, Delivery, DeliveryResult,
                                     InvalidNotificationMessage, NotificationService)

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))


class NotificationNotPublished(Exception):
    """A delivery of the record was not published by this batch: the record fails and SQS delivers it again."""


processor = ConsumerBatchProcessor(EventType.SQS, logger,
                                   logged_by_handler=(InvalidNotificationMessage, NotificationNotPublished))
settings = Settings.from_env(require=("idempotency_table", "notifications_topic_arn", "ops_alerts_topic_arn"))
OUTCOME_METRICS = {"payment.succeeded": "PaymentsSucceeded", "payment.failed": "PaymentsFailed",
                   "payment.refunded": "PaymentsRefunded", "payment.disputed": "PaymentsDisputed"}
# A claim's lease without a Lambda context (the invocation's remaining time otherwise, as Powertools did).
DEFAULT_LEASE_SECONDS = 60.0


@functools.cache
def service() -> NotificationService:
    return notification_service(settings)


service()  # at init, as every invocation needs it (its DynamoDB client; the SNS client is made on first publish)


def planned(body: str) -> list[Delivery] | Exception:
    try:
        return service().deliveries(json.loads(body))
    except (ValueError, InvalidNotificationMessage) as exc:  # JSONDecodeError is a ValueError
        return exc


def _with_transaction(delivery: Delivery) -> None:
    logger.append_keys(transaction_id=delivery.message["transaction_id"])
    logger.set_correlation_id(delivery.message["transaction_id"])  # the payment's id correlates every log line


def deliver_batch(event: dict, context: Any) -> tuple[dict[str, list[Delivery] | Exception], dict[str, DeliveryResult]]:
    """Every record's deliveries (or why it is unusable) by message id, and the result of each delivery key."""
    plans = {record["messageId"]: planned(record["body"]) for record in event.get("Records") or []}
    deliveries = [delivery for plan in plans.values() if isinstance(plan, list) for delivery in plan]
    if not deliveries:
        return plans, {}
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    lease_seconds = remaining_ms() / 1000 if remaining_ms else DEFAULT_LEASE_SECONDS
    results = service().deliver(deliveries, lease_seconds=lease_seconds)
    seen: set[str] = set()
    for delivery in deliveries:
        result = results[delivery.idempotency_key]
        if delivery.idempotency_key in seen or result.status not in (PUBLISHED, ALREADY_PUBLISHED):
            continue
        seen.add(delivery.idempotency_key)
        _with_transaction(delivery)
        if result.status == ALREADY_PUBLISHED:
            logger.info("already published: not again", extra={"topic": delivery.topic})
            metrics.add_metric(name="NotificationsAlreadyPublished", unit=MetricUnit.Count, value=1)
            continue
        logger.info("notification published", extra={"topic": delivery.topic, "event_type": delivery.message["event_type"],
                                                      "sns_message_id": result.message_id})
        metrics.add_metric(name="NotificationsPublished", unit=MetricUnit.Count, value=1)
        # The platform's outcome metrics, whichever path (API, webhook, retry, review) produced the outcome:
        # counted here because this runs once per (event, topic) published, and every outcome reaches the customer topic.
        outcome = OUTCOME_METRICS.get(delivery.message["event_type"])
        if outcome and delivery.topic == NOTIFICATIONS_TOPIC:
            metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
        if result.completion_error:
            # Not a failure of the record: that would publish it again. Its IN_PROGRESS record holds redeliveries
            # off until its lease passes; only one after that would publish twice (docs/payments-core.md).
            logger.error("published but not marked completed", extra={"topic": delivery.topic,
                                                                       "error": result.completion_error})
            metrics.add_metric(name="NotificationCompletionsFailed", unit=MetricUnit.Count, value=1)
    logger.remove_keys(["transaction_id"])
    return plans, results


def report(plan: list[Delivery] | Exception, results: dict[str, DeliveryResult], message_id: str) -> None:
    if isinstance(plan, Exception):
        logger.error("unusable notification message: it will end in the DLQ", extra={"reason": str(plan)})
        raise plan
    if not plan:
        logger.info("failure will be retried: not notified yet", extra={"message_id": message_id})
        metrics.add_metric(name="NotificationsDeferredToRetry", unit=MetricUnit.Count, value=1)
        return
    _with_transaction(plan[0])
    failed = {delivery.topic: results[delivery.idempotency_key] for delivery in plan
              if not results[delivery.idempotency_key].ok}
    if failed:
        logger.warning("notification not published: the message is delivered again", extra={
            "event_id": plan[0].event_id, "failed": {topic: result.error for topic, result in failed.items()}})
        metrics.add_metric(name="NotificationsNotPublished", unit=MetricUnit.Count, value=len(failed))
        raise NotificationNotPublished("; ".join(f"{topic}: {result.error}" for topic, result in failed.items()))


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    plans, results = deliver_batch(event, context)

    def record_handler(record: SQSRecord) -> None:
        try:
            report(plans[record.message_id], results, record.message_id)
        finally:
            logger.remove_keys(["transaction_id"])

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
