"""The Lambda Invoke API (as AWS answers it) and the data plane's control endpoints, on one port.

- `POST /2015-03-31/functions/<name|arn>/invocations` with `X-Amz-Invocation-Type` RequestResponse
  (default), Event (202; runs in the background, no retries) or DryRun (204).
- `POST /_dataplane/reload` re-discovers everything; `GET /_dataplane/status` reports it.
- Chaos drills (localdev.dataplane.chaos): `POST /_dataplane/chaos/kill-worker` `{"function", "when":
  "now" | "next-invocation", "after_ms"?, "count"?}` kills a worker mid-invocation; `GET /_dataplane/chaos`
  shows armed kills and kill counts; `DELETE /_dataplane/chaos` disarms what is still armed.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import unquote, urlsplit

from localdev.dataplane.workers import FunctionNotFound, FunctionRegistry

log = logging.getLogger("localdev.dataplane")

ACCOUNT_ID = "000000000000"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
MAX_EVENT_PAYLOAD_BYTES = 256 * 1024  # ... and the asynchronous one
_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"


class InvokeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets bursts of concurrent clients (a load test's 50).
    request_queue_size = 256
    block_on_close = False

    def __init__(self, address: tuple[str, int], registry: FunctionRegistry,
                 reload: Callable[[], dict], status: Callable[[], dict]):
        super().__init__(address, _Handler)
        self.registry = registry
        self.reload = reload
        self.status = status
        self.background = ThreadPoolExecutor(max_workers=8, thread_name_prefix="invoke-event")
        self._thread = threading.Thread(target=self.serve_forever, name="invoke-api", daemon=True)

    def handle_error(self, request, client_address) -> None:
        # A peer going away (a killed worker, a client that hung up) is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.background.shutdown(wait=False, cancel_futures=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: InvokeApiServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002
        log.debug("invoke-api %s", format % args)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + body)
        self._headers_buffer = []

    def _json(self, status: int, doc: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(doc, indent=1).encode(), headers)

    def _aws_error(self, status: int, error_type: str, message: str, request_id: str) -> None:
        self._json(status, {"Type": "User", "message": message},
                   {"x-amzn-ErrorType": error_type, "x-amzn-RequestId": request_id})

    def do_GET(self) -> None:
        self._drain_body()
        if urlsplit(self.path).path == "/_dataplane/status":
            return self._json(200, self.server.status())
        if urlsplit(self.path).path == "/_dataplane/chaos":
            return self._json(200, self.server.registry.chaos.status())
        self._json(404, {"message": f"no route GET {self.path}: see docs/local-platform.md"})

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_dataplane/reload":
            self._drain_body()
            try:
                return self._json(200, self.server.reload())
            except Exception as exc:  # noqa: BLE001 - report to the caller, keep serving the previous state
                log.exception("reload failed")
                return self._json(500, {"message": f"reload failed: {exc}"})
        if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
            return self._invoke(unquote(path[len(_PREFIX) : -len(_SUFFIX)]))
        if path == "/_dataplane/chaos/kill-worker":
            return self._kill_worker()
        self._drain_body()
        self._json(404, {"message": f"no route POST {self.path}: see docs/local-platform.md"})

    def do_DELETE(self) -> None:
        self._drain_body()
        if urlsplit(self.path).path == "/_dataplane/chaos":
            self.server.registry.chaos.disarm()
            return self._json(200, self.server.registry.chaos.status())
        self._json(404, {"message": f"no route DELETE {self.path}: see docs/local-platform.md"})

    def _kill_worker(self) -> None:
        """Kill a function's worker mid-invocation (localdev.dataplane.chaos): `now`, or the next invocation(s)."""
        try:
            body = json.loads(self._drain_body() or b"{}")
        except ValueError:
            body = None
        usage = ('send {"function": "<name>", "when": "now" | "next-invocation", "after_ms": <ms into the '
                 'invocation, default 0>, "count": <next invocations to kill, default 1>}')
        if not isinstance(body, dict) or body.get("when") not in ("now", "next-invocation") \
                or not isinstance(body.get("function"), str) or set(body) - {"function", "when", "after_ms", "count"}:
            return self._json(400, {"message": usage})
        after_ms, count = body.get("after_ms", 0), body.get("count", 1)
        if isinstance(after_ms, bool) or not isinstance(after_ms, (int, float)) or after_ms < 0 \
                or isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return self._json(400, {"message": f"after_ms must be >= 0 and count an integer >= 1: {usage}"})
        chaos = self.server.registry.chaos
        try:
            pool = self.server.registry.pool(body["function"])
        except FunctionNotFound:
            return self._json(404, {"error": "function_not_found",
                                    "message": f"no function {body['function']!r} in the data plane"})
        name = pool.spec.name
        if body["when"] == "next-invocation":
            chaos.kill_next(name, after_ms / 1000, count)
            return self._json(202, {"armed": chaos.status()["armed"].get(name, 0), "function": name})
        kill = chaos.kill_now(name, pool)
        if kill is None:
            return self._json(409, {"message": f"no invocation of {name} is running now: use "
                                               f'"when": "next-invocation" to kill the next one'})
        return self._json(200, {"killed": kill})

    def _drain_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _invoke(self, function: str) -> None:
        request_id = str(uuid.uuid4())
        payload = self._drain_body()
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            pool = self.server.registry.pool(function)
        except FunctionNotFound:
            registry = self.server.registry
            arn_note = function if function.startswith("arn:") else (
                f"arn:aws:lambda:{registry.region}:{ACCOUNT_ID}:function:{function}")
            return self._aws_error(404, "ResourceNotFoundException", f"Function not found: {arn_note}", request_id)
        limit = MAX_EVENT_PAYLOAD_BYTES if invocation_type == "Event" else MAX_PAYLOAD_BYTES
        if len(payload) > limit:
            return self._aws_error(413, "RequestTooLargeException",
                                   f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                                   request_id)
        if payload:
            try:
                json.loads(payload)
            except ValueError:
                return self._aws_error(400, "InvalidRequestContentException",
                                       "Could not parse request body into json: send a JSON document", request_id)
        if pool.cap == 0:  # reserved concurrency 0: AWS throttles every invocation
            return self._json(429, {"Type": "User", "message": "Rate Exceeded.",
                                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
                              {"x-amzn-ErrorType": "TooManyRequestsException", "x-amzn-RequestId": request_id})
        common = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": "$LATEST"}
        if invocation_type == "DryRun":
            return self._send(204, b"", common)
        if invocation_type == "Event":
            self.server.background.submit(pool.invoke, payload or b"{}", request_id)
            return self._send(202, b"", common)
        if invocation_type != "RequestResponse":
            return self._aws_error(400, "InvalidParameterValueException",
                                   f"X-Amz-Invocation-Type {invocation_type!r}: use RequestResponse, Event or DryRun",
                                   request_id)
        result = pool.invoke(payload or b"{}", request_id)
        headers = dict(common)
        if not result.ok:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self._send(200, result.payload, headers)
