"""What every event source poller shares: its thread, stop signal, counters and invoke wrapper."""

from __future__ import annotations

import abc
import base64
import datetime as dt
import json
import logging
import threading
import time
from typing import Any, Callable

from localdev.dataplane.filters import FilterSet
from localdev.dataplane.types import Invoke, InvokeResult

log = logging.getLogger("localdev.dataplane.pollers")

Clients = Callable[[str], Any]

# Back-off after an emulator error (doubling up to the cap), so a stopped or restarting emulator is
# not hammered and the poller carries on by itself once it is back.
ERROR_BACKOFF_SECONDS = (0.5, 5.0)


def arn_parts(arn: str) -> tuple[str, str, str]:
    """(region, account, resource) of an ARN."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[3], parts[4], parts[5]


def to_json_bytes(document: Any) -> bytes:
    """JSON as Lambda sends it: bytes (DynamoDB B/BS values) base64-encoded, datetimes as epoch seconds."""

    def default(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, dt.datetime):
            return value.timestamp()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    return json.dumps(document, default=default).encode("utf-8")


def parse_batch_item_failures(payload: bytes, known_ids: set[str]) -> set[str] | None:
    """The itemIdentifiers a ReportBatchItemFailures response names, or None if the response is invalid.

    As AWS: a null/empty response or a null/empty `batchItemFailures` means full success; invalid JSON,
    a missing, empty or unknown itemIdentifier means the whole batch failed.
    """
    try:
        document = json.loads(payload or b"null")
    except ValueError:
        return None
    if document is None or document == {}:
        return set()
    if not isinstance(document, dict):
        return None
    failures = document.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in known_ids:
            return None
        ids.add(identifier)
    return ids


class Poller(abc.ABC):
    """One event source mapping, polled by its own thread(s) until `stop()`."""

    kind = "?"

    def __init__(self, mapping: dict, clients: Clients, invoke: Invoke, clock: Callable[[], float] = time.time):
        self.mapping = mapping
        self.uuid: str = mapping["UUID"]
        self.function_arn: str = mapping["FunctionArn"]
        self.source_arn: str = mapping["EventSourceArn"]
        self.region = arn_parts(self.source_arn)[0]
        self.clients = clients
        self.clock = clock
        self._invoke = invoke
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.filters = FilterSet(mapping.get("FilterCriteria"))
        self.batch_size: int = mapping.get("BatchSize") or self.default_batch_size
        self.window: float = float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
        self.report_item_failures = "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
        self.stats: dict[str, Any] = {
            "batches": 0, "records": 0, "filtered": 0, "failed_invocations": 0,
            "last_error": None, "last_result": "No records processed",
        }

    default_batch_size = 10

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.spawn(self.run, f"poller-{self.kind}-{self.uuid[:8]}")

    def spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._guarded, args=(target,), name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[[], None]) -> None:
        try:
            target()
        except Exception as exc:  # noqa: BLE001 - a poller thread must report, never die silently
            log.exception("poller %s (%s) crashed", self.uuid, self.source_arn)
            self.error(f"poller crashed: {exc!r}")

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, deadline: float) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early on stop; True if stopping."""
        return self._stop.wait(seconds)

    @abc.abstractmethod
    def run(self) -> None:
        """The polling loop of this kind of source (SQS, streams)."""

    # -- bookkeeping ------------------------------------------------------------------------------
    def error(self, message: str) -> None:
        log.warning("mapping %s (%s): %s", self.uuid, self.source_arn, message)
        with self._lock:
            self.stats["last_error"] = message

    def backoff(self, attempt: int) -> float:
        low, high = ERROR_BACKOFF_SECONDS
        return min(high, low * 2 ** min(attempt, 10))

    def invoke(self, records: list[dict]) -> InvokeResult:
        payload = to_json_bytes({"Records": records})
        try:
            result = self._invoke(self.function_arn, payload)
        except Exception as exc:  # noqa: BLE001 - the service failing to invoke is a failed invocation
            result = InvokeResult(ok=False, payload=json.dumps({"errorMessage": str(exc)}).encode(), error_type="ServiceException")
        with self._lock:
            self.stats["batches"] += 1
            self.stats["records"] += len(records)
            if result.ok:
                self.stats["last_result"] = "OK"
            else:
                self.stats["failed_invocations"] += 1
                self.stats["last_result"] = "PROBLEM: Function call failed"
                self.stats["last_error"] = f"{result.error_type}: {result.payload[:500].decode('utf-8', 'replace')}"
        return result

    def count_filtered(self, n: int) -> None:
        with self._lock:
            self.stats["filtered"] += n

    def status(self) -> dict:
        with self._lock:
            alive = any(t.is_alive() for t in self._threads)
            return {
                "uuid": self.uuid,
                "kind": self.kind,
                "function_arn": self.function_arn,
                "source_arn": self.source_arn,
                "state": "running" if alive and not self.stopped else "stopped",
                **self.stats,
            }
