"""boto3 adapters for the outbox relay: the EventBridge bus, the Kinesis fraud stream, the relay marks.

The two publishers answer one result per input, in order, and turn a failed call (throttling that
outlasted boto3's own retries, a 5xx, a dropped connection) into a failed result for every input,
so the relay has a single failure path: retry the rejected ones, then report them.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


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
    """Sets `relayed_at` (and what the item was published as) on a published item."""

    def __init__(self, dynamodb_client: Any, table_name: str):
        self._client = dynamodb_client
        self._table_name = table_name

    def mark(self, key: dict[str, str], relayed_at: str, bus_event_id: str,
             stream_sequence_number: str | None = None) -> bool:
        assignments = ["relayed_at = :relayed_at", "bus_event_id = :bus_event_id"]
        values = {":relayed_at": {"S": relayed_at}, ":bus_event_id": {"S": bus_event_id}}
        if stream_sequence_number is not None:
            assignments.append("fraud_stream_sequence_number = :sequence_number")
            values[":sequence_number"] = {"S": stream_sequence_number}
        try:
            self._client.update_item(
                TableName=self._table_name,
                Key={name: {"S": value} for name, value in key.items()},
                UpdateExpression="SET " + ", ".join(assignments),
                # Never create a stray item holding only the mark.
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"].get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
