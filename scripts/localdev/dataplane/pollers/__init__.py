"""Event source mapping pollers: SQS, Kinesis and DynamoDB Streams with Lambda's semantics.

    mappings = discover_mappings(lambda_client, function_arns)
    manager = PollerManager(clients, invoke)   # clients(service) -> boto3 client; invoke(fn_arn, payload) -> InvokeResult
    manager.sync(mappings)                     # start new/enabled, stop removed/disabled, restart changed
    manager.status()                           # one dict per mapping (see Poller.status)
    manager.stop()

Threads: one per SQS mapping (batches of a mapping run one after another); for streams one per
mapping (shard discovery) plus one per shard (ordered). Stream checkpoints are kept in memory by the
manager, so a mapping restarted by `sync` resumes where it was; a new manager starts again from the
mappings' StartingPosition.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Callable, Iterable

from localdev.dataplane.pollers.base import Clients, Poller, log
from localdev.dataplane.pollers.sqs import SqsPoller
from localdev.dataplane.pollers.streams import StreamPoller
from localdev.dataplane.types import Invoke

__all__ = ["PollerManager", "discover_mappings"]

STOP_TIMEOUT_SECONDS = 10.0
_ENABLED_STATES = {"Enabled", "Enabling", "Creating", "Updating"}
# Fields that change without the mapping's behaviour changing: not a reason to restart its poller.
_VOLATILE = {"LastModified", "LastProcessingResult", "State", "StateTransitionReason", "ResponseMetadata"}


def discover_mappings(lambda_client, function_arns: Iterable[str]) -> list[dict]:
    """Every event source mapping of the given functions.

    moto files a mapping under the FunctionName it was created with: Terraform passes the ARN, the
    AWS CLI usually the name, and a filter by the other finds nothing. So list by ARN, by name and
    unfiltered, and keep the mappings whose function is one of ours.
    """
    arns = set(function_arns)
    found: dict[str, dict] = {}
    paginator = lambda_client.get_paginator("list_event_source_mappings")
    filters = [{}] + [{"FunctionName": arn} for arn in arns] + [{"FunctionName": arn.rsplit(":", 1)[-1]} for arn in arns]
    for kwargs in filters:
        for page in paginator.paginate(**kwargs):
            for mapping in page["EventSourceMappings"]:
                if _unqualified(mapping.get("FunctionArn", "")) in arns:
                    found[mapping["UUID"]] = mapping
    return list(found.values())


def _unqualified(function_arn: str) -> str:
    """arn:aws:lambda:r:a:function:name[:qualifier] without the qualifier."""
    parts = function_arn.split(":")
    return ":".join(parts[:7])


def _fingerprint(mapping: dict) -> str:
    return json.dumps({k: v for k, v in mapping.items() if k not in _VOLATILE}, sort_keys=True, default=str)


def _kind(source_arn: str) -> str | None:
    if source_arn.startswith("arn:aws:sqs:"):
        return "sqs"
    if source_arn.startswith("arn:aws:kinesis:"):
        return "kinesis"
    if source_arn.startswith("arn:aws:dynamodb:") and "/stream/" in source_arn:
        return "dynamodb"
    return None


class PollerManager:
    def __init__(self, clients: Clients, invoke: Invoke, clock: Callable[[], float] = time.time):
        """`clock` (epoch seconds) decides record ages for MaximumRecordAgeInSeconds; tests may shift it."""
        self.clients = clients
        self.invoke = invoke
        self.clock = clock
        self._lock = threading.Lock()
        self._pollers: dict[str, tuple[str, Poller]] = {}
        self._inactive: dict[str, dict] = {}  # disabled, unsupported or invalid mappings, for status()
        self._checkpoints: dict[str, dict[str, str]] = {}  # mapping uuid -> shard id -> sequence number

    def sync(self, mappings: Iterable[dict]) -> dict:
        """Make the running pollers match `mappings`; returns {"started", "stopped": [uuid…], "running": n}."""
        mappings = list(mappings)
        with self._lock:
            wanted = {m["UUID"]: m for m in mappings if (m.get("State") or "Enabled") in _ENABLED_STATES}
            retired = [
                poller for uuid, (fingerprint, poller) in self._pollers.items()
                if uuid not in wanted or fingerprint != _fingerprint(wanted[uuid])
            ]
            self._shutdown(retired)
            for poller in retired:
                del self._pollers[poller.uuid]
            for mapping in mappings:
                if mapping["UUID"] not in wanted:
                    self._inactive[mapping["UUID"]] = self._describe(mapping, "disabled", None)
            live = {m["UUID"] for m in mappings}
            for uuid in list(self._inactive):
                if uuid not in live or uuid in wanted:
                    del self._inactive[uuid]
            for uuid in list(self._checkpoints):
                if uuid not in live:
                    del self._checkpoints[uuid]
            started = []
            for uuid, mapping in wanted.items():
                if uuid not in self._pollers:
                    self._start(mapping)
                    if uuid in self._pollers:
                        started.append(uuid)
            return {"started": started, "stopped": [p.uuid for p in retired], "running": len(self._pollers)}

    def _start(self, mapping: dict) -> None:
        kind = _kind(mapping["EventSourceArn"])
        if kind is None:
            self._inactive[mapping["UUID"]] = self._describe(
                mapping, "unsupported", "the local data plane polls only SQS queues, Kinesis streams and DynamoDB streams"
            )
            return
        try:
            if kind == "sqs":
                poller: Poller = SqsPoller(mapping, self.clients, self.invoke, self.clock)
            else:
                checkpoints = self._checkpoints.setdefault(mapping["UUID"], {})
                poller = StreamPoller(mapping, self.clients, self.invoke, self.clock, checkpoints)
        except (ValueError, KeyError) as exc:  # e.g. an invalid FilterCriteria pattern
            log.error("mapping %s not started: %s", mapping.get("UUID"), exc)
            self._inactive[mapping["UUID"]] = self._describe(mapping, "invalid", f"{type(exc).__name__}: {exc}")
            return
        self._inactive.pop(mapping["UUID"], None)
        self._pollers[mapping["UUID"]] = (_fingerprint(mapping), poller)
        poller.start()

    @staticmethod
    def _describe(mapping: dict, state: str, error: str | None) -> dict:
        return {
            "uuid": mapping["UUID"],
            "kind": _kind(mapping.get("EventSourceArn", "")),
            "function_arn": mapping.get("FunctionArn"),
            "source_arn": mapping.get("EventSourceArn"),
            "state": state,
            "batches": 0,
            "records": 0,
            "last_error": error,
        }

    def status(self) -> list[dict]:
        with self._lock:
            pollers = [poller for _, poller in self._pollers.values()]
            inactive = list(self._inactive.values())
        return [p.status() for p in pollers] + inactive

    def stop(self) -> None:
        with self._lock:
            self._shutdown([poller for _, poller in self._pollers.values()])
            self._pollers.clear()

    @staticmethod
    def _shutdown(pollers: list[Poller]) -> None:
        # Signal all first, then join: stopping takes as long as the slowest poller, not their sum.
        for poller in pollers:
            poller.signal_stop()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for poller in pollers:
            poller.join(deadline)
