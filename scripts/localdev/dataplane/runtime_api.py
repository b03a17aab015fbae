"""The Lambda Runtime API one worker process talks to (what AWS calls the "rapid" endpoint).

One server per worker, bound to an ephemeral port on 127.0.0.1: awslambdaric polls
`GET /2018-06-01/runtime/invocation/next`, which blocks until `submit()` hands it an invocation,
and posts the outcome to `…/invocation/<id>/response` or `…/<id>/error` (or `…/init/error` when
the handler cannot even be loaded). HTTP/1.1 keep-alive with Content-Length, as the native client expects.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Invocation:
    """One request travelling through a worker; `finish` is first-writer-wins (response, error, crash, timeout)."""

    def __init__(self, request_id: str, payload: bytes, function_arn: str, trace_id: str, timeout_s: float):
        self.request_id = request_id
        self.payload = payload
        self.function_arn = function_arn
        self.trace_id = trace_id
        self.timeout_s = timeout_s
        self.delivered_at: float | None = None  # time.monotonic() when the runtime picked it up
        self.changed = threading.Event()  # set on delivery and on finish
        self.done = threading.Event()
        self.ok = False
        self.body = b""
        self.error_type: str | None = None
        self._lock = threading.Lock()

    def mark_delivered(self) -> None:
        self.delivered_at = time.monotonic()
        self.changed.set()

    def finish(self, ok: bool, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            if self.done.is_set():
                return False
            self.ok, self.body, self.error_type = ok, body, error_type
            self.done.set()
            self.changed.set()
            return True


class RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._pending: queue.Queue[Invocation | None] = queue.Queue()
        self._current: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self.init_error: bytes | None = None
        self._thread = threading.Thread(target=self.serve_forever, name="runtime-api", daemon=True)

    def handle_error(self, request, client_address) -> None:
        # A peer going away (a killed worker, a client that hung up) is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._pending.put(None)  # releases a blocked /next
        self.shutdown()
        self.server_close()

    def submit(self, invocation: Invocation) -> None:
        with self._lock:
            self._current[invocation.request_id] = invocation
        self._pending.put(invocation)

    def fail_all(self, error_type: str, message_for: Callable[[Invocation], str]) -> None:
        """Finish every invocation this worker still owes an answer to (the process died or was killed)."""
        with self._lock:
            owed = list(self._current.values())
            self._current.clear()
        for inv in owed:
            inv.finish(False, _error_doc(error_type, message_for(inv)), error_type)

    # -- called from request handler threads --
    def next_invocation(self) -> Invocation | None:
        inv = self._pending.get()
        if inv is not None:
            inv.mark_delivered()
        return inv

    def complete(self, request_id: str, ok: bool, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            inv = self._current.pop(request_id, None)
        return inv is not None and inv.finish(ok, body, error_type)

    def fail_init(self, body: bytes, error_type: str) -> None:
        self.init_error = body
        with self._lock:
            owed = list(self._current.values())
            self._current.clear()
        for inv in owed:
            inv.finish(False, body, error_type)


def _error_doc(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_type_of(body: bytes, header: str | None) -> str:
    try:
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("errorType"):
            return str(doc["errorType"])
    except ValueError:
        pass
    return header or "Unhandled"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApiServer

    def log_message(self, format, *args):  # noqa: A002 - the worker's log gets the function's output only
        pass

    def setup(self) -> None:
        super().setup()
        # Small request/response pairs on a keep-alive connection: without this, Nagle + delayed ACK
        # add ~40 ms to every invocation.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        # One write for headers and body (end_headers would flush the headers on their own).
        self._headers_buffer.append(b"\r\n")
        self.wfile.write(b"".join(self._headers_buffer) + body)
        self._headers_buffer = []

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            return self._reply(404, b'{"errorMessage":"not found"}')
        inv = self.server.next_invocation()
        if inv is None:  # server stopping
            self.close_connection = True
            return self._reply(503)
        deadline_ms = int((time.time() + inv.timeout_s) * 1000)
        self._reply(
            200,
            inv.payload,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": inv.function_arn,
                "Lambda-Runtime-Trace-Id": inv.trace_id,
            },
        )

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path
        error_header = self.headers.get("Lambda-Runtime-Function-Error-Type")
        if path == f"{PREFIX}/init/error":
            self.server.fail_init(body, _error_type_of(body, error_header))
            return self._reply(202, b'{"status":"OK"}')
        parts = path[len(PREFIX) :].split("/") if path.startswith(PREFIX) else []
        # ["", "invocation", "<id>", "response" | "error"]
        if len(parts) == 4 and parts[1] == "invocation" and parts[3] in ("response", "error"):
            request_id, outcome = parts[2], parts[3]
            if outcome == "response":
                self.server.complete(request_id, True, body, None)
            else:
                self.server.complete(request_id, False, body, _error_type_of(body, error_header))
            return self._reply(202, b'{"status":"OK"}')
        self._reply(404, b'{"errorMessage":"not found"}')
