"""Powertools' BatchProcessor for the platform's queue consumers, with failures that never go unseen.

Powertools reports a failed record to Lambda (partial batch response) and logs it only at debug level, so a
record failing for an unexpected reason — a table missing after a bad deploy, throttling that outlasted the
SDK's retries, a bug — used to leave nothing in the log but the invocation's START/END lines until it
reached the DLQ. `ConsumerBatchProcessor` logs each such failure at ERROR with the exception and the
record's id (the consumer's appended keys — event id, transaction id — are still on the logger when the
record handler raises). Exceptions a consumer raises on purpose, after logging them itself (an unusable
message, "not due yet", "Stripe unavailable: later"), are passed as `logged_by_handler` and not repeated.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

FAILURE_MESSAGE = "record failed: it is delivered again, and after the queue's maxReceiveCount it lands in its DLQ"


def record_id(record: Any) -> str | None:
    """The SQS message id (or the stream record's sequence number) of a record as the processor holds it."""
    for path in (("message_id",), ("kinesis", "sequence_number"), ("dynamodb", "sequence_number")):
        value: Any = record
        for name in path:
            value = getattr(value, name, None)
        if value is not None:
            return str(value)
    return None


class ConsumerBatchProcessor(BatchProcessor):
    def __init__(self, event_type: EventType, logger: Any, logged_by_handler: tuple[type[BaseException], ...] = (),
                 **kwargs: Any):
        super().__init__(event_type=event_type, **kwargs)
        self._log = logger
        self._logged_by_handler = logged_by_handler

    def failure_handler(self, record: Any, exception: Any):
        error_type = exception[0]
        if error_type is not None and not issubclass(error_type, self._logged_by_handler):
            self._log.error(FAILURE_MESSAGE, exc_info=exception, extra={"record_id": record_id(record)})
        return super().failure_handler(record, exception)
