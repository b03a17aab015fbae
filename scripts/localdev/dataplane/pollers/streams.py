"""Kinesis and DynamoDB Streams event source mappings: one ordered consumer thread per shard.

Each shard is read in order; a batch is retried until it succeeds, its records are too old, its retry
attempts are used up or (with ReportBatchItemFailures) part of it succeeded. Records that fail for
good are described to the mapping's on-failure destination (SQS queue or SNS topic) and then skipped.
A child shard is read only after its parent(s) are read to the end.

Checkpoints (the sequence number of the last record processed, filtered, or given up, per shard)
live in memory in the PollerManager: a mapping restarted by `sync` (changed configuration) resumes
after them, a restarted data plane starts again from the mapping's StartingPosition.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from localdev.dataplane.filters import dynamodb_view, kinesis_view
from localdev.dataplane.pollers.base import Poller, arn_parts, parse_batch_item_failures, to_json_bytes
from localdev.dataplane.types import InvokeResult

IDLE_WAIT_SECONDS = 0.3  # per shard, when the shard has no new records
SHARD_REFRESH_SECONDS = 5.0  # how often the shard list is re-read (resharding, new DynamoDB shards)
RETRY_DELAY_SECONDS = (0.1, 2.0)  # before retrying a failed batch: doubling up to the cap
_ITERATOR_GONE = {"ExpiredIteratorException", "TrimmedDataAccessException"}
# After this many empty reads in a row a shard's iterator is exchanged for a fresh one after the last
# record read. AWS iterators simply expire after 15 minutes; moto's can go stale under concurrent
# writes and then return nothing while the shard keeps growing (seen in the e2e suite).
REFRESH_ITERATOR_AFTER_EMPTY_READS = 10


@dataclass
class Entry:
    """One record read from a shard, with what the consumer needs to order, age and filter it."""

    sequence: str
    arrival: float  # epoch seconds
    record: dict  # as Lambda delivers it
    matched: bool

    @property
    def position(self) -> int:
        return int(self.sequence)


@dataclass
class Shard:
    shard_id: str
    parents: list[str]
    ending_sequence: str | None  # set once the shard is closed

    @classmethod
    def from_api(cls, shard: dict, adjacent_parent: str | None = None) -> "Shard":
        parents = [p for p in (shard.get("ParentShardId"), adjacent_parent) if p]
        return cls(shard["ShardId"], parents, shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber"))


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, dt.datetime) else float(value)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class KinesisSource:
    batch_info_key = "KinesisBatchInfo"
    max_limit = 10000

    def __init__(self, poller: "StreamPoller"):
        self.poller = poller
        self.client = poller.clients("kinesis")
        self.stream_name = arn_parts(poller.source_arn)[2].split("/", 1)[1]

    def shards(self) -> list[Shard]:
        shards, kwargs = [], {"StreamName": self.stream_name}
        while True:
            page = self.client.list_shards(**kwargs)
            shards += [Shard.from_api(s, s.get("AdjacentParentShardId")) for s in page["Shards"]]
            if not page.get("NextToken"):
                return shards
            kwargs = {"NextToken": page["NextToken"]}

    def iterator(self, shard_id: str, kind: str, sequence: str | None = None, timestamp: Any = None) -> str:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["StartingSequenceNumber"] = sequence
        if timestamp is not None:
            kwargs["Timestamp"] = timestamp
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict], str | None]:
        page = self.client.get_records(ShardIterator=iterator, Limit=min(limit, self.max_limit))
        return page["Records"], page.get("NextShardIterator")

    @staticmethod
    def sequence(raw: dict) -> str:
        return raw["SequenceNumber"]

    def entry(self, raw: dict, shard_id: str) -> Entry:
        arrival = _epoch(raw["ApproximateArrivalTimestamp"])
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": raw["SequenceNumber"],
                "data": base64.b64encode(raw["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": round(arrival, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{raw['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.poller.role_arn,
            "awsRegion": self.poller.region,
            "eventSourceARN": self.poller.source_arn,
        }
        return Entry(raw["SequenceNumber"], arrival, record, self.poller.filters.matches(kinesis_view(record)))


class DynamoDBSource:
    batch_info_key = "DDBStreamBatchInfo"
    max_limit = 1000

    def __init__(self, poller: "StreamPoller"):
        self.poller = poller
        self.client = poller.clients("dynamodbstreams")

    def shards(self) -> list[Shard]:
        shards, kwargs = [], {"StreamArn": self.poller.source_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            shards += [Shard.from_api(s) for s in description["Shards"]]
            if not description.get("LastEvaluatedShardId"):
                return shards
            kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]

    def iterator(self, shard_id: str, kind: str, sequence: str | None = None, timestamp: Any = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.poller.source_arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict], str | None]:
        page = self.client.get_records(ShardIterator=iterator, Limit=min(limit, self.max_limit))
        return page["Records"], page.get("NextShardIterator")

    @staticmethod
    def sequence(raw: dict) -> str:
        return raw["dynamodb"]["SequenceNumber"]

    def entry(self, raw: dict, shard_id: str) -> Entry:
        change = dict(raw["dynamodb"])
        arrival = _epoch(change["ApproximateCreationDateTime"])
        change["ApproximateCreationDateTime"] = int(arrival)
        record = {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": self.poller.region,
            "dynamodb": change,
            "eventSourceARN": self.poller.source_arn,
        }
        if "userIdentity" in raw:
            record["userIdentity"] = raw["userIdentity"]
        # Filters see the record as JSON, with binary attributes base64-encoded like the event.
        view = dynamodb_view(json.loads(to_json_bytes(record)))
        return Entry(change["SequenceNumber"], arrival, record, self.poller.filters.matches(view))


class StreamPoller(Poller):
    """The mapping's thread discovers shards and starts a ShardConsumer thread for each ready one."""

    default_batch_size = 100

    def __init__(self, mapping: dict, clients, invoke, clock=time.time, checkpoints: dict | None = None):
        super().__init__(mapping, clients, invoke, clock)
        self.kind = "kinesis" if self.source_arn.startswith("arn:aws:kinesis:") else "dynamodb"
        self.checkpoints = checkpoints if checkpoints is not None else {}  # shard id -> sequence number
        self.bisect = bool(mapping.get("BisectBatchOnFunctionError"))
        self.max_retries = _int_or(mapping.get("MaximumRetryAttempts"), -1)
        self.max_age = _int_or(mapping.get("MaximumRecordAgeInSeconds"), -1)
        self.on_failure = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        self.starting_position = mapping.get("StartingPosition") or "TRIM_HORIZON"
        self.starting_timestamp = mapping.get("StartingPositionTimestamp")
        self.role_arn = ""
        self.consumers: dict[str, ShardConsumer] = {}
        self._wake = threading.Event()

    def signal_stop(self) -> None:
        super().signal_stop()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        self.source = KinesisSource(self) if self.kind == "kinesis" else DynamoDBSource(self)
        if self.kind == "kinesis":
            try:  # Lambda names the execution role in Kinesis records
                self.role_arn = self.clients("lambda").get_function_configuration(FunctionName=self.function_arn)["Role"]
            except Exception as exc:  # noqa: BLE001 - cosmetic; never block polling on it
                self.error(f"could not read the function's role for invokeIdentityArn: {exc}")
        initial: set[str] | None = None
        errors = 0
        while not self.stopped:
            try:
                shards = self.source.shards()
                errors = 0
            except Exception as exc:  # noqa: BLE001
                self.error(f"listing shards: {type(exc).__name__}: {exc}")
                self.wait(self.backoff(errors))
                errors += 1
                continue
            if initial is None:
                initial = {shard.shard_id for shard in shards}
            known = {shard.shard_id for shard in shards}
            for shard in shards:
                if shard.shard_id in self.consumers:
                    self.consumers[shard.shard_id].ending_sequence = shard.ending_sequence
                    continue
                if any(p in known and not (p in self.consumers and self.consumers[p].finished) for p in shard.parents):
                    continue  # children are read after their parents, so a key's records stay in order
                # Shards that appear after the mapping started are read from their beginning.
                start = self.starting_position if shard.shard_id in initial else "TRIM_HORIZON"
                consumer = ShardConsumer(self, shard.shard_id, start, shard.ending_sequence)
                self.consumers[shard.shard_id] = consumer
                self.spawn(consumer.run, f"poller-{self.kind}-{self.uuid[:8]}-{shard.shard_id[-8:]}")
            self._wake.wait(SHARD_REFRESH_SECONDS)
            self._wake.clear()

    def retry_delay(self, attempts: int) -> float:
        low, high = RETRY_DELAY_SECONDS
        return min(high, low * 2 ** min(attempts - 1, 10))

    def status(self) -> dict:
        status = super().status()
        status["shards"] = [c.status() for c in list(self.consumers.values())]
        return status

    def send_to_destination(self, document: dict) -> None:
        body = json.dumps(document)
        region, account, resource = arn_parts(self.on_failure)
        if self.on_failure.startswith("arn:aws:sqs:"):
            sqs = self.clients("sqs")
            url = sqs.get_queue_url(QueueName=resource, QueueOwnerAWSAccountId=account)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif self.on_failure.startswith("arn:aws:sns:"):
            self.clients("sns").publish(TopicArn=self.on_failure, Message=body)
        else:
            raise ValueError(f"unsupported on-failure destination {self.on_failure!r}: use an SQS queue or SNS topic ARN")


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


