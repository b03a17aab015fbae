"""The webhook inbox: raw Stripe events stored in the transactions table, deduplicated by event id."""

from __future__ import annotations

import time
from typing import Any

from paystream.webhooks import StripeEventRecord


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
