"""Fault injection switches of the local emulator, for chaos drills: `/_localdev/faults` (docs/local-platform.md,
"Fault injection (chaos)"). Off until switched on; they exist only in this emulator, never in AWS or LocalStack.

Kinds (one switch each; `POST` sets one, `GET` shows them and what they injected, `DELETE` turns all off):
- `put_events_failures`: EventBridge `PutEvents` answers 200 with some entries failed, as AWS reports a
  partial failure: `FailedEntryCount` > 0 and, at each failed entry's position, `{"ErrorCode", "ErrorMessage"}`
  with no `EventId` (`InternalFailure` by default, or `ThrottlingException`: the two retryable entry codes of
  the PutEventsResultEntry reference). The failed entries are taken out of the request before moto sees it,
  so no rule, target or archive ever gets them; the others are delivered as usual.
- `dynamodb_write_throttling`: DynamoDB writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
  TransactWriteItems) answer HTTP 400 as a throttled table does. On-demand (PAY_PER_REQUEST) tables — all of
  paystream's — get `ThrottlingException` ("For tables using on-demand mode, this exception might be returned
  for any data plane API operation if your request rate is too high", DynamoDB error handling guide) with
  `throttlingReasons` [`TableWriteKeyRangeThroughputExceeded`, the table's ARN]; provisioned tables get
  `ProvisionedThroughputExceededException` with `ThrottlingReasons` [`TableWriteProvisionedThroughputExceeded`].
  `"error"` picks one explicitly. Reads are left alone: DynamoDB meters and throttles read and write capacity
  separately (the reasons are `Table{Read|Write}…`), so a write limit being hit never refuses a read. A
  BatchWriteItem is refused as a whole, as AWS does when every item of it is throttled.

Which requests or entries fail: `"ratio": r` (0 < r ≤ 1; `"seed": n` makes the sequence reproducible) or
`"every": n` (the n-th, 2n-th, … eligible one: deterministic). Eligible: requests from the `callers` listed —
`clients` by default (the functions and tests; `terraform` and `dataplane` are the other two: an apply or the
data plane's own polling is never failed unless asked) — optionally only from the functions named in `apps`
(the `app/<name>` the data plane puts in each function's User-Agent), only to one `table` (DynamoDB) or
`bus` (EventBridge), and for `duration_s` seconds from the POST.

Counts: `injected` (entries failed, requests throttled) and `eligible` per kind. Setting a kind starts its
counts again; DELETE keeps them, so a runner can read them after turning the fault off.
"""

from __future__ import annotations

import io
import json
import random
import re
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from werkzeug.wrappers import Request, Response

from localdev.emulator.extensions import DATAPLANE_USER_AGENT, USER_AGENT_APP_ID

PUT_EVENTS, DYNAMODB_WRITES = "put_events_failures", "dynamodb_write_throttling"
KINDS = (PUT_EVENTS, DYNAMODB_WRITES)
CALLERS = ("clients", "dataplane", "terraform")
DYNAMODB_WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
PUT_EVENTS_ERROR_CODES = ("InternalFailure", "ThrottlingException")
DYNAMODB_ERRORS = ("ThrottlingException", "ProvisionedThroughputExceededException")
MAX_BODY_BYTES = 16 << 20
# The SigV4 credential scope: `Credential=<key>/<date>/<region>/<service>/aws4_request`.
CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/[^/]+/(?P<region>[^/]+)/")
DEFAULT_REGION = "us-east-1"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class BadSwitch(ValueError):
    """A switch request that cannot be honoured; the message says what to send instead."""


def caller_of(environ: dict[str, Any]) -> str:
    """`dataplane` (Lambda's own polling and deliveries), `terraform` (an apply), else `clients`."""
    user_agent = environ.get("HTTP_USER_AGENT", "")
    if DATAPLANE_USER_AGENT in user_agent:
        return "dataplane"
    if "terraform-provider-aws" in user_agent or "Terraform/" in user_agent:
        return "terraform"
    return "clients"


