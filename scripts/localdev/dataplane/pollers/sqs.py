"""SQS event source mapping: Lambda's poller for a standard or FIFO queue.

One thread per mapping receives, invokes and deletes, so batches of one mapping run one at a time
(ScalingConfig.MaximumConcurrency is accepted and has nothing to limit). Failed messages are not
touched: they come back after the queue's visibility timeout and reach its DLQ through the queue's
own redrive policy, as on AWS.
"""

from __future__ import annotations

import base64
import math
import time

from localdev.dataplane.filters import sqs_view
from localdev.dataplane.pollers.base import Poller, arn_parts, parse_batch_item_failures

# Long-poll length while waiting for the first message. Short enough that `stop()` returns within it
# (a blocked ReceiveMessage cannot be interrupted), long enough that an idle mapping costs ~1 request/s.
IDLE_WAIT_SECONDS = 1
MAX_RECEIVE = 10  # ReceiveMessage returns at most 10 messages per call


def lambda_message_attributes(attributes: dict) -> dict:
    """SQS MessageAttributes in the camelCase shape Lambda delivers."""
    shaped = {}
    for name, value in attributes.items():
        item = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            item["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
        shaped[name] = item
    return shaped


def lambda_sqs_record(message: dict, queue_arn: str, region: str) -> dict:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class SqsPoller(Poller):
    kind = "sqs"

    def run(self) -> None:
        sqs = self.clients("sqs")
        queue_url = None
        errors = 0
        while not self.stopped:
            try:
                if queue_url is None:
                    _, account, name = arn_parts(self.source_arn)
                    queue_url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
                messages = self._gather(sqs, queue_url)
                if messages:
                    self._handle(sqs, queue_url, messages)
                errors = 0
            except Exception as exc:  # noqa: BLE001 - emulator hiccups must not kill the poller
                self.error(f"{type(exc).__name__}: {exc}")
                queue_url = None  # the queue may have been recreated
                self.wait(self.backoff(errors))
                errors += 1

    def _gather(self, sqs, queue_url: str) -> list[dict]:
        """Receive until the batch is full or the batching window (started by the first message) ends."""
        messages: list[dict] = []
        deadline: float | None = None
        while len(messages) < self.batch_size and not self.stopped:
            if deadline is None:
                wait_seconds = IDLE_WAIT_SECONDS
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                wait_seconds = min(20, math.ceil(remaining))
            response = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(MAX_RECEIVE, self.batch_size - len(messages)),
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            if not received:
                continue
            messages.extend(received)
            if deadline is None:
                if self.window <= 0:
                    break
                deadline = time.monotonic() + self.window
        return messages

    def _handle(self, sqs, queue_url: str, messages: list[dict]) -> None:
        records = [lambda_sqs_record(m, self.source_arn, self.region) for m in messages]
        matched: list[dict] = []
        done: list[dict] = []  # Lambda deletes messages its filters reject: consumed without an invocation
        for record in records:
            (matched if self.filters.matches(sqs_view(record)) else done).append(record)
        self.count_filtered(len(done))
        if matched:
            result = self.invoke(matched)
            if not result.ok:
                pass  # leave the batch to the visibility timeout and redrive policy
            elif not self.report_item_failures:
                done += matched
            else:
                failed = parse_batch_item_failures(result.payload, {r["messageId"] for r in matched})
                if failed is None:
                    self.error("invalid batchItemFailures response; the whole batch is retried: "
                               + result.payload[:300].decode("utf-8", "replace"))
                else:
                    done += [r for r in matched if r["messageId"] not in failed]
        self._delete(sqs, queue_url, done)

    def _delete(self, sqs, queue_url: str, records: list[dict]) -> None:
        for start in range(0, len(records), MAX_RECEIVE):
            chunk = records[start:start + MAX_RECEIVE]
            response = sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                self.error(f"DeleteMessageBatch failed: {failure}")
