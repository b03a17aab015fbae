"""What the handler unit tests share: the tables as Terraform defines them (in-process moto), a Lambda
context, and loading a function's handler module fresh (its module-level settings read the environment
the test set up)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"


class LambdaContext:
    """The parts of the Lambda context Powertools reads."""

    def __init__(self, function_name: str = "function", remaining_ms: int = 30_000):
        self.function_name = function_name
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.aws_request_id = "req-1"
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def load_handler(function: str, module_name: str | None = None) -> ModuleType:
    """lambdas/<function>/handler.py as a new module (settings and clients are built at import)."""
    spec = importlib.util.spec_from_file_location(module_name or f"{function}_under_test", LAMBDAS / function / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def create_transactions_table(ddb: Any, name: str = "transactions", *, status_index: bool = False) -> None:
    """The event store's table: pk/sk, with the by-status GSI when a test lists payments by status."""
    attributes = ["pk", "sk", *(["status_pk", "created_at"] if status_index else [])]
    extra: dict[str, Any] = {}
    if status_index:
        extra["GlobalSecondaryIndexes"] = [{
            "IndexName": "by-status", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "status_pk", "KeyType": "HASH"},
                          {"AttributeName": "created_at", "KeyType": "RANGE"}]}]
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attributes], **extra,
    )


def create_hash_key_table(ddb: Any, name: str, key: str) -> None:
    """A table with one string hash key: idempotency (`id`), fraud profiles (`pk`)."""
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}])


def emf_metrics(captured: str) -> list[tuple[str, float]]:
    """(name, value) of every EMF metric in captured stdout, in order (Powertools prints one JSON blob per flush)."""
    metrics = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    value = blob[metric["Name"]]
                    metrics += [(metric["Name"], v) for v in (value if isinstance(value, list) else [value])]
    return metrics
