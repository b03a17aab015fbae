"""Retry consumer: charges retryable failed payments again (via the `payment-retry` queue), with backoff.

Thin: each SQS record's body is a `payment.failed` EventBridge event; the core (paystream.retries)
decides whether the next attempt is due, still needed and allowed. Backoff is the message's
visibility timeout: a message that arrives before its attempt is due, or while Stripe is unavailable,
is put back for the wait and reported as a batch item failure. Each attempt runs under Powertools
idempotency keyed by (transaction, attempt), so duplicated deliveries never make two Stripe calls.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.wiring import LazyClient, dynamodb_client, retry_service
from paystream.config import Settings
from paystream.payments import ProviderUnavailable
from paystream.retries import FailedAttempt, InvalidRetryMessage, NotDueYet, RetryService

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
# Every record waiting (not due, breaker open) is a normal answer here, reported like any partial failure.
processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(InvalidRetryMessage, NotDueYet, ProviderUnavailable),
                                   raise_on_entire_batch_failure=False)
settings = Settings.from_env(require=("idempotency_table", "stripe_api_key_secret_id", "payment_retry_queue_url"))
# Created on first use: only a retry that is not due yet puts its message back (cold starts).
sqs = LazyClient("sqs")
idempotency_config = IdempotencyConfig(event_key_jmespath="[transaction_id, attempt]", expires_after_seconds=24 * 3600)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb_client())


@functools.cache
def service() -> RetryService:
    return retry_service(settings)


@idempotent_function(data_keyword_argument="attempt", persistence_store=persistence, config=idempotency_config)
def make_attempt(attempt: dict) -> dict:
    failed = FailedAttempt(**attempt["failed"])
    outcome = service().retry(failed)
    return {"retried": outcome.retried, "attempt": outcome.attempt, "status": outcome.status, "reason": outcome.reason}


def _put_back(record: SQSRecord, seconds: float) -> int:
    delay = max(1, min(43200, math.ceil(seconds)))
    sqs.change_message_visibility(QueueUrl=settings.payment_retry_queue_url, ReceiptHandle=record.receipt_handle,
                                  VisibilityTimeout=delay)
    return delay


def retry(record: SQSRecord) -> None:
    try:
        failed = FailedAttempt.from_bus_event(json.loads(record.body))
    except ValueError as exc:  # InvalidRetryMessage and JSONDecodeError
        logger.error("unusable retry message: it will end in the DLQ", extra={"reason": str(exc)})
        raise
    logger.append_keys(transaction_id=failed.transaction_id, attempt=failed.attempt + 1)
    logger.set_correlation_id(failed.transaction_id)  # the payment's id correlates every log line
    wait = service().wait_seconds(failed)
    try:
        if wait > 0:
            raise NotDueYet(wait)
        outcome = make_attempt(attempt={"transaction_id": failed.transaction_id, "attempt": failed.attempt + 1,
                                        "failed": dataclasses.asdict(failed)})
    except NotDueYet as exc:
        delay = _put_back(record, exc.wait_seconds)
        logger.info("retry not due yet", extra={"retry_in_seconds": delay})
        raise
    except ProviderUnavailable as exc:
        delay = _put_back(record, service().policy.unavailable_backoff(int(record.attributes.approximate_receive_count)))
        logger.info("Stripe unavailable: retry postponed", extra={"reason": str(exc), "retry_in_seconds": delay})
        metrics.add_metric(name="PaymentRetriesPostponed", unit=MetricUnit.Count, value=1)
        raise
    logger.info("retry handled", extra=outcome)
    if not outcome["retried"]:
        metrics.add_metric(name="PaymentRetriesSkipped", unit=MetricUnit.Count, value=1)
    elif outcome["status"] == "succeeded":
        metrics.add_metric(name="PaymentRetriesSucceeded", unit=MetricUnit.Count, value=1)
    elif outcome["status"] == "failed":
        metrics.add_metric(name="PaymentRetriesFailed", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    idempotency_config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=retry, processor=processor, context=context)
