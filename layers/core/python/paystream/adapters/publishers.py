"""boto3 adapters for the outbox relay: the EventBridge bus, the Kinesis fraud stream, the relay marks.

The two publishers answer one result per input, in order, and turn a failed call (throttling that
outlasted boto3's own retries, a 5xx, a dropped connection) into a failed result for every input,
so the relay has a single failure path: retry the rejected ones, then report them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from paystream.adapters.batch_writes import MAX_BATCH_WRITE, batch_write
from paystream.relay import Mark


def _call_failed(count: int, exc: Exception) -> list[dict]:
    code = exc.response["Error"].get("Code", "ClientError") if isinstance(exc, ClientError) else type(exc).__name__
    return [{"ErrorCode": code, "ErrorMessage": str(exc)} for _ in range(count)]


class EventBusPublisher:
    def __init__(self, events_client: Any, bus_name: str):
        self._client = events_client
        self._bus_name = bus_name

    def put(self, entries: list[dict]) -> list[dict]:
        try:
            response = self._client.put_events(Entries=[{**entry, "EventBusName": self._bus_name} for entry in entries])
        except (BotoCoreError, ClientError) as exc:
            return _call_failed(len(entries), exc)
        return response["Entries"]


class FraudStreamPublisher:
    def __init__(self, kinesis_client: Any, stream_name: str):
        self._client = kinesis_client
        self._stream_name = stream_name

    def put(self, records: list[dict]) -> list[dict]:
        try:
            response = self._client.put_records(StreamName=self._stream_name, Records=records)
        except (BotoCoreError, ClientError) as exc:
            return _call_failed(len(records), exc)
        return response["Records"]


class RelayMarks:
    """Sets `relayed_at` (and what the event was published as) on published events, in as few requests as is safe.

    Each event is put again whole: the stream record's NEW_IMAGE plus the marks, 25 per BatchWriteItem (items
    left in UnprocessedItems are sent again with backoff; what is still left fails its marks, and a failed call
    fails its whole request). Safe without a condition, which BatchWriteItem cannot carry: an event item never
    changes after its conditional insert (`attribute_not_exists(pk)`) except by these marks, and nothing deletes
    one (no `expires_at`), so the image is the current item and the put neither loses a newer version nor brings
    back a deleted one. The put is a MODIFY, which the relay's stream filter (INSERTs only) never sends back to
    it. Webhook inbox items are not marked (paystream.relay): this adapter makes no request for them.
    """

    def __init__(self, dynamodb_client: Any, table_name: str, *, max_attempts: int = 5,
                 backoff_seconds: float = 0.05, sleep: Callable[[float], None] = time.sleep):
        self._client = dynamodb_client
        self._table_name = table_name
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep

    def mark(self, marks: list[Mark]) -> list[bool | Exception]:
        results: list[bool | Exception] = [True] * len(marks)
        for group in _batches(list(range(len(marks))), marks):
            for i, error in self._put_batch([marks[i] for i in group]).items():
                results[group[i]] = error
        return results

    def _put_batch(self, marks: list[Mark]) -> dict[int, Exception]:
        """Put the marked images (≤ 25, distinct keys); the errors by position of what could not be written."""
        position = {_key_of(mark.key): i for i, mark in enumerate(marks)}
        pending, error = batch_write(
            self._client, self._table_name,
            [{"PutRequest": {"Item": {**mark.image, **_mark_attributes(mark)}}} for mark in marks],
            max_attempts=self._max_attempts, backoff_seconds=self._backoff_seconds, sleep=self._sleep)
        return {position[_key_of(request["PutRequest"]["Item"])]: error for request in pending}


def _mark_attributes(mark: Mark) -> dict[str, dict]:
    attributes = {"relayed_at": {"S": mark.relayed_at}, "bus_event_id": {"S": mark.bus_event_id}}
    if mark.stream_sequence_number is not None:
        attributes["fraud_stream_sequence_number"] = {"S": mark.stream_sequence_number}
    return attributes


def _key_of(key: dict) -> tuple[str, str]:
    """A key as a plain tuple, from a Mark's key (plain strings) or an item (typed attributes)."""
    pk, sk = (value["S"] if isinstance(value, dict) else value for value in (key["pk"], key["sk"]))
    return pk, sk


def _batches(indices: list[int], marks: list[Mark]) -> list[list[int]]:
    """Groups of ≤ 25 marks with distinct keys (BatchWriteItem refuses a request naming one key twice)."""
    groups: list[list[int]] = []
    keys: set[tuple[str, str]] = set()
    for i in indices:
        key = _key_of(marks[i].key)
        if not groups or len(groups[-1]) == MAX_BATCH_WRITE or key in keys:
            groups.append([])
            keys = set()
        groups[-1].append(i)
        keys.add(key)
    return groups