@dataclass
class Switch:
    kind: str
    ratio: float | None
    every: int | None
    seed: int | None
    callers: tuple[str, ...]
    apps: tuple[str, ...] | None
    duration_s: float | None
    target: str | None  # the table (DynamoDB) or bus (EventBridge) it is limited to
    error: str | None  # the error code it answers; None: DynamoDB picks by the table's billing mode
    set_at: float = field(default_factory=time.monotonic)
    seen: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self.rng = random.Random(self.seed)

    def active(self, now: float) -> bool:
        return self.duration_s is None or now < self.set_at + self.duration_s

    def applies_to(self, environ: dict[str, Any]) -> bool:
        if caller_of(environ) not in self.callers:
            return False
        if self.apps is not None:
            app = USER_AGENT_APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
            return bool(app) and app[1] in self.apps
        return True

    def pick(self) -> bool:
        """Whether the next eligible request or entry fails (call under the switches' lock)."""
        self.seen += 1
        if self.every is not None:
            return self.seen % self.every == 0
        return self.rng.random() < self.ratio

    def describe(self, now: float) -> dict[str, Any]:
        doc: dict[str, Any] = {"callers": list(self.callers), "active": self.active(now)}
        for name in ("ratio", "every", "seed", "duration_s", "error"):
            if getattr(self, name) is not None:
                doc[name] = getattr(self, name)
        if self.apps is not None:
            doc["apps"] = list(self.apps)
        if self.target is not None:
            doc["table" if self.kind == DYNAMODB_WRITES else "bus"] = self.target
        if self.duration_s is not None:
            doc["remaining_s"] = round(max(0.0, self.set_at + self.duration_s - now), 3)
        return doc


def parse_switch(body: Any) -> Switch:
    """A Switch from a POST body; BadSwitch with the reason otherwise."""
    if not isinstance(body, dict):
        raise BadSwitch('send a JSON object such as {"kind": "put_events_failures", "ratio": 0.3}')
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadSwitch(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    target_field = "table" if kind == DYNAMODB_WRITES else "bus"
    allowed = {"kind", "ratio", "every", "seed", "callers", "apps", "duration_s", "error", target_field}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadSwitch(f"unknown field(s) {', '.join(unknown)} for {kind}: use {', '.join(sorted(allowed))}")
    ratio, every, seed = body.get("ratio"), body.get("every"), body.get("seed")
    if (ratio is None) == (every is None):
        raise BadSwitch('give exactly one of "ratio" (0 < ratio <= 1) or "every" (an integer >= 1)')
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1):
        raise BadSwitch(f"ratio must be a number with 0 < ratio <= 1 (got {ratio!r})")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise BadSwitch(f"every must be an integer >= 1 (got {every!r})")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise BadSwitch(f"seed must be an integer (got {seed!r})")
    callers = body.get("callers", ["clients"])
    if not isinstance(callers, list) or not callers or any(c not in CALLERS for c in callers):
        raise BadSwitch(f"callers must be a non-empty list of {', '.join(CALLERS)} (got {callers!r})")
    apps = body.get("apps")
    if apps is not None and (not isinstance(apps, list) or not apps or not all(isinstance(a, str) and a for a in apps)):
        raise BadSwitch(f"apps must be a non-empty list of function names (got {apps!r})")
    duration = body.get("duration_s")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0):
        raise BadSwitch(f"duration_s must be a number of seconds > 0 (got {duration!r})")
    target = body.get(target_field)
    if target is not None and (not isinstance(target, str) or not target):
        raise BadSwitch(f"{target_field} must be a non-empty name (got {target!r})")
    errors = DYNAMODB_ERRORS if kind == DYNAMODB_WRITES else PUT_EVENTS_ERROR_CODES
    error = body.get("error")
    if error is not None and error not in errors:
        raise BadSwitch(f"error must be one of {', '.join(errors)} for {kind} (got {error!r})")
    if kind == PUT_EVENTS and error is None:
        error = "InternalFailure"
    return Switch(kind, float(ratio) if ratio is not None else None, every, seed, tuple(callers),
                  tuple(apps) if apps is not None else None, float(duration) if duration is not None else None,
                  target, error)


def _name_of(name_or_arn: str, marker: str) -> str:
    """A table or bus name from its name or ARN (`…:table/<name>`, `…:event-bus/<name>`)."""
    return name_or_arn.split(marker, 1)[1].split("/", 1)[0] if marker in name_or_arn else name_or_arn


