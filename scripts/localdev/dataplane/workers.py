"""Function workers: one awslambdaric process per execution environment, pooled per function.

A worker is cold-started on first use and then reused (warm). At most the function's reserved
concurrency workers run an invocation at once; without reserved concurrency the cap is
DEFAULT_CONCURRENCY (4 — this machine has 2 cores; AWS's account limit is 1,000). Extra invocations
wait for a free worker. When a function's code or configuration changes, new invocations go to a new
pool and the old one is drained: idle workers stop now, busy ones when their invocation ends.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from localdev.dataplane.artifacts import SITE_PACKAGES, ArtifactError, ArtifactStore
from localdev.dataplane.chaos import WorkerKiller
from localdev.dataplane.discovery import FunctionSpec
from localdev.dataplane.runtime_api import Invocation, RuntimeApiServer
from localdev.dataplane.types import InvokeResult

log = logging.getLogger("localdev.dataplane")

DEFAULT_CONCURRENCY = 4
INIT_TIMEOUT_S = 10.0  # Lambda's limit for the init phase of an on-demand function
BOOTSTRAP = str(Path(__file__).with_name("bootstrap.py"))


class FunctionNotFound(KeyError):
    pass


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _lang() -> str:
    """Lambda's LANG if this machine has that locale; else C.UTF-8, so Python does not coerce the C locale
    by adding LC_CTYPE to the function's environment."""
    import locale

    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "en_US.UTF-8")
        return "en_US.UTF-8"
    except locale.Error:
        return "C.UTF-8"
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)


LANG = _lang()


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


