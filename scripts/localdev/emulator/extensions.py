"""The `/_localdev/` endpoints and Lambda Invoke forwarding, as WSGI middleware around moto's app.

Contract: docs/local-platform.md ("Emulator extensions"). Platform code never calls these; the data
plane and the stack tooling do.
"""

from __future__ import annotations

import base64
import binascii
import collections
import http.client
import io
import json
import re
import threading
import uuid
from typing import Any, Callable, Iterable, Protocol
from urllib.parse import parse_qs, urlsplit

from werkzeug.wrappers import Request, Response

DEFAULT_REGION = "us-east-1"
# Lambda's own limit is 900 s; leave the data plane room to report a timeout itself.
FORWARD_TIMEOUT_S = 960
INVOKE_PATH = re.compile(r"/2015-03-31/functions/[^/]+/invocations/?")
FUNCTION_CODE_PATH = re.compile(r"/_localdev/lambda/functions/(?P<name>[^/]+)/code")
LAYER_CONTENT_PATH = re.compile(r"/_localdev/lambda/layers/(?P<name>[^/]+)/(?P<version>[^/]+)/content")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection", "upgrade", "te"}

StartResponse = Callable[..., Any]

# SigV4: `Credential=<key>/<date>/<region>/<service>/aws4_request`.
CREDENTIAL_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/(?P<service>[^/]+)/aws4_request")
# The local data plane's clients add this to their User-Agent; what it sends is Lambda's own work.
DATAPLANE_USER_AGENT = "localdev-dataplane"
USER_AGENT_APP_ID = re.compile(r"(?:^|\s)app/(\S+)")
MAX_FORM_BYTES = 1 << 20


def aws_operation(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of an AWS API request, from its signature and its protocol's markers.

    JSON protocols name the operation in X-Amz-Target (`DynamoDB_20120810.PutItem`), query protocols
    in the form field `Action` (the body is read and put back for moto); REST protocols are named by
    method and first path segment, except Lambda Invoke.
    """
    match = CREDENTIAL_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match["service"] if match else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if INVOKE_PATH.fullmatch(path):
        return service, "Invoke"
    query_action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if query_action:
        return service, query_action[0]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if 0 < length <= MAX_FORM_BYTES:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode("utf-8", "replace")).get("Action")
            if action:
                return service, action[0]
    segment = path.strip("/").split("/", 1)[0]
    return service, f"{environ.get('REQUEST_METHOD', 'GET')} /{segment}"


# -- DynamoDB capacity units, estimated per request ------------------------------------------------
# On-demand DynamoDB bills request units, not requests: a write is one WRU per started KB of the item
# (the larger of its stored size before and after), a read half a RRU (eventually consistent) or one
# (strongly) per started 4 KB of the whole stored item whatever it projects, a transactional one twice
# that; secondary indexes add writes of their projected items. The counter estimates them from each
# request's body, its answer and the items it touches as stored before and after it.
DYNAMODB_TARGET = "DynamoDB_20120810."
CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/[^/]+/(?P<region>[^/]+)/[^/]+/aws4_request")
WRITE_UNIT_BYTES, READ_UNIT_BYTES = 1024, 4096
# Refusals DynamoDB still bills: the condition was evaluated against the stored item.
BILLED_REFUSALS = ("ConditionalCheckFailedException", "TransactionCanceledException")
Item = dict[str, Any]  # an item in DynamoDB's JSON wire format ({"name": {"S": "…"}, …})


def _binary_size(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, TypeError):
        return len(str(value).encode())


def number_size(text: str) -> int:
    """A number's bytes: one per two significant digits, plus one (DynamoDB's item-size rules)."""
    mantissa = str(text).lstrip("+-").split("e")[0].split("E")[0].replace(".", "")
    digits = len(mantissa.strip("0"))
    return (digits + 1) // 2 + 1


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes of one AttributeValue: strings and binaries by their length, numbers by their digits, a list or
    map 3 bytes plus 1 per element (and a map its element names), sets the sum of their members."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return _binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(member.encode()) for member in inner)
    if kind == "NS":
        return sum(number_size(member) for member in inner)
    if kind == "BS":
        return sum(_binary_size(member) for member in inner)
    if kind == "L":
        return 3 + sum(1 + attribute_size(member) for member in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + attribute_size(member) for name, member in inner.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Item | None) -> int:
    """An item's size as DynamoDB bills it: attribute names plus values (0 for no item)."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in (item or {}).items())