def dynamodb_tables(operation: str, request: dict[str, Any]) -> list[str]:
    """The tables a DynamoDB write request writes to."""
    if operation == "BatchWriteItem":
        names = list((request.get("RequestItems") or {}).keys())
    elif operation == "TransactWriteItems":
        names = [action.get("TableName", "") for item in request.get("TransactItems") or [] if isinstance(item, dict)
                 for action in item.values() if isinstance(action, dict)]
    else:
        names = [request.get("TableName", "")]
    return [_name_of(name, ":table/") for name in names if isinstance(name, str) and name]


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back for whoever reads it next."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _replace_body(environ: dict[str, Any], body: bytes) -> None:
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))


def _region(environ: dict[str, Any]) -> str:
    match = CREDENTIAL_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match["region"] if match else DEFAULT_REGION


class FaultSwitches:
    """The switches and their counts; `__call__` is the WSGI middleware that applies them."""

    def __init__(self, account_id: str, clock: Callable[[], float] = time.monotonic):
        self.account_id = account_id
        self._clock = clock
        self._lock = threading.Lock()
        self._switches: dict[str, Switch] = {}
        self._injected = {kind: 0 for kind in KINDS}
        self._eligible = {kind: 0 for kind in KINDS}

    # ------------------------------------------------------------------ control
    def set(self, switch: Switch) -> None:
        with self._lock:
            switch.set_at = self._clock()
            self._switches[switch.kind] = switch
            self._injected[switch.kind] = self._eligible[switch.kind] = 0

    def clear(self, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self._switches.clear()
            else:
                self._switches.pop(kind, None)

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            return {
                "faults": {kind: switch.describe(now) for kind, switch in sorted(self._switches.items())},
                "injected": dict(self._injected),
                "eligible": dict(self._eligible),
            }

    def endpoint(self, request: Request) -> Response:
        """`/_localdev/faults`: GET the switches and counts, POST one switch, DELETE all (or `?kind=`)."""
        if request.method == "GET":
            return _json(200, self.snapshot())
        if request.method == "POST":
            body = request.get_json(force=True, silent=True)
            try:
                self.set(parse_switch(body))
            except BadSwitch as exc:
                return _json(400, {"error": "bad_request", "message": str(exc)})
            return _json(200, self.snapshot())
        if request.method == "DELETE":
            kind = request.args.get("kind")
            if kind is not None and kind not in KINDS:
                return _json(400, {"error": "bad_request", "message": f"kind must be one of {', '.join(KINDS)}"})
            self.clear(kind)
            return _json(200, self.snapshot())
        return _json(405, {"error": "method_not_allowed", "message": "use GET, POST or DELETE on /_localdev/faults"})

    def _active(self, kind: str, environ: dict[str, Any]) -> Switch | None:
        with self._lock:
            switch = self._switches.get(kind)
        if switch is None or not switch.active(self._clock()) or not switch.applies_to(environ):
            return None
        return switch

    # ------------------------------------------------------------------ middleware
    def __call__(self, environ: dict[str, Any], start_response: StartResponse, app: WsgiApp) -> Iterable[bytes]:
        if not self._switches:  # the usual case: no switch on, no body read
            return app(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target == "AWSEvents.PutEvents":
            switch = self._active(PUT_EVENTS, environ)
            if switch is not None:
                return self._put_events(switch, environ, start_response, app)
        elif target.startswith("DynamoDB_") and target.rsplit(".", 1)[-1] in DYNAMODB_WRITE_OPERATIONS:
            switch = self._active(DYNAMODB_WRITES, environ)
            if switch is not None:
                refusal = self._throttle(switch, environ, target.rsplit(".", 1)[-1])
                if refusal is not None:
                    return refusal(environ, start_response)
        return app(environ, start_response)

    def _put_events(self, switch: Switch, environ: dict[str, Any], start_response: StartResponse,
                    app: WsgiApp) -> Iterable[bytes]:
        raw = _read_body(environ)
        try:
            request = json.loads(raw) if len(raw) <= MAX_BODY_BYTES else None
            entries = request["Entries"] if isinstance(request, dict) else None
        except (ValueError, KeyError):
            entries = None
        if not isinstance(entries, list):
            return app(environ, start_response)  # moto answers a malformed request as AWS would
        failed: dict[int, dict[str, str]] = {}
        with self._lock:
            for index, entry in enumerate(entries):
                bus = _name_of(str(entry.get("EventBusName") or "default"), ":event-bus/") if isinstance(entry, dict) else None
                if switch.target is not None and bus != switch.target:
                    continue
                self._eligible[PUT_EVENTS] += 1
                if switch.pick():
                    failed[index] = _entry_error(switch.error or "InternalFailure")
            self._injected[PUT_EVENTS] += len(failed)
        if not failed:
            return app(environ, start_response)
        kept = [entry for index, entry in enumerate(entries) if index not in failed]
        if not kept:
            return _json(200, {"FailedEntryCount": len(failed), "Entries": [failed[i] for i in range(len(entries))]},
                         content_type="application/x-amz-json-1.1")(environ, start_response)
        _replace_body(environ, json.dumps({**request, "Entries": kept}).encode())
        status, headers, body = _call(app, environ)
        if not status.startswith("200"):
            start_response(status, headers)  # moto refused the whole call: its answer stands
            return [body]
        answer = json.loads(body)
        delivered = iter(answer.get("Entries") or [])
        merged = [failed[i] if i in failed else next(delivered, {}) for i in range(len(entries))]
        body = json.dumps({"FailedEntryCount": sum(1 for e in merged if "ErrorCode" in e), "Entries": merged}).encode()
        start_response(status, [(n, v) for n, v in headers if n.lower() != "content-length"]
                       + [("Content-Length", str(len(body)))])
        return [body]

    def _throttle(self, switch: Switch, environ: dict[str, Any], operation: str) -> Response | None:
        raw = _read_body(environ)
        try:
            request = json.loads(raw) if len(raw) <= MAX_BODY_BYTES else {}
        except ValueError:
            request = {}
        tables = dynamodb_tables(operation, request if isinstance(request, dict) else {})
        if switch.target is not None and switch.target not in tables:
            return None
        with self._lock:
            self._eligible[DYNAMODB_WRITES] += 1
            if not switch.pick():
                return None
            self._injected[DYNAMODB_WRITES] += 1
        region = _region(environ)
        table = switch.target or (tables[0] if tables else "unknown")
        arn = f"arn:aws:dynamodb:{region}:{self.account_id}:table/{table}"
        error = switch.error or self._throttling_error_for(table, region)
        if error == "ThrottlingException":
            doc = {"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                   "message": "Rate of requests exceeds the allowed throughput.",
                   "throttlingReasons": [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": arn}]}
        else:
            doc = {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                   "message": "The level of configured provisioned throughput for the table was exceeded. "
                              "Consider increasing your provisioning level with the UpdateTable API.",
                   "ThrottlingReasons": [{"reason": "TableWriteProvisionedThroughputExceeded", "resource": arn}]}
        body = json.dumps(doc).encode()
        # DynamoDB signs every answer with a CRC32 of its body; botocore checks it when present.
        return Response(body, status=400, content_type="application/x-amz-json-1.0",
                        headers={"x-amzn-RequestId": uuid.uuid4().hex.upper(), "x-amz-crc32": str(zlib.crc32(body))})

    def _throttling_error_for(self, table: str, region: str) -> str:
        """What AWS answers a throttled write to this table with: on-demand tables ThrottlingException,
        provisioned ones ProvisionedThroughputExceededException (a table moto does not know: on-demand)."""
        try:
            from moto.dynamodb.models import dynamodb_backends

            found = dynamodb_backends[self.account_id][region].tables.get(table)
        except Exception:  # noqa: BLE001 - only the choice of error code depends on it
            found = None
        mode = getattr(found, "billing_mode", None) if found is not None else "PAY_PER_REQUEST"
        return "ThrottlingException" if mode == "PAY_PER_REQUEST" else "ProvisionedThroughputExceededException"


def _entry_error(code: str) -> dict[str, str]:
    message = ("Internal service failure (injected by the local emulator: put_events_failures)"
               if code == "InternalFailure" else "Rate exceeded (injected by the local emulator: put_events_failures)")
    return {"ErrorCode": code, "ErrorMessage": message}


def _call(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to completion: (status, headers, body)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        seen["status"], seen["headers"] = status, list(headers)
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return seen["status"], seen["headers"], body


def _json(status: int, doc: dict[str, Any], content_type: str = "application/json") -> Response:
    return Response(json.dumps(doc), status=status, content_type=content_type)
