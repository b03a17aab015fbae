"""fraud_scorer — score each payment the Kinesis fraud stream brings (paystream.fraud, docs/fraud.md).

The whole batch is scored first (`score_batch`: one batched read of every profile and projection, then one
transaction for the whole batch — split at 100 actions, at record boundaries — writing the profiles and each
payment's `fraud.scored`; a cancelled one falls back to one transaction per record), then Powertools' batch
processor reports each record from its outcome: a malformed record or a retryable store failure is a batch
item failure, so Lambda retries from it (bisecting) and, once the mapping's retry limit or record age is
reached, sends it to the on-failure queue. Records already scored come back as duplicates and are not
written again.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from paystream.adapters.fraud_profiles import FraudConfigSource, projection_key
from paystream.adapters.wiring import fraud_profile_store
from paystream.config import Settings
from paystream.fraud import FraudConfig, FraudRecord, InMemoryIpCountries, RecordOutcome, score_batch

logger = Logger()
# No Powertools Tracer: Lambda's active tracing records each invocation, and the X-Ray SDK the Tracer
# loads (it builds two botocore X-Ray clients at import) costs about 0.5 of the cold-start yardstick
# (docs/payments-core.md, "Observability and cold start").
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
# Every record failing (e.g. a batch of one malformed record) is reported like any partial failure.
processor = BatchProcessor(event_type=EventType.KinesisDataStreams, raise_on_entire_batch_failure=False)
settings = Settings.from_env(require=("fraud_profiles_table", "fraud_config_parameter"))
config_source = FraudConfigSource(settings.fraud_config_parameter, max_age=settings.fraud_config_cache_seconds,
                                  on_invalid=lambda message: logger.error(message))
config_source.load()  # a bad document fails the cold start with one message naming every bad field


_ip_countries: tuple[FraudConfig, InMemoryIpCountries] | None = None


def ip_countries_for(config: FraudConfig) -> InMemoryIpCountries:
    """The IP → country lookup of the configuration's `ip_countries`, built once per configuration: the
    config source hands back the same object until a changed document applies, and parsing up to
    MAX_IP_COUNTRIES networks per batch would be wasted work."""
    global _ip_countries
    if _ip_countries is None or _ip_countries[0] is not config:
        _ip_countries = (config, InMemoryIpCountries(config.ip_countries))
    return _ip_countries[1]


class FraudRecordFailed(Exception):
    """The record was not applied; the message says why (malformed: it will reach the on-failure queue)."""


def _decoded(record: dict) -> FraudRecord:
    data: bytes | str = record["kinesis"]["data"]
    try:
        data = base64.b64decode(data, validate=True)
    except ValueError:
        pass  # Kinesis always sends base64; anything else is malformed and parse_payment says so
    return FraudRecord(record["kinesis"]["sequenceNumber"], data)


def score_records(event: dict) -> dict[str, RecordOutcome]:
    config = config_source.current()
    records = [_decoded(record) for record in event.get("Records") or []]
    result = score_batch(records, fraud_profile_store(settings, config), config, datetime.now(timezone.utc),
                         ip_countries=ip_countries_for(config),
                         related_keys=lambda payment: [projection_key(payment.transaction_id)])
    review_threshold = config.thresholds.review
    scored = result.by_status("scored")
    metrics.add_metric(name="RecordsScored", unit=MetricUnit.Count, value=len(scored))
    metrics.add_metric(name="PaymentsFlagged", unit=MetricUnit.Count,
                       value=sum(1 for outcome in scored if outcome.score.risk_score >= review_threshold))
    metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=len(result.failed_record_ids()))
    return {outcome.record_id: outcome for outcome in result.outcomes}


def report(outcome: RecordOutcome) -> None:
    transaction_id = outcome.payment.transaction_id if outcome.payment else None
    logger.append_keys(transaction_id=transaction_id)
    logger.set_correlation_id(transaction_id)  # the payment's id correlates every log line
    try:
        if outcome.failed:
            logger.warning("fraud record not applied", extra={"error": outcome.error, "retryable": outcome.retryable})
            raise FraudRecordFailed(outcome.error)
        if outcome.score is not None:
            logger.info("payment scored", extra={
                "status": outcome.status, "risk_score": outcome.score.risk_score,
                "risk_factors": [factor.code for factor in outcome.score.risk_factors]})
    finally:
        logger.remove_keys(["transaction_id"])


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    outcomes = score_records(event)

    def record_handler(record: KinesisStreamRecord) -> None:
        report(outcomes[record.kinesis.sequence_number])

    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
