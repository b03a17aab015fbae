"""Parked-payments consumer: resumes payments accepted while Stripe was unavailable.

Each message names one parked payment. While the breaker is open (or Stripe still fails) the
message is put back with an exponential delay (its visibility timeout), so parked payments are
retried with backoff and, after the queue's maxReceiveCount, land in its DLQ with an alarm.
"""

from __future__ import annotations

import functools
import json
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.wiring import LazyClient, payment_service
from paystream.config import Settings
from paystream.payments import PaymentService, ProviderUnavailable

logger = Logger()
# No Powertools Tracer: Lambda's active tracing records each invocation, and the X-Ray SDK the Tracer
# loads (it builds two botocore X-Ray clients at import) costs about 0.5 of the cold-start yardstick
# (docs/payments-core.md, "Observability and cold start").
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
# All records failing (breaker open) is a normal answer here, reported like any partial failure.
processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(ProviderUnavailable,),
                                   raise_on_entire_batch_failure=False)
settings = Settings.from_env(require=("stripe_api_key_secret_id", "parked_queue_url"))
# Created on first use: only a payment still parked (Stripe still down) puts its message back (cold starts).
sqs = LazyClient("sqs")
BACKOFF_BASE_SECONDS = int(os.environ.get("RESUME_BACKOFF_BASE_SECONDS", "5"))
BACKOFF_MAX_SECONDS = int(os.environ.get("RESUME_BACKOFF_MAX_SECONDS", "900"))


def backoff_seconds(receive_count: int) -> int:
    """5 s, 10 s, 20 s, … capped: how long a parked payment waits before its next try."""
    return min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, receive_count - 1))


@functools.cache
def service() -> PaymentService:
    return payment_service(settings)


def resume(record: SQSRecord) -> None:
    transaction_id = json.loads(record.body)["transaction_id"]
    logger.append_keys(transaction_id=transaction_id)
    logger.set_correlation_id(transaction_id)  # the payment's id correlates every log line
    try:
        result = service().resume(transaction_id)
    except ProviderUnavailable as exc:
        delay = backoff_seconds(int(record.attributes.approximate_receive_count))
        sqs.change_message_visibility(QueueUrl=settings.parked_queue_url, ReceiptHandle=record.receipt_handle,
                                      VisibilityTimeout=delay)
        logger.info("payment still parked", extra={"reason": str(exc), "retry_in_seconds": delay})
        metrics.add_metric(name="ParkedPaymentsStillWaiting", unit=MetricUnit.Count, value=1)
        raise
    logger.info("parked payment resumed", extra={"status": result.body["status"]})
    metrics.add_metric(name="ParkedPaymentsResumed", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    return process_partial_response(event=event, record_handler=resume, processor=processor, context=context)
