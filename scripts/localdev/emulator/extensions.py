"""The `/_localdev/` endpoints and Lambda Invoke forwarding, as WSGI middleware around moto's app.

Contract: docs/local-platform.md ("Emulator extensions"). Platform code never calls these; the data
plane and the stack tooling do.
"""

from __future__ import annotations

import collections
import http.client
import io
import json
import re
import threading
import uuid
from typing import Any, Callable, Iterable
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


class RequestCounter:
    """AWS API requests the emulator served, by caller (`clients` or `dataplane`) and `service.Operation`;
    and the clients' requests again by the application id in their User-Agent (`app/<id>`, botocore's
    AWS_SDK_UA_APP_ID), which the data plane sets to the function's name: what each function called."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, collections.Counter[str]] = {}
        self._by_app: dict[str, collections.Counter[str]] = {}

    def record(self, environ: dict[str, Any]) -> None:
        user_agent = environ.get("HTTP_USER_AGENT", "")
        caller = "dataplane" if DATAPLANE_USER_AGENT in user_agent else "clients"
        service, operation = aws_operation(environ)
        app = USER_AGENT_APP_ID.search(user_agent)
        with self._lock:
            self._counts.setdefault(caller, collections.Counter())[f"{service}.{operation}"] += 1
            if app and caller == "clients":
                self._by_app.setdefault(app[1], collections.Counter())[f"{service}.{operation}"] += 1

    def snapshot(self, by_app: bool = False) -> dict[str, dict[str, int]]:
        with self._lock:
            counts = self._by_app if by_app else self._counts
            return {caller: dict(sorted(c.items())) for caller, c in sorted(counts.items())}

    def reset(self) -> None:
        with self._lock:
            self._counts, self._by_app = {}, {}


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
        self.retries = RetriedRequests()

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
            return self.retries(self.app, environ, start_response)
        return response(environ, start_response)

    def _extension(self, request: Request, path: str) -> Response:
        region = request.args.get("region", DEFAULT_REGION)
        if path == "/_localdev/health" and request.method == "GET":
            return _json(200, {"status": "ok", "instance_id": self.instance_id, "replayed_retries": self.retries.replayed})
        if path == "/_localdev/requests":
            if request.method == "GET":
                return _json(200, {"requests": self.requests.snapshot(by_app=request.args.get("by") == "app")})
            if request.method == "DELETE":
                self.requests.reset()
                return _json(200, {"requests": {}})
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
