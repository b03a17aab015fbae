"""Where an environment's resources are: its outputs file, and clients built from it.

An outputs file is either the local stack's `.local/outputs.json` (`make local-up` writes it) or
`terraform output -json` of a deployed environment (each value wrapped as {"value": ...}; both shapes are
read). Without `aws_endpoint_url` the clients talk to real AWS with the usual credential chain; without
`stripe_api_base`, to real Stripe. The Stripe key is the one the functions use: read from Secrets Manager
(`secret_ids.stripe_api_key`), unless STRIPE_API_KEY is set or the local stack's localstripe key is listed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_OUTPUTS = Path(".local/outputs.json")


class EnvironmentError_(Exception):
    """The outputs are missing or lack what a command needs; the message says what to do."""


@dataclass(frozen=True)
class Environment:
    outputs: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> "Environment":
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise EnvironmentError_(f"no outputs at {path}: run make local-up, or pass --outputs with "
                                    "`terraform output -json` of the environment") from None
        except ValueError as exc:
            raise EnvironmentError_(f"{path} is not JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise EnvironmentError_(f"{path} is not a JSON object of outputs")
        unwrapped = {k: (v["value"] if isinstance(v, dict) and set(v) >= {"value"} and "sensitive" in v else v)
                     for k, v in raw.items()}
        return cls(unwrapped)

    def need(self, *path: str) -> Any:
        value: Any = self.outputs
        for key in path:
            if not isinstance(value, dict) or key not in value:
                raise EnvironmentError_(f"the outputs lack {'.'.join(path)}")
            value = value[key]
        return value

    def client(self, service: str) -> Any:
        import boto3

        kwargs: dict[str, Any] = {"region_name": self.outputs.get("region")}
        if self.outputs.get("aws_endpoint_url"):  # the local emulator: any credentials do
            kwargs |= {"endpoint_url": self.outputs["aws_endpoint_url"], "aws_access_key_id": "test",
                       "aws_secret_access_key": "test"}
        return boto3.client(service, **kwargs)

    def stripe_api_key(self) -> str:
        if os.environ.get("STRIPE_API_KEY"):
            return os.environ["STRIPE_API_KEY"]
        if self.outputs.get("stripe_api_key"):  # localstripe's key (the local stack lists it; a real one never)
            return self.outputs["stripe_api_key"]
        secret_id = self.need("secret_ids", "stripe_api_key")
        value = json.loads(self.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
        return value["api_key"]

    def stripe_gateway(self) -> Any:
        from paystream.adapters.stripe_gateway import StripeGateway

        return StripeGateway(self.stripe_api_key(), api_base=self.outputs.get("stripe_api_base") or None)

    def event_store(self) -> Any:
        from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
        from paystream.store import EventStore

        return EventStore(DynamoDBTransactionsTable(self.client("dynamodb"), self.need("table_names", "transactions")))
