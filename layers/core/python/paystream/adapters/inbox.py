"""The webhook inbox: raw Stripe events stored in the transactions table, deduplicated by event id."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from paystream.clock import utc_now

if TYPE_CHECKING:  # only types here; importing paystream.webhooks would load stripe into every user
    from paystream.processing import Outcome
    from paystream.webhooks import StripeEventRecord

log = logging.getLogger(__name__)
MAX_TRANSACT_ITEMS = 100  # TransactWriteItems' limit of actions per request


def inbox_key(event_id: str) -> dict[str, str]:
    return {"pk": f"STRIPE_EVENT#{event_id}", "sk": "INBOX"}


class DynamoDBWebhookInbox:
    def __init__(self, table: Any, ttl_days: int, clock=time.time):
        self._table = table  # boto3 DynamoDB Table resource
        self._ttl_seconds = ttl_days * 86400
        self._clock = clock

    def put_if_absent(self, event: StripeEventRecord) -> bool:
        now = int(self._clock())
        item = {
            **inbox_key(event.event_id),
            "item_type": "stripe_event",
            "event_id": event.event_id,
            "event_type": event.event_type,
            "stripe_created": event.created,
            "livemode": event.livemode,
            "payload": event.raw_body,
            "received_at": now,
            "expires_at": now + self._ttl_seconds,
        }
        if event.object_id:
            item["object_id"] = event.object_id
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


class DynamoDBWebhookOutcomes:
    """Notes on each inbox item what processing did with it (`processing_status`, `processed_at`,
    `processing_reason`, `transaction_id`), over the low-level DynamoDB client. A MODIFY: the relay's
    stream filter passes only INSERTs, so it is never published again.

    A whole SQS batch's outcomes go in ONE TransactWriteItems of Update actions (≤ 100 per call). Not
    BatchWriteItem: it can only put whole items, and a put could race the inbox item's other writers.
    Each update is conditional on the item existing (never a stub item: an expired inbox item, a replay
    from the archive, stays gone), so one missing item cancels the transaction: the outcomes are then
    written one UpdateItem each, as before, and only the missing ones are skipped (logged)."""

    def __init__(self, client: Any, table_name: str, clock=None):
        self._client = client
        self._table_name = table_name
        self._clock = clock or utc_now

    def record_all(self, outcomes: Sequence[Outcome]) -> dict[str, Exception]:
        """Record the outcomes (one per Stripe event id); the errors of those not recorded, by event id."""
        errors: dict[str, Exception] = {}
        at = self._clock()
        for first in range(0, len(outcomes), MAX_TRANSACT_ITEMS):
            chunk = outcomes[first:first + MAX_TRANSACT_ITEMS]
            updates = [self._update(outcome, at) for outcome in chunk]
            try:
                self._client.transact_write_items(TransactItems=[{"Update": update} for update in updates])
                continue
            except self._client.exceptions.TransactionCanceledException as exc:
                reasons = [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]
                log.info("outcome transaction cancelled (%s): recording its %d outcomes one by one", reasons, len(chunk))
            except (ClientError, BotoCoreError) as exc:
                errors |= {outcome.stripe_event_id: exc for outcome in chunk}
                continue
            for outcome, update in zip(chunk, updates):
                try:
                    self._client.update_item(**update)
                except self._client.exceptions.ConditionalCheckFailedException:
                    log.warning("webhook %s is no longer in the inbox; its outcome %s is only logged",
                                outcome.stripe_event_id, outcome.status)
                except (ClientError, BotoCoreError) as exc:
                    errors[outcome.stripe_event_id] = exc
        return errors

    def _update(self, outcome: Outcome, at: str) -> dict[str, Any]:
        """The UpdateItem request (also a TransactWriteItems Update action) recording one outcome."""
        values = {":status": {"S": outcome.status}, ":at": {"S": at}, ":reason": {"S": outcome.reason[:1000]}}
        update = "SET processing_status = :status, processed_at = :at, processing_reason = :reason"
        if outcome.transaction_id:
            values[":transaction_id"] = {"S": outcome.transaction_id}
            update += ", transaction_id = :transaction_id"
        return {
            "TableName": self._table_name,
            "Key": {k: {"S": v} for k, v in inbox_key(outcome.stripe_event_id).items()},
            "UpdateExpression": update, "ExpressionAttributeValues": values,
            # Never create a stub item: an expired inbox item (a replay from the archive) stays gone.
            "ConditionExpression": "attribute_exists(pk)",
        }