class ShardConsumer:
    def __init__(self, poller: StreamPoller, shard_id: str, starting_position: str, ending_sequence: str | None):
        self.poller = poller
        self.shard_id = shard_id
        self.starting_position = starting_position
        self.ending_sequence = ending_sequence
        self.buffer: list[Entry] = []  # read but not yet checkpointed, in order
        self.iterator: str | None = None
        self.ended = False  # the shard is closed and read to its end
        self.finished = False  # ... and everything read was processed
        self.state = "starting"
        self.last_read: str | None = poller.checkpoints.get(shard_id)
        self.empty_reads = 0

    @property
    def checkpoint(self) -> str | None:
        return self.poller.checkpoints.get(self.shard_id)

    def status(self) -> dict:
        return {"shard_id": self.shard_id, "state": self.state, "checkpoint": self.checkpoint, "buffered": len(self.buffer)}

    def run(self) -> None:
        poller = self.poller
        errors = 0
        while not poller.stopped:
            try:
                if self.iterator is None and not self.ended:
                    self.iterator = self._first_iterator()
                    self.state = "reading"
                batch = self._next_batch()
                errors = 0
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _ITERATOR_GONE:
                    self.iterator = None  # re-acquire after the last record read
                    continue
                poller.error(f"shard {self.shard_id}: {exc}")
                poller.wait(poller.backoff(errors))
                errors += 1
                continue
            except Exception as exc:  # noqa: BLE001 - transient emulator errors: back off and carry on
                poller.error(f"shard {self.shard_id}: {type(exc).__name__}: {exc}")
                poller.wait(poller.backoff(errors))
                errors += 1
                continue
            if batch is None:
                self.finished = True
                self.state = "finished"
                poller.wake()  # its children may start now
                return
            if not batch:
                self.empty_reads += 1
                if self.empty_reads >= REFRESH_ITERATOR_AFTER_EMPTY_READS and self.last_read is not None:
                    # Re-acquired AFTER_SEQUENCE_NUMBER of the last record read: nothing is skipped or repeated.
                    self.iterator, self.empty_reads = None, 0
                poller.wait(IDLE_WAIT_SECONDS)
                continue
            self.empty_reads = 0
            self._deliver(batch)

    def _first_iterator(self) -> str:
        source = self.poller.source
        if self.last_read is not None:
            return source.iterator(self.shard_id, "AFTER_SEQUENCE_NUMBER", sequence=self.last_read)
        if self.starting_position == "AT_TIMESTAMP":
            return source.iterator(self.shard_id, "AT_TIMESTAMP", timestamp=self.poller.starting_timestamp)
        return source.iterator(self.shard_id, self.starting_position)

    def _read_to_end(self, raws: list[dict]) -> bool:
        """A closed shard read up to its EndingSequenceNumber. AWS says so with a null NextShardIterator;
        moto never does, so without this the children of a split shard would never be read."""
        if self.ending_sequence is None:
            return False
        last = raws[-1] if raws else None
        last_sequence = self.poller.source.sequence(last) if last else self.last_read
        if last_sequence is None:
            return not raws  # nothing was ever in it (or after the starting position)
        return int(last_sequence) >= int(self.ending_sequence)

    def _matched_buffered(self) -> int:
        return sum(1 for e in self.buffer if e.matched)

    def _next_batch(self) -> list[Entry] | None:
        """The next batch from the head of the buffer, reading until full or the batching window ends.

        [] when there is nothing to do yet, None when the shard is finished.
        """
        poller = self.poller
        deadline = time.monotonic() + poller.window if self.buffer else None
        while not poller.stopped and not self.ended and self._matched_buffered() < poller.batch_size:
            raws, next_iterator = poller.source.get_records(self.iterator, poller.batch_size - self._matched_buffered())
            self.iterator = next_iterator
            self.ended = next_iterator is None or self._read_to_end(raws)
            for raw in raws:
                entry = poller.source.entry(raw, self.shard_id)
                self.buffer.append(entry)
                self.last_read = entry.sequence
                if not entry.matched:
                    poller.count_filtered(1)
            if not self.buffer:
                break
            if deadline is None:
                deadline = time.monotonic() + poller.window
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not raws:
                poller.wait(min(IDLE_WAIT_SECONDS, remaining))
        if poller.stopped or not self.buffer:
            return None if self.ended and not self.buffer else []
        batch, matched = [], 0
        for entry in self.buffer:
            if entry.matched and matched == poller.batch_size:
                break
            batch.append(entry)
            matched += entry.matched
        return batch

    # -- processing one batch ---------------------------------------------------------------------
    def _deliver(self, entries: list[Entry]) -> bool:
        """Process `entries` until each is done (succeeded, filtered or given up); False if stopped first."""
        poller = self.poller
        attempts = 0
        result: InvokeResult | None = None
        while True:
            entries = self._drop_expired(entries, attempts, result)
            if entries is None:
                return False
            if not entries:
                return True
            records = [e.record for e in entries if e.matched]
            if not records:
                self._commit(entries)
                return True
            result = poller.invoke(records)
            attempts += 1
            failed_at = self._first_failure(entries, result)
            if failed_at is None:
                self._commit(entries)
                return True
            if failed_at > 0:  # partial success: checkpoint up to the record before the first failure
                self._commit(entries[:failed_at])
                entries = entries[failed_at:]
            elif poller.bisect and len(records) > 1:
                # Split on function error; the halves start their own retry count, as Lambda's.
                half = _index_of_nth_matched(entries, len(records) // 2)
                return self._deliver(entries[:half]) and self._deliver(entries[half:])
            if 0 <= poller.max_retries < attempts:
                return self._give_up(entries, "RetryAttemptsExhausted", attempts, result)
            if poller.wait(poller.retry_delay(attempts)):
                return False

    def _first_failure(self, entries: list[Entry], result: InvokeResult) -> int | None:
        """Index of the first record to retry, or None when the whole batch succeeded."""
        if not result.ok:
            return 0
        if not self.poller.report_item_failures:
            return None
        known = {e.sequence for e in entries if e.matched}
        failed = parse_batch_item_failures(result.payload, known)
        if failed is None:
            self.poller.error("invalid batchItemFailures response; the whole batch is retried: "
                              + result.payload[:300].decode("utf-8", "replace"))
            return 0
        if not failed:
            return None
        return min(i for i, e in enumerate(entries) if e.sequence in failed)

    def _drop_expired(self, entries: list[Entry], attempts: int, result: InvokeResult | None) -> list[Entry] | None:
        poller = self.poller
        if poller.max_age < 0:
            return entries
        now = poller.clock()
        keep_from = next((i for i, e in enumerate(entries) if now - e.arrival <= poller.max_age), len(entries))
        if keep_from == 0:
            return entries
        if not self._give_up(entries[:keep_from], "RecordAgeExceeded", attempts, result):
            return None
        return entries[keep_from:]

    def _give_up(self, entries: list[Entry], condition: str, attempts: int, result: InvokeResult | None) -> bool:
        """Describe the records to the on-failure destination (if any), then move past them."""
        poller = self.poller
        if poller.on_failure:
            document = self._failure_document(entries, condition, attempts, result)
            errors = 0
            while True:
                try:
                    poller.send_to_destination(document)
                    break
                except Exception as exc:  # noqa: BLE001 - keep the records until the destination has them
                    poller.error(f"on-failure destination {poller.on_failure}: {exc}")
                    if poller.wait(poller.backoff(errors)):
                        return False
                    errors += 1
        else:
            poller.error(f"{condition}: dropped records {entries[0].sequence}..{entries[-1].sequence} of shard "
                         f"{self.shard_id} (no on-failure destination)")
        self._commit(entries)
        return True

    def _failure_document(self, entries: list[Entry], condition: str, attempts: int, result: InvokeResult | None) -> dict:
        poller = self.poller
        document: dict[str, Any] = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": poller.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
        }
        if result is not None:
            response = {"statusCode": 200, "executedVersion": "$LATEST"}
            if not result.ok:
                response["functionError"] = "Unhandled"
            document["responseContext"] = response
        document["version"] = "1.0"
        document["timestamp"] = _iso(time.time())
        document[poller.source.batch_info_key] = {
            "shardId": self.shard_id,
            "startSequenceNumber": entries[0].sequence,
            "endSequenceNumber": entries[-1].sequence,
            "approximateArrivalOfFirstRecord": _iso(entries[0].arrival),
            "approximateArrivalOfLastRecord": _iso(entries[-1].arrival),
            "batchSize": len(entries),
            "streamArn": poller.source_arn,
        }
        return document

    def _commit(self, entries: list[Entry]) -> None:
        last = entries[-1]
        self.poller.checkpoints[self.shard_id] = last.sequence
        self.buffer = [e for e in self.buffer if e.position > last.position]


def _index_of_nth_matched(entries: list[Entry], n: int) -> int:
    """Index just after the n-th matched entry: where to split so each half has matched records."""
    seen = 0
    for i, entry in enumerate(entries):
        seen += entry.matched
        if seen == n:
            return i + 1
    return len(entries)
