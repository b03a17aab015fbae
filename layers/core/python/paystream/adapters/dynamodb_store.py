"""The transactions table for paystream.store, over the low-level boto3 DynamoDB client.

The low-level client (not the resource API) keeps cold starts small and gives TransactWriteItems'
cancellation reasons directly. Numbers come back as int when integral (amounts, sequences), else float.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any, Callable, Sequence

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from paystream.store import ConditionalPut, EventStoreError, TransactionCancelled


class _Deserializer(TypeDeserializer):
    def _deserialize_n(self, value: str) -> int | float:
        number = super()._deserialize_n(value)
        return int(number) if number == number.to_integral_value() else float(number)


MAX_BATCH_GET = 100  # BatchGetItem's limit of keys per request
_serializer = TypeSerializer()
_deserializer = _Deserializer()


def _numbers_as_decimal(value: Any) -> Any:
    # TypeSerializer refuses floats (they may be inexact); str() keeps the float's shortest repr.
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _numbers_as_decimal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_as_decimal(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_numbers_as_decimal(v)) for k, v in item.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class DynamoDBTransactionsTable:
    def __init__(self, client: Any, table_name: str, *, max_read_attempts: int = 5,
                 backoff_seconds: float = 0.05, sleep: Callable[[float], None] = time.sleep):
        self._client = client  # boto3.client("dynamodb")
        self._table_name = table_name
        self._max_read_attempts = max_read_attempts  # BatchGetItem calls per 100 keys (unprocessed keys)
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep

    def transact_put(self, puts: Sequence[ConditionalPut], token: str | None = None) -> None:
        items = []
        for put in puts:
            request: dict[str, Any] = {
                "TableName": self._table_name,
                "Item": serialize(put.item),
                "ConditionExpression": put.condition,
            }
            if put.values:
                request["ExpressionAttributeValues"] = serialize(put.values)
            items.append({"Put": request})
        # The token makes an SDK retry of a write that did succeed a no-op instead of a conflict.
        extra = {"ClientRequestToken": token} if token else {}
        try:
            self._client.transact_write_items(TransactItems=items, **extra)
        except self._client.exceptions.TransactionCanceledException as exc:
            reasons = [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]
            raise TransactionCancelled(reasons) from exc
        except (ClientError, BotoCoreError) as exc:
            raise EventStoreError(f"writing to {self._table_name} failed: {exc}") from exc

    def query_partition(self, pk: str) -> list[dict[str, Any]]:
        # One Query for any ordinary payment; a partition over 1 MB continues from LastEvaluatedKey.
        return self._query_all({
            "TableName": self._table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }, f"reading {pk} from {self._table_name}")

    def query_index(self, index_name: str, key_attribute: str, value: str) -> list[dict[str, Any]]:
        """Every item of a GSI partition (eventually consistent, as GSIs are), all pages."""
        return self._query_all({
            "TableName": self._table_name,
            "IndexName": index_name,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key_attribute},
            "ExpressionAttributeValues": {":v": {"S": value}},
        }, f"querying {index_name} of {self._table_name}")

    def _query_all(self, request: dict[str, Any], what: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        try:
            while True:
                page = self._client.query(**request)
                items.extend(deserialize(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise EventStoreError(f"{what} failed: {exc}") from exc

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table_name, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise EventStoreError(f"reading {pk} from {self._table_name} failed: {exc}") from exc
        item = response.get("Item")
        return None if item is None else deserialize(item)

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """Consistent BatchGetItem of ≤ 100 distinct keys per request. Keys DynamoDB leaves unprocessed
        (throttling, the 16 MB answer limit) are asked for again with jittered exponential backoff; still
        unprocessed after the attempts → EventStoreError (the caller's record is delivered again)."""
        unique = list(dict.fromkeys(keys))  # BatchGetItem refuses a request naming one key twice
        items: list[dict[str, Any]] = []
        for first in range(0, len(unique), MAX_BATCH_GET):
            pending = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[first:first + MAX_BATCH_GET]]
            for attempt in range(1, self._max_read_attempts + 1):
                try:
                    response = self._client.batch_get_item(
                        RequestItems={self._table_name: {"Keys": pending, "ConsistentRead": True}})
                except (ClientError, BotoCoreError) as exc:
                    raise EventStoreError(f"reading {len(pending)} items from {self._table_name} failed: {exc}") from exc
                items.extend(deserialize(item) for item in response.get("Responses", {}).get(self._table_name, []))
                pending = ((response.get("UnprocessedKeys") or {}).get(self._table_name) or {}).get("Keys") or []
                if not pending:
                    break
                if attempt == self._max_read_attempts:
                    raise EventStoreError(f"{len(pending)} keys of {self._table_name} still unprocessed after "
                                          f"{self._max_read_attempts} BatchGetItem calls")
                # Jitter: functions throttled together should not retry in step.
                self._sleep(random.uniform(0.5, 1.0) * self._backoff_seconds * 2 ** (attempt - 1))
        return items
