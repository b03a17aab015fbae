"""Reading the whole transactions table for ops commands (gaps, rebuild, reconcile): a parallel Scan.

The table's layout is docs/payments-core.md. A Scan is eventually consistent and sees each item once per
run, which is what a report over the whole table needs; a command that then writes re-checks what it
writes with a condition (rebuild: `last_sequence`). Items come back as plain Python (numbers as int when
integral), like `paystream.adapters.dynamodb_store` reads them.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from paystream_ops.environment import Environment

# Parallel Scan segments: DynamoDB serves each from its own partition range; 4 keeps a local emulator and
# a small on-demand table busy without throttling a production one (the Scan pages are 1 MB each).
DEFAULT_SEGMENTS = 4
ITEM_TYPES = ("event", "projection", "stripe_event")


def instant(value: Any) -> datetime | None:
    """A stored timestamp: ISO 8601 text (events, projections, relay marks) or epoch seconds (the webhook
    inbox's received_at); None when absent or unreadable."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


@dataclass
class PaymentItems:
    """One payment's items as stored: its projection (None if missing) and its events in sequence order."""

    transaction_id: str
    projection: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TableSnapshot:
    payments: dict[str, PaymentItems]  # by transaction id
    stripe_events: list[dict[str, Any]]  # the webhook inbox items
    items_read: int

    @property
    def event_count(self) -> int:
        return sum(len(payment.events) for payment in self.payments.values())


def scan(environment: Environment, item_types: Iterable[str] = ITEM_TYPES, segments: int = DEFAULT_SEGMENTS,
         on_page: Callable[[int], None] | None = None, client: Any = None) -> list[dict[str, Any]]:
    """Every item whose item_type is one of `item_types`, read with `segments` parallel Scans.
    `on_page(n)` is called after each page with the number of items it held (for a progress bar)."""
    from paystream.adapters.dynamodb_store import deserialize

    client = client or environment.client("dynamodb")
    table = environment.need("table_names", "transactions")
    types = list(item_types)
    values = {f":t{i}": {"S": value} for i, value in enumerate(types)}
    condition = f"item_type IN ({', '.join(values)})"

    def read_segment(segment: int) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": table, "FilterExpression": condition,
                                   "ExpressionAttributeValues": values, "Segment": segment,
                                   "TotalSegments": segments}
        items: list[dict[str, Any]] = []
        while True:
            page = client.scan(**request)
            items.extend(deserialize(item) for item in page.get("Items", []))
            if on_page:
                on_page(page.get("ScannedCount", len(page.get("Items", []))))
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(max_workers=segments) as pool:
        return [item for items in pool.map(read_segment, range(segments)) for item in items]


def snapshot(items: Iterable[dict[str, Any]]) -> TableSnapshot:
    """Items grouped by payment, events sorted by sequence."""
    payments: dict[str, PaymentItems] = {}
    stripe_events: list[dict[str, Any]] = []
    count = 0
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        count += 1
        kind = item.get("item_type")
        if kind == "stripe_event":
            stripe_events.append(item)
            continue
        pk = str(item.get("pk", ""))
        if not pk.startswith("TXN#") or kind not in ("event", "projection"):
            continue
        transaction_id = pk[len("TXN#"):]
        payment = payments.setdefault(transaction_id, PaymentItems(transaction_id))
        if kind == "projection":
            payment.projection = item
        else:
            grouped[transaction_id].append(item)
    for transaction_id, events in grouped.items():
        payments[transaction_id].events = sorted(events, key=lambda item: int(item.get("sequence") or 0))
    return TableSnapshot(payments, stripe_events, count)
