"""Circuit breaker state in DynamoDB: one item per breaker (pk `BREAKER#<name>`, sk `STATE`), written
only by conditional puts on its version so that concurrent instances never both win a transition."""

from __future__ import annotations

from typing import Any

from paystream.adapters.dynamodb_store import deserialize, serialize
from paystream.breaker import BreakerState


def breaker_key(name: str) -> dict[str, str]:
    return {"pk": f"BREAKER#{name}", "sk": "STATE"}


class DynamoDBBreakerStore:
    def __init__(self, client: Any, table_name: str):
        # The low-level client the event store uses too: one client per process, no resource API
        # (building a boto3 resource costs a cold start more than a client does).
        self._client = client
        self._table_name = table_name

    def load(self, name: str) -> BreakerState:
        # Strongly consistent, so a caller rarely computes a transition from a state already replaced.
        raw = self._client.get_item(TableName=self._table_name, Key=serialize(breaker_key(name)),
                                    ConsistentRead=True).get("Item")
        if raw is None:
            return BreakerState()
        item = deserialize(raw)
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
            "window_started_at": state.window_started_at,
            "open_until": state.open_until,
            "probe_expires_at": state.probe_expires_at,
            "version": expected_version + 1,
        }
        if state.probe_id:
            item["probe_id"] = state.probe_id
        if expected_version == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "version = :expected",
                         "ExpressionAttributeValues": serialize({":expected": expected_version})}
        try:
            self._client.put_item(TableName=self._table_name, Item=serialize(item), **condition)
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True
