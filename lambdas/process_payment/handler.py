"""Stripe webhook processing: stored webhooks (relayed on the bus, routed to SQS) become payment events.

Thin: each SQS record's body is the EventBridge event the outbox relay published; the core
(`paystream.processing`) maps it onto the payment through the state machine. The whole batch is processed
first (`process_batch`: the batch's projections read together, each record applied in order, every outcome
recorded in one write), then Powertools' batch processor reports each record from its result. A record
fails (SQS delivers it again, then its DLQ) when its body is not a `paystream.stripe` event, when the table
fails, or while no payment matches it yet — that last one comes back after a short delay instead of the
queue's whole visibility timeout, since the link it waits for is usually milliseconds away.
"""

from __future__ import annotations

import functools
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.wiring import LazyClient, stripe_event_processor
from paystream.config import Settings
from paystream.processing import (
    APPLIED,
    UNMATCHED,
    Delivery,
    MalformedStripeEvent,
    Outcome,
    PaymentNotYetKnown,
    StripeEvent,
    StripeEventProcessor,
    parse_bus_event,
)

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
# A whole batch failing (nothing matched yet) is reported like any partial failure.
processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(MalformedStripeEvent, PaymentNotYetKnown),
                                   raise_on_entire_batch_failure=False)
settings = Settings.from_env()
sqs = LazyClient("sqs")
RECORD_KEYS = ["stripe_event_id", "stripe_event_type", "transaction_id"]


@functools.cache
def service() -> StripeEventProcessor:
    return stripe_event_processor(settings)


def process_records(event: dict) -> dict[str, tuple[StripeEvent | None, Outcome | Exception]]:
    """Each record's Stripe event (None when malformed) and result, by message id: the whole batch at once."""
    parsed: dict[str, tuple[StripeEvent | None, Outcome | Exception | None]] = {}
    deliveries = []
    for raw in event.get("Records") or []:
        record = SQSRecord(raw)
        try:
            stripe_event = parse_bus_event(record.body)
        except MalformedStripeEvent as exc:
            parsed[record.message_id] = (None, exc)
            continue
        parsed[record.message_id] = (stripe_event, None)
        deliveries.append(Delivery(record.message_id, stripe_event,
                                   int(record.attributes.approximate_receive_count)))
    results = service().process_batch(deliveries) if deliveries else {}
    return {message_id: (stripe_event, result if result is not None else results[message_id])
            for message_id, (stripe_event, result) in parsed.items()}


def report(record: SQSRecord, stripe_event: StripeEvent | None, result: Outcome | Exception) -> None:
    """Log and count one record's result; raise its exception to report it failed."""
    logger.remove_keys(RECORD_KEYS)  # keys of the previous record of the batch
    if isinstance(result, MalformedStripeEvent):
        logger.error("malformed record: not a stored Stripe webhook from paystream.stripe; it is retried and then "
                     "lands in the DLQ", extra={"message_id": record.message_id, "reason": str(result)})
        metrics.add_metric(name="WebhooksMalformed", unit=MetricUnit.Count, value=1)
        raise result
    if stripe_event is not None:
        logger.append_keys(stripe_event_id=stripe_event.event_id, stripe_event_type=stripe_event.event_type)
    if isinstance(result, PaymentNotYetKnown):
        receive_count = int(record.attributes.approximate_receive_count)
        _deliver_again_soon(record, receive_count)
        logger.info("no payment matches the Stripe event yet; delivering it again", extra={"reason": str(result)})
        metrics.add_metric(name="WebhooksAwaitingPayment", unit=MetricUnit.Count, value=1)
        raise result
    if isinstance(result, Exception):
        raise result  # ConsumerBatchProcessor logs it at ERROR with the record's id
    outcome = result
    if outcome.transaction_id:
        logger.append_keys(transaction_id=outcome.transaction_id)
        logger.set_correlation_id(outcome.transaction_id)  # the payment's id correlates every log line
    logger.info("Stripe event processed", extra={"outcome": outcome.status, "payment_status": outcome.payment_status,
                                                 "appended": outcome.appended, "reason": outcome.reason})
    metrics.add_metric(name="WebhooksProcessed", unit=MetricUnit.Count, value=1)
    if outcome.status == APPLIED:
        metrics.add_metric(name="PaymentEventsAppended", unit=MetricUnit.Count, value=len(outcome.appended))
    elif outcome.status == UNMATCHED:
        logger.warning("Stripe event matches no payment: recorded and raised on ops-alerts",
                       extra={"reason": outcome.reason})
        metrics.add_metric(name="WebhooksUnmatched", unit=MetricUnit.Count, value=1)


def _deliver_again_soon(record: SQSRecord, receive_count: int) -> None:
    if not settings.process_payment_queue_url:
        return  # the queue's visibility timeout decides
    delay = settings.unmatched_retry_delay_seconds * receive_count
    try:
        sqs.change_message_visibility(QueueUrl=settings.process_payment_queue_url,
                                      ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay)
    except Exception as exc:  # noqa: BLE001 - the retry still happens, after the whole visibility timeout
        logger.warning("could not shorten the retry delay", extra={"error": str(exc)})


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    results = process_records(event)

    def record_handler(record: SQSRecord) -> None:
        report(record, *results[record.message_id])

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