def write_units(size: int, transactional: bool = False) -> float:
    return max(1, -(-size // WRITE_UNIT_BYTES)) * (2 if transactional else 1)


def read_units(size: int, consistent: bool = False, transactional: bool = False) -> float:
    units = max(1, -(-size // READ_UNIT_BYTES))
    return units * 2 if transactional else units if consistent else units / 2


class StoredItems(Protocol):
    """One region's tables as the estimate reads them (the emulator's are MotoTables)."""

    def key_names(self, table: str) -> tuple[str, ...]: ...

    def indexes(self, table: str) -> list[tuple[tuple[str, ...], str, tuple[str, ...]]]:
        """(key attributes, ProjectionType, NonKeyAttributes) of each secondary index."""
        ...

    def get(self, table: str, key: Item) -> Item | None: ...


def _projected(item: Item | None, table_keys: tuple[str, ...], index: tuple[tuple[str, ...], str, tuple[str, ...]]
               ) -> Item | None:
    keys, projection, non_key = index
    if item is None or not all(name in item for name in keys):
        return None  # not in the index (sparse)
    if projection == "ALL":
        return item
    kept = set(table_keys) | set(keys) | (set(non_key) if projection == "INCLUDE" else set())
    return {name: value for name, value in item.items() if name in kept}


def index_write_units(before: Item | None, after: Item | None, table_keys: tuple[str, ...],
                      indexes: list[tuple[tuple[str, ...], str, tuple[str, ...]]]) -> float:
    """Writes an item change makes in the table's secondary indexes: none when its projection is unchanged,
    a delete and a put when its index key changed (billed as standard writes)."""
    units = 0.0
    for index in indexes:
        old, new = _projected(before, table_keys, index), _projected(after, table_keys, index)
        if old == new:
            continue
        if old is not None and new is not None and all(old[k] == new[k] for k in index[0]):
            units += write_units(max(item_size(old), item_size(new)))
        else:
            units += sum(write_units(item_size(image)) for image in (old, new) if image is not None)
    return units


class CapacityEstimate:
    """The request units one DynamoDB request consumes: created before the request is carried out (it reads the
    items it will touch as stored), `units` after (with the answer). Query and Scan are sized from the items
    they return (filtered-out items, which DynamoDB also bills, are not seen: a lower bound)."""

    def __init__(self, operation: str, request: dict[str, Any], tables: StoredItems):
        self.operation, self.request, self.tables = operation, request, tables
        # (table, key, kind): kind "write" | "transact_write" | "condition" | "read" | "consistent_read" | "transact_read"
        self.targets: list[tuple[str, Item, str]] = list(self._targets())
        self.before = [tables.get(table, key) for table, key, _ in self.targets]

    def _key(self, table: str, item: Item) -> Item:
        return {name: item[name] for name in self.tables.key_names(table) if name in item}

    def _targets(self) -> Iterable[tuple[str, Item, str]]:
        request, operation = self.request, self.operation
        if operation == "PutItem":
            yield request["TableName"], self._key(request["TableName"], request["Item"]), "write"
        elif operation in ("UpdateItem", "DeleteItem"):
            yield request["TableName"], request["Key"], "write"
        elif operation == "BatchWriteItem":
            for table, writes in request.get("RequestItems", {}).items():
                for write in writes:
                    if "PutRequest" in write:
                        yield table, self._key(table, write["PutRequest"]["Item"]), "write"
                    elif "DeleteRequest" in write:
                        yield table, write["DeleteRequest"]["Key"], "write"
        elif operation == "TransactWriteItems":
            for entry in request.get("TransactItems", []):
                (action, spec), = entry.items()
                key = self._key(spec["TableName"], spec["Item"]) if action == "Put" else spec["Key"]
                yield spec["TableName"], key, "condition" if action == "ConditionCheck" else "transact_write"
        elif operation == "GetItem":
            yield request["TableName"], request["Key"], "consistent_read" if request.get("ConsistentRead") else "read"
        elif operation == "BatchGetItem":
            for table, spec in request.get("RequestItems", {}).items():
                for key in spec.get("Keys", []):
                    yield table, key, "consistent_read" if spec.get("ConsistentRead") else "read"
        elif operation == "TransactGetItems":
            for entry in request.get("TransactItems", []):
                yield entry["Get"]["TableName"], entry["Get"]["Key"], "transact_read"

    def units(self, status: int, response: bytes) -> tuple[float, float]:
        """(write units, read units); nothing for a request refused before DynamoDB read anything."""
        if status != 200:
            answer = json.loads(response) if response[:1] == b"{" else {}
            if str(answer.get("__type", "")).rsplit("#", 1)[-1] not in BILLED_REFUSALS:
                return 0.0, 0.0
        if self.operation in ("Query", "Scan"):
            return 0.0, self._query_units(json.loads(response) if status == 200 else {})
        writes = reads = 0.0
        for (table, key, kind), before in zip(self.targets, self.before):
            if kind in ("write", "transact_write"):
                after = self.tables.get(table, key)
                writes += write_units(max(item_size(before), item_size(after)), kind == "transact_write")
                writes += index_write_units(before, after, self.tables.key_names(table), self.tables.indexes(table))
            else:
                reads += read_units(item_size(before), consistent=kind == "consistent_read",
                                    transactional=kind in ("transact_read", "condition"))
        return writes, reads

    def _query_units(self, answer: dict[str, Any]) -> float:
        table = self.request.get("TableName", "")
        # Items returned whole are sized as returned; projected ones are looked up whole (what DynamoDB reads).
        projected = "ProjectionExpression" in self.request or "AttributesToGet" in self.request or self.request.get(
            "Select") not in (None, "ALL_ATTRIBUTES")
        size = 0
        for returned in answer.get("Items", []):
            stored = None
            if projected:
                key = self._key(table, returned)
                stored = self.tables.get(table, key) if len(key) == len(self.tables.key_names(table)) else None
            size += item_size(stored or returned)
        return read_units(size, consistent=bool(self.request.get("ConsistentRead")))


class MotoTables:
    """The emulator's own DynamoDB tables in one region (read under the emulator's DynamoDB lock)."""

    def __init__(self, account_id: str, region: str):
        self.account_id, self.region = account_id, region

    def _table(self, name: str) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[self.account_id][self.region].get_table(name)

    def key_names(self, table: str) -> tuple[str, ...]:
        found = self._table(table)
        return (found.hash_key_attr,) + ((found.range_key_attr,) if found.range_key_attr else ())

    def indexes(self, table: str) -> list[tuple[tuple[str, ...], str, tuple[str, ...]]]:
        found = self._table(table)
        return [(tuple(index.schema_key_attrs), (index.projection or {}).get("ProjectionType", "ALL"),
                 tuple((index.projection or {}).get("NonKeyAttributes", [])))
                for index in list(found.global_indexes or []) + list(found.indexes or [])]

    def get(self, table: str, key: Item) -> Item | None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        from localdev.emulator.patches import DYNAMODB_LOCK

        names = self.key_names(table)
        if not all(name in key for name in names):
            return None
        with DYNAMODB_LOCK:
            found = self._table(table)
            item = found.get_item(DynamoType(key[names[0]]), DynamoType(key[names[1]]) if len(names) > 1 else None)
            return item.to_json()["Attributes"] if item is not None else None


class RequestCounter:
    """AWS API requests the emulator served, by caller (`clients` or `dataplane`) and `service.Operation`;
    and the clients' requests again by the application id in their User-Agent (`app/<id>`, botocore's
    AWS_SDK_UA_APP_ID), which the data plane sets to the function's name: what each function called.
    With `with_capacity`, also the DynamoDB request units they consumed (CapacityEstimate), the same ways."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, collections.Counter[str]] = {}
        self._by_app: dict[str, collections.Counter[str]] = {}
        # caller or app → "dynamodb.<Operation>" → Counter(write_units=…, read_units=…)
        self._units: dict[str, dict[str, collections.Counter[str]]] = {}
        self._units_by_app: dict[str, dict[str, collections.Counter[str]]] = {}

    @staticmethod
    def _callers(environ: dict[str, Any]) -> tuple[str, str | None]:
        """(caller, the clients' app id or None)."""
        user_agent = environ.get("HTTP_USER_AGENT", "")
        caller = "dataplane" if DATAPLANE_USER_AGENT in user_agent else "clients"
        app = USER_AGENT_APP_ID.search(user_agent)
        return caller, app[1] if app and caller == "clients" else None

    def record(self, environ: dict[str, Any]) -> None:
        caller, app = self._callers(environ)
        service, operation = aws_operation(environ)
        with self._lock:
            self._counts.setdefault(caller, collections.Counter())[f"{service}.{operation}"] += 1
            if app:
                self._by_app.setdefault(app, collections.Counter())[f"{service}.{operation}"] += 1

    def record_units(self, environ: dict[str, Any], operation: str, writes: float, reads: float) -> None:
        caller, app = self._callers(environ)
        with self._lock:
            for table, who in ((self._units, caller), (self._units_by_app, app)):
                if who is not None:
                    units = table.setdefault(who, {}).setdefault(f"dynamodb.{operation}", collections.Counter())
                    units["write_units"] += writes
                    units["read_units"] += reads

    def with_capacity(self, app: Callable[..., Iterable[bytes]],
                      tables: Callable[[str], StoredItems]) -> Callable[..., Iterable[bytes]]:
        """`app` with each DynamoDB request's estimated request units recorded (`tables(region)`: the items
        it touches). An estimate that fails is left out; the request itself is never affected."""

        def measured(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if not target.startswith(DYNAMODB_TARGET):
                return app(environ, start_response)
            operation = target[len(DYNAMODB_TARGET):]
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length) if length else b""
                environ["wsgi.input"] = io.BytesIO(body)
                region = CREDENTIAL_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
                estimate = CapacityEstimate(operation, json.loads(body or b"{}"),
                                            tables(region["region"] if region else DEFAULT_REGION))
            except Exception:  # noqa: BLE001 - an estimate must never fail the request
                estimate = None
            if estimate is None:
                return app(environ, start_response)
            statuses: list[str] = []

            def keep_status(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                statuses.append(status)
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            app_iter = app(environ, keep_status)
            try:
                response = b"".join(app_iter)
            finally:
                if hasattr(app_iter, "close"):
                    app_iter.close()
            try:
                writes, reads = estimate.units(int(statuses[0].split()[0]), response)
                self.record_units(environ, operation, writes, reads)
            except Exception:  # noqa: BLE001 - as above
                pass
            return [response]

        return measured

    def snapshot(self, by_app: bool = False, units: bool = False) -> dict[str, dict[str, Any]]:
        """Requests by caller (or app) and operation; with `units`, the DynamoDB request units instead."""
        with self._lock:
            if units:
                table = self._units_by_app if by_app else self._units
                return {who: {op: {"write_units": round(c["write_units"], 1), "read_units": round(c["read_units"], 1)}
                              for op, c in sorted(ops.items())} for who, ops in sorted(table.items())}
            counts = self._by_app if by_app else self._counts
            return {caller: dict(sorted(c.items())) for caller, c in sorted(counts.items())}

    def reset(self) -> None:
        with self._lock:
            self._counts, self._by_app, self._units, self._units_by_app = {}, {}, {}, {}


SDK_ATTEMPT = re.compile(r"attempt=(\d+)")


class _Served:
    """One request's response as first served: filled in once, awaited by retries that arrive meanwhile."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: bytes | None = None  # None: not replayable (an error, or too large to keep)


class RetriedRequests:
    """A retry of a request the emulator already carried out gets the first attempt's response again.

    The AWS SDKs retry a call whose connection failed before the response was read (reset, EOF), under
    the same `amz-sdk-invocation-id` header with `amz-sdk-request: attempt=N`. When the first attempt
    had already been carried out here, the retry of a create then fails where AWS would not: Terraform's
    CreateRole retried after a reset got 409 EntityAlreadyExists and the whole apply failed (seen in CI;
    a reset connection every few applies on this 2-core machine, cause outside moto's logs). So every
    successful (2xx/3xx) response is kept by invocation id — the most recent ones, within `budget_bytes`
    (a retry comes within seconds) — and a retry of one is answered with it instead of being carried out again; a
    retry arriving while the first attempt still runs waits for it. Error responses are never replayed:
    a throttled or failed call retried must run again, as in AWS.
    """

    def __init__(self, budget_bytes: int = 32 << 20, wait_seconds: float = 300) -> None:
        self._budget_bytes = budget_bytes
        self._kept_bytes = 0
        self._wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._served: collections.OrderedDict[str, _Served] = collections.OrderedDict()
        self.replayed = 0

    def __call__(self, app: Callable[..., Iterable[bytes]], environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        invocation_id = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation_id:
            return app(environ, start_response)
        attempt = SDK_ATTEMPT.search(environ.get("HTTP_AMZ_SDK_REQUEST", ""))
        with self._lock:
            earlier = self._served.get(invocation_id)
        if earlier is not None and attempt and int(attempt[1]) > 1:
            earlier.done.wait(self._wait_seconds)
            if earlier.body is not None:
                with self._lock:
                    self.replayed += 1
                start_response(earlier.status, earlier.headers)
                return [earlier.body]
        # Carried out (again): this attempt's response is the one a later retry gets.
        served = _Served()
        with self._lock:
            replaced = self._served.pop(invocation_id, None)
            if replaced is not None and replaced.done.is_set():
                self._kept_bytes -= len(replaced.body or b"") + 100
            self._served[invocation_id] = served
        return self._serve_and_keep(app, environ, start_response, invocation_id, served)

    def _serve_and_keep(self, app: Callable[..., Iterable[bytes]], environ: dict[str, Any],
                        start_response: StartResponse, invocation_id: str, served: _Served) -> Iterable[bytes]:
        def keep_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            served.status, served.headers = status, list(headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            app_iter = app(environ, keep_start_response)
            try:
                body = b"".join(app_iter)
            finally:
                if hasattr(app_iter, "close"):
                    app_iter.close()
            if served.status and served.status[:1] in "23" and len(body) <= self._budget_bytes // 4:
                served.body = body
            return [body]
        finally:
            self._finish(invocation_id, served)

    def _finish(self, invocation_id: str, served: _Served) -> None:
        """Count a finished entry (done ⇔ counted, while kept) and drop the oldest beyond the byte budget
        (100 bytes stand for an entry's own overhead); then wake the retries waiting for it."""
        with self._lock:
            if self._served.get(invocation_id) is served:  # not evicted or replaced while it ran
                self._kept_bytes += len(served.body or b"") + 100
                while self._kept_bytes > self._budget_bytes and self._served:
                    _, oldest = self._served.popitem(last=False)
                    if oldest is served or oldest.done.is_set():
                        self._kept_bytes -= len(oldest.body or b"") + 100
            served.done.set()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def _not_found(message: str) -> Response:
    return _json(404, {"error": "not_found", "message": message})


class LocalDevExtensions:
    """Answers `/_localdev/*` and Lambda Invoke; hands every other request to moto unchanged."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], account_id: str):
        self.app = app
        self.account_id = account_id
        self.instance_id = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._invoke_url: str | None = None
        self.requests = RequestCounter()
        # DynamoDB request units per request (GET /_localdev/requests?units=capacity), from moto's own tables.
        self.app = self.requests.with_capacity(app, lambda region: MotoTables(account_id, region))
        self.retries = RetriedRequests()
        # Imported here: faults.py builds on this module's user-agent markers (chaos drills only; all off at start).
        from localdev.emulator.faults import FaultSwitches

        self.faults = FaultSwitches(account_id)

    @property
    def invoke_url(self) -> str | None:
        with self._lock:
            return self._invoke_url

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_localdev/"):
            response = self._extension(Request(environ), path)
        elif environ.get("REQUEST_METHOD") == "POST" and INVOKE_PATH.fullmatch(path):
            self.requests.record(environ)
            response = self._forward_invoke(Request(environ))
        else:
            self.requests.record(environ)
            # Faults inside: a partial PutEvents failure is the answer a retried attempt replays; a throttle never is.
            return self.retries(lambda env, respond: self.faults(env, respond, self.app), environ, start_response)
        return response(environ, start_response)

    def _extension(self, request: Request, path: str) -> Response:
        region = request.args.get("region", DEFAULT_REGION)
        if path == "/_localdev/health" and request.method == "GET":
            return _json(200, {"status": "ok", "instance_id": self.instance_id, "replayed_retries": self.retries.replayed})
        if path == "/_localdev/requests":
            if request.method == "GET":
                return _json(200, {"requests": self.requests.snapshot(by_app=request.args.get("by") == "app",
                                                                      units=request.args.get("units") == "capacity")})
            if request.method == "DELETE":
                self.requests.reset()
                return _json(200, {"requests": {}})
        if path == "/_localdev/faults":
            return self.faults.endpoint(request)
        if path == "/_localdev/dataplane":
            if request.method == "POST":
                return self._register_dataplane(request)
            if request.method == "GET":
                return _json(200, {"invoke_url": self.invoke_url})
        if request.method == "GET" and (match := FUNCTION_CODE_PATH.fullmatch(path)):
            return self._function_code(match["name"], region)
        if request.method == "GET" and (match := LAYER_CONTENT_PATH.fullmatch(path)):
            return self._layer_content(match["name"], match["version"], region)
        return _not_found(f"no local extension {request.method} {path}: see docs/local-platform.md")

    def _lambda_backend(self, region: str) -> Any:
        from moto.awslambda.models import lambda_backends

        return lambda_backends[self.account_id][region]

    def _function_code(self, name: str, region: str) -> Response:
        from moto.awslambda.exceptions import UnknownFunctionException

        try:
            function = self._lambda_backend(region).get_function(name)
        except UnknownFunctionException:
            return _not_found(f"no Lambda function {name!r} in {region}: apply terraform/environments/local first")
        return Response(
            function.code_bytes,
            mimetype="application/zip",
            headers={"X-Code-Sha256": function.code_sha_256},
        )

    def _layer_content(self, name: str, version: str, region: str) -> Response:
        from moto.awslambda.exceptions import UnknownLayerException

        try:
            layer_version = self._lambda_backend(region).get_layer_version(name, int(version))
        except (UnknownLayerException, ValueError):
            return _not_found(f"no version {version!r} of Lambda layer {name!r} in {region}")
        return Response(
            layer_version.code_bytes,
            mimetype="application/zip",
            headers={"X-Code-Sha256": layer_version.code_sha_256},
        )

    def _register_dataplane(self, request: Request) -> Response:
        # An empty body, a null or an empty invoke_url all unregister.
        body = request.get_json(force=True, silent=True) if request.get_data().strip() else {}
        url = body.get("invoke_url") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not (url is None or isinstance(url, str)):
            return _json(400, {"error": "bad_request", "message": 'send {"invoke_url": "http://host:port"} (or null to unregister)'})
        if url and (urlsplit(url).scheme != "http" or not urlsplit(url).hostname):
            return _json(400, {"error": "bad_request", "message": f"invoke_url {url!r} must be http://host:port"})
        with self._lock:
            self._invoke_url = url.rstrip("/") if url else None
        return _json(200, {"invoke_url": self.invoke_url})

    def _forward_invoke(self, request: Request) -> Response:
        """Pass an Invoke to the data plane as received, and its answer back, so boto3 sees Lambda's own reply."""
        invoke_url = self.invoke_url
        if not invoke_url:
            return self._no_dataplane("none")
        target = urlsplit(invoke_url)
        # The path and query exactly as the client sent them (werkzeug keeps them in RAW_URI).
        raw_path = request.environ.get("RAW_URI") or request.full_path.rstrip("?")
        headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=FORWARD_TIMEOUT_S)
        try:
            connection.request("POST", raw_path, body=request.get_data(), headers=headers)
            reply = connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException):
            return self._no_dataplane(invoke_url)
        finally:
            connection.close()
        reply_headers = [(name, value) for name, value in reply.getheaders() if name.lower() not in HOP_BY_HOP]
        return Response(body, status=reply.status, headers=reply_headers)

    @staticmethod
    def _no_dataplane(where: str) -> Response:
        # A service-side failure in AWS's shape, so boto3 raises ClientError(ServiceException) with this message.
        message = f"no Lambda data plane is running at {where}: start the local stack with `make local-up`"
        return _json(502, {"Type": "Service", "message": message}, headers={"x-amzn-ErrorType": "ServiceException"})
