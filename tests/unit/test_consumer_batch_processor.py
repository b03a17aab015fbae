"""paystream.adapters.batch.ConsumerBatchProcessor: a record failing for an unexpected reason is logged at ERROR
with its id and the exception; the exception types the consumer logs itself are not logged again; partial batch
responses are Powertools' own."""

from __future__ import annotations

import io
import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import EventType, process_partial_response

from paystream.adapters.batch import FAILURE_MESSAGE, ConsumerBatchProcessor


class Expected(ValueError):
    pass


def _sqs(message_id: str, body: str) -> dict:
    return {"messageId": message_id, "receiptHandle": "rh", "body": body, "attributes": {
        "ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q", "awsRegion": "us-east-1"}


def test_unexpected_failures_are_logged_with_the_record_id_and_expected_ones_are_not():
    stream = io.StringIO()
    logger = Logger(service="consumer-test", logger_handler=__import__("logging").StreamHandler(stream))
    processor = ConsumerBatchProcessor(EventType.SQS, logger, logged_by_handler=(Expected,),
                                       raise_on_entire_batch_failure=False)

    def handle(record):
        logger.append_keys(event_id=f"evt-{record.message_id}")
        if record.body == "boom":
            raise RuntimeError("table paystream-transactions-v2 not found")
        if record.body == "expected":
            raise Expected("logged by the handler")

    event = {"Records": [_sqs("m1", "ok"), _sqs("m2", "boom"), _sqs("m3", "expected")]}
    result = process_partial_response(event=event, record_handler=handle, processor=processor, context=None)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["m2", "m3"]
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    errors = [log for log in logs if log["level"] == "ERROR"]
    assert len(errors) == 1
    [error] = errors
    assert error["message"] == FAILURE_MESSAGE and error["record_id"] == "m2" and error["event_id"] == "evt-m2"
    assert "RuntimeError: table paystream-transactions-v2 not found" in error["exception"]
