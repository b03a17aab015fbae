"""The webhook inbox: raw Stripe events stored in the transactions table, deduplicated by event id."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from paystream.clock import utc_now

if TYPE_CHECKING:  # only a type here; importing paystream.webhooks would load stripe into every user
    from paystream.webhooks import StripeEventRecord

log = logging.getLogger(__name__)


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
    stream filter passes only INSERTs, so it is never published again."""

    def __init__(self, client: Any, table_name: str, clock=None):
        self._client = client
        self._table_name = table_name
        self._clock = clock or utc_now

    def record(self, stripe_event_id: str, status: str, *, transaction_id: str | None, reason: str) -> None:
        key = inbox_key(stripe_event_id)
        values = {":status": {"S": status}, ":at": {"S": self._clock()}, ":reason": {"S": reason[:1000]}}
        update = "SET processing_status = :status, processed_at = :at, processing_reason = :reason"
        if transaction_id:
            values[":transaction_id"] = {"S": transaction_id}
            update += ", transaction_id = :transaction_id"
        try:
            self._client.update_item(
                TableName=self._table_name, Key={k: {"S": v} for k, v in key.items()},
                UpdateExpression=update, ExpressionAttributeValues=values,
                # Never create a stub item: an expired inbox item (a replay from the archive) stays gone.
                ConditionExpression="attribute_exists(pk)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            log.warning("webhook %s is no longer in the inbox; its outcome %s is only logged", stripe_event_id, status)
