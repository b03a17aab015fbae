"""Chaos drills on the data plane: kill a function's worker process in the middle of an invocation.

SIGKILL, as when a Lambda sandbox crashes (out of memory, a segfault in a native library): the runtime
never answers, the data plane reports `Runtime.ExitError` ("Runtime exited with error: signal: killed")
as Lambda does, and whatever invoked the function applies its own retry semantics — an SQS batch comes
back after the queue's visibility timeout, a Kinesis or DynamoDB stream batch is retried, a synchronous
caller gets the function error. The next invocation gets a fresh worker (a cold start).

- `kill_next(function, after_s, count)`: the next `count` invocations of the function are killed `after_s`
  seconds after their worker picked them up (0: as soon as the handler starts). An invocation that ends
  before its moment is not killed; the kill waits for the next one.
- `kill_now(function, pool)`: kill one worker that is running an invocation now; None when none is.
Control: `POST /_dataplane/chaos/kill-worker`, `GET` / `DELETE /_dataplane/chaos` (invoke_api.py).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localdev.dataplane.runtime_api import Invocation
    from localdev.dataplane.workers import FunctionPool, Worker

log = logging.getLogger("localdev.dataplane")

RECENT_KILLS = 50


class WorkerKiller:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, collections.deque[float]] = {}  # function -> delay (s) of each kill to come
        self.kills: collections.Counter[str] = collections.Counter()
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_KILLS)

    def kill_next(self, function: str, after_s: float = 0.0, count: int = 1) -> None:
        with self._lock:
            self._armed.setdefault(function, collections.deque()).extend([after_s] * count)

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def watch(self, function: str, worker: Worker, inv: Invocation) -> None:
        """Called for every invocation before its worker runs it: takes an armed kill, if any, for this one."""
        if not self._armed.get(function):  # the usual case, without the lock
            return
        with self._lock:
            pending = self._armed.get(function)
            if not pending:
                return
            after_s = pending.popleft()
        threading.Thread(target=self._kill_when_due, args=(function, worker, inv, after_s),
                         name=f"chaos-kill-{function}", daemon=True).start()

    def _kill_when_due(self, function: str, worker: Worker, inv: Invocation, after_s: float) -> None:
        # Delivered (the handler runs) or finished, whichever first; then the delay, unless it finishes first.
        inv.changed.wait(inv.timeout_s + 15)
        if inv.delivered_at is None or inv.done.wait(max(0.0, inv.delivered_at + after_s - time.monotonic())):
            with self._lock:  # it ended before its moment: the kill is for the next invocation
                self._armed.setdefault(function, collections.deque()).appendleft(after_s)
            return
        self._kill(function, worker, inv, "next-invocation")

    def kill_now(self, function: str, pool: FunctionPool) -> dict[str, Any] | None:
        for worker in pool.busy_workers():
            inv = worker.current
            if inv is not None and not inv.done.is_set():
                return self._kill(function, worker, inv, "now")
        return None

    def _kill(self, function: str, worker: Worker, inv: Invocation, when: str) -> dict[str, Any]:
        worker.proc.kill()  # SIGKILL: no handler, no cleanup, as a crashed sandbox
        ran_ms = (time.monotonic() - inv.delivered_at) * 1000 if inv.delivered_at is not None else 0.0
        kill = {"function": function, "pid": worker.proc.pid, "request_id": inv.request_id, "when": when,
                "ran_ms": round(ran_ms, 1), "at": time.time()}
        with self._lock:
            self.kills[function] += 1
            self._recent.append(kill)
        log.warning("chaos: killed %s worker %d during invocation %s (%.0f ms in)", function, worker.proc.pid,
                    inv.request_id, ran_ms)
        return kill

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "armed": {fn: len(q) for fn, q in sorted(self._armed.items()) if q},
                "kills": dict(sorted(self.kills.items())),
                "recent": list(self._recent),
            }
