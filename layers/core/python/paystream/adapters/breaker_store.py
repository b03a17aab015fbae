"""Circuit breaker state in DynamoDB: one item per breaker (pk `BREAKER#<name>`, sk `STATE`), written
only by conditional puts on its version so that concurrent instances never both win a transition."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from paystream.breaker import BreakerState


def breaker_key(name: str) -> dict[str, str]:
    return {"pk": f"BREAKER#{name}", "sk": "STATE"}


class DynamoDBBreakerStore:
    def __init__(self, table: Any):
        self._table = table  # boto3 DynamoDB Table resource (the transactions table)

    def load(self, name: str) -> BreakerState:
        # Strongly consistent, so a caller rarely computes a transition from a state already replaced.
        item = self._table.get_item(Key=breaker_key(name), ConsistentRead=True).get("Item")
        if item is None:
            return BreakerState()
        return BreakerState(
            state=item["state"],
            failures=int(item["failures"]),
            window_started_at=float(item["window_started_at"]),
            open_until=float(item["open_until"]),
            probe_id=item.get("probe_id"),
            probe_expires_at=float(item["probe_expires_at"]),
            version=int(item["version"]),
        )

    def save(self, name: str, state: BreakerState, expected_version: int) -> bool:
        item = {
            **breaker_key(name),
            "item_type": "breaker",
            "state": state.state,
            "failures": state.failures,
            "window_started_at": Decimal(str(state.window_started_at)),
            "open_until": Decimal(str(state.open_until)),
            "probe_expires_at": Decimal(str(state.probe_expires_at)),
            "version": expected_version + 1,
        }
        if state.probe_id:
            item["probe_id"] = state.probe_id
        if expected_version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "version = :expected",
                         "ExpressionAttributeValues": {":expected": expected_version}}
        try:
            self._table.put_item(Item=item, **condition)
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True