class FunctionLog:
    """`<state>/logs/<function>.log`: the workers write their stdout/stderr to it directly (O_APPEND), the
    data plane adds CloudWatch's START/END/REPORT lines around each invocation."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def line(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())

    def close(self) -> None:
        os.close(self.fd)


class Worker:
    def __init__(self, spec: FunctionSpec, task_root: Path, paths: list[str], env: dict[str, str], flog: FunctionLog):
        self.spec = spec
        self.api = RuntimeApiServer()
        self.api.start()
        self.log_stream = f"{datetime.now(timezone.utc):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        env = {
            **env,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
        }
        self.started = time.monotonic()
        self.cold = True
        self.current: Invocation | None = None  # the invocation it runs now (chaos kills pick a busy worker)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", BOOTSTRAP, spec.handler, *paths],
            env=env,
            cwd=task_root,
            stdin=subprocess.DEVNULL,
            stdout=flog.fd,
            stderr=flog.fd,
        )
        self._monitor = threading.Thread(target=self._watch, name=f"worker-{spec.name}", daemon=True)
        self._monitor.start()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _watch(self) -> None:
        code = self.proc.wait()
        status = f"signal: {_signal_name(-code)}" if code < 0 else f"exit status {code}"
        self.api.fail_all(
            "Runtime.ExitError",
            lambda inv: f"RequestId: {inv.request_id} Error: Runtime exited with error: {status}",
        )
        self.api.stop()

    def run(self, inv: Invocation) -> None:
        """Hand `inv` to the runtime and wait for its outcome; kills the worker on timeout."""
        self.api.submit(inv)
        if not inv.changed.wait(INIT_TIMEOUT_S if self.cold else 1.0 + inv.timeout_s):
            self.kill()
            inv.finish(False, _error("Runtime.InitError", f"INIT timed out after {INIT_TIMEOUT_S:.2f} seconds"),
                       "Runtime.InitError")
            return
        self.cold = False
        if inv.delivered_at is not None and not inv.done.wait(max(0.0, inv.delivered_at + inv.timeout_s - time.monotonic())):
            stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            message = f"{stamp} {inv.request_id} Task timed out after {inv.timeout_s:.2f} seconds"
            if inv.finish(False, _error("Sandbox.Timedout", message), "Sandbox.Timedout"):
                self.kill()
        inv.done.wait()

    def max_memory_mb(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        self.proc.wait()
        self._monitor.join(timeout=5)


def _signal_name(num: int) -> str:
    """As Lambda words it (Go's signal strings): `killed`, `segmentation fault`, `aborted`, `terminated`."""
    import signal

    try:
        return (signal.strsignal(num) or str(num)).lower()
    except ValueError:
        return str(num)


@dataclass
class _Stats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    last_error: str | None = None


class FunctionPool:
    """The execution environments of one version (code sha + configuration) of one function."""

    def __init__(self, spec: FunctionSpec, artifacts: ArtifactStore, endpoint: str, region: str, flog: FunctionLog,
                 default_concurrency: int = DEFAULT_CONCURRENCY, chaos: WorkerKiller | None = None):
        self.spec = spec
        self.chaos = chaos
        self.flog = flog
        self.stats = _Stats()
        self.cap = spec.reserved_concurrency if spec.reserved_concurrency is not None else default_concurrency
        self._slots = threading.BoundedSemaphore(max(self.cap, 1))
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._lock = threading.Lock()
        self.draining = False
        self.setup_error: str | None = None
        try:
            self.task_root = artifacts.task_root(spec)
            layer_paths = [p for layer in spec.layers for p in artifacts.layer_paths(layer)]
        except ArtifactError as exc:
            self.setup_error = str(exc)
            log.error("%s", exc)
            return
        # Lambda's order: task root, layers, then the runtime's own packages (here: this environment's).
        self.paths = list(dict.fromkeys([str(self.task_root), *layer_paths, SITE_PACKAGES]))
        self.env = {
            **dict(spec.env),
            "AWS_ENDPOINT_URL": dict(spec.env).get("AWS_ENDPOINT_URL", endpoint),
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "test",
            # In AWS a function's requests are signed with its role's credentials; here the function's name in
            # the User-Agent (`app/<name>`) lets the emulator tell which function made which request.
            "AWS_SDK_UA_APP_ID": dict(spec.env).get("AWS_SDK_UA_APP_ID", spec.name),
            "AWS_SECRET_ACCESS_KEY": "test",
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "LAMBDA_RUNTIME_DIR": SITE_PACKAGES,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "TZ": ":UTC",
            "LANG": LANG,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }

    def invoke(self, payload: bytes, request_id: str | None = None) -> InvokeResult:
        request_id = request_id or str(uuid.uuid4())
        if self.setup_error:
            return self._count(InvokeResult(False, _error("Runtime.InvalidEntrypoint", self.setup_error),
                                            "Runtime.InvalidEntrypoint"))
        if self.cap == 0:
            return self._count(InvokeResult(False, _error("TooManyRequestsException", "Rate Exceeded."),
                                            "TooManyRequestsException"))
        with self._slots:
            worker = self._checkout()
            cold = worker.cold
            inv = Invocation(request_id, payload, self.spec.arn, _trace_id(), float(self.spec.timeout))
            self.flog.line(f"START RequestId: {request_id} Version: $LATEST")
            started = time.monotonic()
            if self.chaos is not None:
                self.chaos.watch(self.spec.name, worker, inv)
            worker.current = inv
            try:
                worker.run(inv)
            finally:
                worker.current = None
            duration_ms = ((time.monotonic() - (inv.delivered_at or started)) * 1000)
            init = f"\tInit Duration: {(inv.delivered_at - worker.started) * 1000:.2f} ms" if cold and inv.delivered_at else ""
            self.flog.line(f"END RequestId: {request_id}")
            self.flog.line(
                f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: "
                f"{int(duration_ms) + 1} ms\tMemory Size: {self.spec.memory_size} MB\t"
                f"Max Memory Used: {worker.max_memory_mb()} MB{init}"
            )
            self._checkin(worker)
            if cold:
                self.stats.cold_starts += 1
            return self._count(InvokeResult(inv.ok, inv.body, inv.error_type, duration_ms))

    def _count(self, result: InvokeResult) -> InvokeResult:
        with self._lock:
            self.stats.invocations += 1
            if not result.ok:
                self.stats.errors += 1
                self.stats.last_error = result.error_type
        return result

    def _checkout(self) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._all.discard(worker)
            worker = Worker(self.spec, self.task_root, self.paths, self.env, self.flog)
            self._all.add(worker)
            return worker

    def _checkin(self, worker: Worker) -> None:
        with self._lock:
            if worker.alive and not self.draining:
                self._idle.append(worker)
                return
            self._all.discard(worker)
        worker.kill()

    def drain(self) -> None:
        """Stop idle workers now; busy ones stop when their invocation returns."""
        with self._lock:
            self.draining = True
            idle, self._idle = self._idle, []
            for worker in idle:
                self._all.discard(worker)
        for worker in idle:
            worker.kill()

    def stop(self) -> None:
        self.drain()
        with self._lock:
            busy = list(self._all)
        for worker in busy:
            worker.kill()

    def busy_workers(self) -> list[Worker]:
        """Workers running an invocation their runtime has picked up."""
        with self._lock:
            workers = list(self._all)
        return [w for w in workers if w.alive and (inv := w.current) is not None and inv.delivered_at is not None]

    def status(self) -> dict:
        with self._lock:
            workers = [{"pid": w.proc.pid, "alive": w.alive, "idle": w in self._idle} for w in self._all]
        return {
            "name": self.spec.name,
            "arn": self.spec.arn,
            "code_sha256": self.spec.code_sha256,
            "handler": self.spec.handler,
            "concurrency_cap": self.cap,
            "workers": workers,
            "invocations": self.stats.invocations,
            "errors": self.stats.errors,
            "cold_starts": self.stats.cold_starts,
            "last_error": self.stats.last_error,
            "setup_error": self.setup_error,
        }


@dataclass
class FunctionRegistry:
    """All functions the data plane runs; `invoke` is the callable event source pollers are given."""

    artifacts: ArtifactStore
    endpoint: str
    region: str
    logs_dir: Path
    default_concurrency: int = DEFAULT_CONCURRENCY
    chaos: WorkerKiller = field(default_factory=WorkerKiller)  # kill-worker drills (localdev.dataplane.chaos)
    _pools: dict[str, FunctionPool] = field(default_factory=dict)
    _logs: dict[str, FunctionLog] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync(self, specs: list[FunctionSpec]) -> dict:
        """Adopt the discovered functions: unchanged ones keep their warm workers; changed ones get a new pool."""
        summary = {"added": [], "updated": [], "unchanged": [], "removed": []}
        wanted = {spec.name: spec for spec in specs}
        retired: list[FunctionPool] = []
        for name, spec in wanted.items():
            current = self._pools.get(name)
            if current is not None and current.spec == spec and not current.setup_error:
                summary["unchanged"].append(name)
                continue
            flog = self._logs.get(name) or FunctionLog(self.logs_dir / f"{name}.log")
            pool = FunctionPool(spec, self.artifacts, self.endpoint, self.region, flog, self.default_concurrency,
                                self.chaos)
            with self._lock:
                self._logs[name] = flog
                old, self._pools[name] = self._pools.get(name), pool
            if old is not None:
                retired.append(old)
            summary["updated" if old is not None else "added"].append(name)
        with self._lock:
            for name in [n for n in self._pools if n not in wanted]:
                retired.append(self._pools.pop(name))
                summary["removed"].append(name)
        for pool in retired:
            pool.drain()
        return summary

    def pool(self, function_name_or_arn: str) -> FunctionPool:
        name = function_name_or_arn
        if name.startswith("arn:"):
            name = name.split(":")[6]  # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        elif ":function:" in name:
            name = name.split(":function:")[1].split(":")[0]
        else:
            name = name.split(":")[0]  # name:qualifier
        with self._lock:
            pool = self._pools.get(name)
        if pool is None:
            raise FunctionNotFound(function_name_or_arn)
        return pool

    def invoke(self, function_name_or_arn: str, payload: bytes) -> InvokeResult:
        return self.pool(function_name_or_arn).invoke(payload)

    def function_arns(self) -> list[str]:
        with self._lock:
            return [pool.spec.arn for pool in self._pools.values()]

    def status(self) -> list[dict]:
        with self._lock:
            pools = list(self._pools.values())
        return [pool.status() for pool in pools]

    def stop(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.stop()
