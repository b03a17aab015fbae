"""outbox_relay — publish the events the transactions table's stream brings (see paystream.relay).

The raw stream event is handled here and `{"batchItemFailures": [...]}` built from the relay's outcome,
rather than through Powertools' BatchProcessor: that calls a handler once per record, while the relay
needs the whole batch at once to send PutEvents 10 entries at a time and to stop at the first failure
(everything after it is re-sent by Lambda anyway, which keeps each payment's events in order).
"""

from __future__ import annotations

import os

import boto3
from aws_lambda_powertools import Logger

from paystream.adapters.publishers import EventBusPublisher, FraudStreamPublisher, RelayMarks
from paystream.relay import OutboxRelay

REQUIRED_ENVIRONMENT = ("EVENT_BUS_NAME", "FRAUD_STREAM_NAME", "TRANSACTIONS_TABLE")

missing = [name for name in REQUIRED_ENVIRONMENT if not os.environ.get(name)]
if missing:
    raise RuntimeError(f"outbox_relay is missing the environment variable(s) {', '.join(missing)}: "
                       "set them in the function's configuration")

logger = Logger()
# No Powertools Tracer: Lambda's active tracing records each invocation, and the X-Ray SDK the Tracer
# loads (it builds two botocore X-Ray clients at import) costs about 0.5 of the cold-start yardstick
# (docs/payments-core.md, "Observability and cold start").

relay = OutboxRelay(
    EventBusPublisher(boto3.client("events"), os.environ["EVENT_BUS_NAME"]),
    FraudStreamPublisher(boto3.client("kinesis"), os.environ["FRAUD_STREAM_NAME"]),
    RelayMarks(boto3.client("dynamodb"), os.environ["TRANSACTIONS_TABLE"]),
    logger=logger,
)


@logger.inject_lambda_context
def handler(event, context):
    records = event.get("Records") or []
    outcome = relay.relay(records)
    logger.info("batch relayed", extra={"records": len(records), "published": len(outcome.published),
                                        "ignored": outcome.ignored, "failed": len(outcome.failures)})
    return {"batchItemFailures": outcome.batch_item_failures()}
