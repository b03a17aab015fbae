"""DynamoDB adapter for the notifier's idempotency records (paystream.notifications.DeliveryClaims).

Records in the idempotency table, in Powertools' layout so the table's TTL (`expiration`, epoch seconds)
removes them: `id` (the delivery key), `status` (INPROGRESS / COMPLETED), `in_progress_expiration` (epoch ms:
the claim's lease), `expiration`, and once completed `data` (the SNS message id, JSON).
- claim: one TransactWriteItems of conditional Puts per ≤ 100 keys, each returning the record in the way
  (`ReturnValuesOnConditionCheckFailure=ALL_OLD`, which moto reports too) in the cancellation reasons;
- complete and release: BatchWriteItem puts / deletes (≤ 25 per request), items left unprocessed sent again
  with backoff.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable, Mapping, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from paystream.adapters.batch_writes import MAX_BATCH_WRITE, batch_write
from paystream.notifications import COMPLETED, IDEMPOTENCY_EXPIRY_SECONDS, IN_PROGRESS, ClaimRefusal, ClaimResult

MAX_TRANSACTION_ITEMS = 100  # TransactWriteItems' limit of actions per request
CLAIMABLE = ("attribute_not_exists(#id) OR #expiration < :now"
             " OR (#status = :in_progress AND attribute_exists(#lease) AND #lease < :now_ms)")


class DynamoDBDeliveryClaims:
    def __init__(self, dynamodb_client: Any, table_name: str, *, max_attempts: int = 4,
                 backoff_seconds: float = 0.05, sleep: Callable[[float], None] = time.sleep):
        self._client = dynamodb_client
        self._table_name = table_name
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep

    def claim(self, keys: Sequence[str], *, now: float, lease_until_ms: int) -> ClaimResult:
        claimed: set[str] = set()
        refused: dict[str, ClaimRefusal] = {}
        for start in range(0, len(keys), MAX_TRANSACTION_ITEMS):
            chunk = list(keys[start:start + MAX_TRANSACTION_ITEMS])
            try:
                self._client.transact_write_items(
                    TransactItems=[self._claim_action(key, now, lease_until_ms) for key in chunk],
                    # botocore's own retries of this call are then one transaction, not a claim refused by itself.
                    ClientRequestToken=str(uuid.uuid4()))
            except ClientError as exc:
                reasons = exc.response.get("CancellationReasons")
                if exc.response["Error"].get("Code") != "TransactionCanceledException" or not reasons:
                    refused.update({key: ClaimRefusal(_code(exc)) for key in chunk})
                    continue
                for key, reason in zip(chunk, reasons):
                    refusal = _refusal(reason)
                    if refusal is not None:
                        refused[key] = refusal
                continue
            except BotoCoreError as exc:
                refused.update({key: ClaimRefusal(type(exc).__name__) for key in chunk})
                continue
            claimed.update(chunk)
        return ClaimResult(frozenset(claimed), refused)

    def _claim_action(self, key: str, now: float, lease_until_ms: int) -> dict[str, Any]:
        return {"Put": {
            "TableName": self._table_name,
            "Item": {"id": {"S": key}, "status": {"S": IN_PROGRESS},
                     "in_progress_expiration": {"N": str(lease_until_ms)},
                     "expiration": {"N": str(int(now) + IDEMPOTENCY_EXPIRY_SECONDS)}},
            "ConditionExpression": CLAIMABLE,
            "ExpressionAttributeNames": {"#id": "id", "#expiration": "expiration", "#status": "status",
                                         "#lease": "in_progress_expiration"},
            "ExpressionAttributeValues": {":now": {"N": str(int(now))}, ":now_ms": {"N": str(int(now * 1000))},
                                          ":in_progress": {"S": IN_PROGRESS}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }}

    def complete(self, message_ids: Mapping[str, str], *, now: float) -> dict[str, Exception]:
        expiration = str(int(now) + IDEMPOTENCY_EXPIRY_SECONDS)
        return self._write({key: {"PutRequest": {"Item": {
            "id": {"S": key}, "status": {"S": COMPLETED}, "expiration": {"N": expiration},
            "data": {"S": json.dumps({"message_id": message_id})}}}} for key, message_id in message_ids.items()})

    def release(self, keys: Sequence[str]) -> dict[str, Exception]:
        return self._write({key: {"DeleteRequest": {"Key": {"id": {"S": key}}}} for key in keys})

    def _write(self, requests: dict[str, dict]) -> dict[str, Exception]:
        """BatchWriteItem of the requests (distinct keys), 25 per call; the errors by key of those not written."""
        errors: dict[str, Exception] = {}
        keys = list(requests)
        for start in range(0, len(keys), MAX_BATCH_WRITE):
            pending, error = batch_write(self._client, self._table_name,
                                         [requests[key] for key in keys[start:start + MAX_BATCH_WRITE]],
                                         max_attempts=self._max_attempts, backoff_seconds=self._backoff_seconds,
                                         sleep=self._sleep)
            errors.update({_key_of(request): error for request in pending})
        return errors


def _code(exc: ClientError) -> str:
    return exc.response["Error"].get("Code") or "ClientError"


def _refusal(reason: Mapping[str, Any]) -> ClaimRefusal | None:
    """A cancellation reason as a refusal; None for an action that was fine (cancelled because of another)."""
    code = reason.get("Code")
    if code in (None, "None"):
        return None
    item = reason.get("Item") or {}
    status = item.get("status", {}).get("S")
    lease = item.get("in_progress_expiration", {}).get("N")
    if code == "ConditionalCheckFailed" and status:
        return ClaimRefusal(code, status=status, in_progress_until_ms=int(lease) if lease else None)
    return ClaimRefusal(code)


def _key_of(request: Mapping[str, Any]) -> str:
    if "PutRequest" in request:
        return request["PutRequest"]["Item"]["id"]["S"]
    return request["DeleteRequest"]["Key"]["id"]["S"]
