"""BatchWriteItem with its unprocessed items sent again: the one loop the relay's marks and the notifier's
records share. Light on purpose (no event store, no pydantic): the relay and the notifier import it at init."""

from __future__ import annotations

import random
import time
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

MAX_BATCH_WRITE = 25  # BatchWriteItem's limit of items per request


class ItemsNotWritten(Exception):
    """BatchWriteItem left these items unprocessed through every attempt."""


def batch_write(client: Any, table_name: str, requests: list[dict], *, max_attempts: int, backoff_seconds: float,
                sleep: Callable[[float], None] = time.sleep) -> tuple[list[dict], Exception | None]:
    """Write ≤ 25 requests (PutRequest / DeleteRequest, distinct keys) in one BatchWriteItem, sending what comes
    back in UnprocessedItems again with backoff. Returns the requests not written and why ([] and None when all
    were): a failed call leaves every request still pending; attempts running out, ItemsNotWritten."""
    pending = requests
    for attempt in range(1, max_attempts + 1):
        try:
            response = client.batch_write_item(RequestItems={table_name: pending})
        except (BotoCoreError, ClientError) as exc:
            return pending, exc
        pending = (response.get("UnprocessedItems") or {}).get(table_name) or []
        if not pending:
            return [], None
        if attempt < max_attempts:
            # Unprocessed items mean throttling: back off, with jitter so parallel callers do not retry in step.
            sleep(random.uniform(0.5, 1.0) * backoff_seconds * 2 ** (attempt - 1))
    return pending, ItemsNotWritten(f"BatchWriteItem left {len(pending)} item(s) unprocessed after {max_attempts} attempts")
