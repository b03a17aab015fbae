"""capture_payment — risk-gated capture (CAPTURE_MODE=risk_gated, paystream.review, docs/fraud.md).

Two bus rules feed its `payment-captures` queue, one per fact a capture needs: `fraud.scored` below the
review threshold, and `payment.processing` with `stripe_status: requires_capture` (Stripe authorized the
manual-capture PaymentIntent). Whichever comes second finds both facts and captures; a payment in review,
without a score, or captured automatically is left as it is. Thin: parse, call the core, count.
"""

from __future__ import annotations

import json
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from paystream.adapters.batch import ConsumerBatchProcessor
from paystream.adapters.fraud_profiles import FraudConfigSource
from paystream.adapters.wiring import fraud_review_service
from paystream.config import Settings
from paystream.review import Thresholds

logger = Logger()
# No Powertools Tracer: Lambda's active tracing records each invocation, and the X-Ray SDK the Tracer
# loads (it builds two botocore X-Ray clients at import) costs about 0.5 of the cold-start yardstick
# (docs/payments-core.md, "Observability and cold start").
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
settings = Settings.from_env(require=("stripe_api_key_secret_id", "fraud_config_parameter"))
config_source = FraudConfigSource(settings.fraud_config_parameter, max_age=settings.fraud_config_cache_seconds,
                                  on_invalid=lambda message: logger.error(message))
config_source.load()


class UnusableCaptureMessage(ValueError):
    """Not a bus event naming a payment (it will end in the DLQ)."""


# A batch where every record fails (e.g. one unusable message) is reported like any partial failure.
processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(UnusableCaptureMessage,),
                                   raise_on_entire_batch_failure=False)


def transaction_id_of(body: str) -> str:
    try:
        event = json.loads(body)
        transaction_id = event["detail"]["transaction_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnusableCaptureMessage(f"expected an EventBridge event with detail.transaction_id ({exc!r})") from exc
    if not isinstance(transaction_id, str) or not transaction_id:
        raise UnusableCaptureMessage("detail.transaction_id must be a non-empty string")
    return transaction_id


def capture(record: SQSRecord) -> None:
    try:
        transaction_id = transaction_id_of(record.body)
    except UnusableCaptureMessage as exc:
        logger.error("unusable capture message: it will end in the DLQ", extra={"reason": str(exc)})
        raise
    logger.append_keys(transaction_id=transaction_id)
    logger.set_correlation_id(transaction_id)  # the payment's id correlates every log line
    thresholds = config_source.current().thresholds
    outcome = fraud_review_service(settings, Thresholds(review=thresholds.review, block=thresholds.block)) \
        .capture_if_cleared(transaction_id)
    logger.info("capture check", extra={"action": outcome.action, "status": outcome.projection.status.value,
                                        "risk_score": outcome.projection.risk_score})
    if outcome.action == "captured":
        metrics.add_metric(name="PaymentsCaptured", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event, context):
    return process_partial_response(event=event, record_handler=capture, processor=processor, context=context)
