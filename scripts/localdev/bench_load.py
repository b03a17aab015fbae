"""`make bench` (load part, issue 8 item 4): N concurrent clients paying for a fixed time, then the zero-loss audit.

    python -m localdev.bench_load [--outputs F | --own-stack] [--clients 20] [--duration 60] [--out bench/load.json]

A test subscriber goes on the bus first (`localdev.zero_loss.BusSubscriber`); then `run_load`: each client
(a thread with its own requests.Session) sends `POST /payments` back to back for `--duration` seconds, each
with a fresh Idempotency-Key, a new customer (so fraud velocity rules stay quiet) and Stripe's succeeding
test PaymentMethod `pm_card_visa`; accepted = 201/202. Follower threads poll `GET /payments/{id}` for the
accepted payments whose answer was not yet terminal, so POST → terminal is the time from sending the POST to
the first answer (the POST's own or a GET's) showing a terminal status. Then `zero_loss.audit` over the
accepted payments. Writes `--out` (figures + the audit) and beside it `<out stem>-samples.json` (every POST's
[seconds since start, ms, status] and every POST → terminal ms, for plots); exits 1 with one line when no
payment was accepted or the audit fails (the figures are written anyway).

Latency percentiles are nearest-rank (`paystream_ops.gaps.percentile`) over the accepted POSTs; rejected ones
(any other status, or no answer: `error:<exception>`) are counted by status in `rejected`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from localdev.bench_stack import DEFAULT_OUTPUTS, NoStack, bench_stack
from localdev.stack import PROJECT_ROOT
from localdev.zero_loss import TERMINAL_STATUSES, BusSubscriber, audit, dlq_depths

ACCEPTED = (201, 202)
PAYMENT_METHOD = "pm_card_visa"  # succeeds in localstripe and in Stripe's test mode alike
FOLLOWERS = 2  # GET pollers for payments not terminal in their POST's answer
FOLLOW_INTERVAL_S = 0.25  # per payment: the resolution of POST → terminal for those
POST_TIMEOUT = (5, 60)  # connect, read (s): a stalled request is a rejection, not a hang


def percentiles(samples: list[float]) -> dict[str, float | int | None]:
    from paystream_ops.gaps import percentile

    ordered = sorted(samples)
    return {"p50": _round(percentile(ordered, 0.50)), "p95": _round(percentile(ordered, 0.95)),
            "p99": _round(percentile(ordered, 0.99)), "n": len(ordered)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class LoadResult:
    clients: int
    duration_s: float  # asked for
    elapsed_s: float = 0.0  # from the first POST sent to the last POST answered
    sent: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # status (or error:<exception>) -> POSTs
    transaction_ids: list[str] = field(default_factory=list)  # accepted, in order of answer
    post_samples: list[tuple[float, float, str]] = field(default_factory=list)  # (s since start, ms, status)
    post_latency_ms: list[float] = field(default_factory=list)  # accepted POSTs
    terminal_latency_ms: list[float] = field(default_factory=list)  # POST sent -> terminal status seen
    statuses: dict[str, int] = field(default_factory=dict)  # last status seen per accepted payment
    not_terminal: dict[str, str] = field(default_factory=dict)  # followed until the timeout, still not terminal

    @property
    def throughput_per_s(self) -> float:
        return self.accepted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def post_ms(self) -> dict:
        return percentiles(self.post_latency_ms)

    def terminal_ms(self) -> dict:
        return percentiles(self.terminal_latency_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"clients": self.clients, "duration_s": self.duration_s, "elapsed_s": round(self.elapsed_s, 2),
                "sent": self.sent, "accepted": self.accepted, "rejected": dict(sorted(self.rejected.items())),
                "throughput_per_s": round(self.throughput_per_s, 2), "post_ms": self.post_ms(),
                "terminal_ms": self.terminal_ms(), "statuses": dict(sorted(self.statuses.items())),
                "not_terminal": len(self.not_terminal)}


class _Follower:
    """The accepted payments whose status is not terminal yet, polled with GET until it is."""

    def __init__(self, outputs: Mapping[str, Any], result: LoadResult, lock: threading.Lock):
        self._url, self._key = outputs["api_url"], outputs["api_key"]
        self._result, self._lock = result, lock
        self._pending: dict[str, tuple[float, float, str]] = {}  # tid -> (sent at, next poll at, last status)
        self._cond = threading.Condition(lock)
        self._done = threading.Event()

    def add(self, tid: str, sent_at: float, status: str) -> None:  # called with the lock held
        self._pending[tid] = (sent_at, time.perf_counter() + FOLLOW_INTERVAL_S, status)
        self._cond.notify()

    def finish(self) -> None:
        self._done.set()
        with self._cond:
            self._cond.notify_all()

    def run(self, deadline: list[float]) -> None:
        import requests

        session = requests.Session()
        while True:
            with self._cond:
                now = time.perf_counter()
                if self._done.is_set() and (not self._pending or now > deadline[0]):
                    return
                due = [tid for tid, (_, at, _) in self._pending.items() if at <= now]
                if not due:
                    self._cond.wait(timeout=FOLLOW_INTERVAL_S / 2)
                    continue
                tid = min(due, key=lambda t: self._pending[t][1])
                sent_at, _, last = self._pending.pop(tid)  # this thread's now; back if still not terminal
            try:
                response = session.get(f"{self._url}/payments/{tid}", headers={"x-api-key": self._key},
                                       timeout=POST_TIMEOUT)
                status = response.json().get("status", last) if response.status_code == 200 else last
            except Exception:  # noqa: BLE001 - a failed poll is retried at the next interval
                status = last
            seen_at = time.perf_counter()
            with self._cond:
                if status in TERMINAL_STATUSES:
                    self._result.terminal_latency_ms.append((seen_at - sent_at) * 1000)
                    self._result.statuses[status] = self._result.statuses.get(status, 0) + 1
                else:
                    self._pending[tid] = (sent_at, seen_at + FOLLOW_INTERVAL_S, status)

    def leftovers(self) -> dict[str, str]:
        with self._cond:
            return {tid: status for tid, (_, _, status) in self._pending.items()}


def run_load(outputs: Mapping[str, Any], clients: int = 20, duration_s: float = 60.0,
             stop_event: threading.Event | None = None, follow_timeout_s: float = 120.0,
             tag: str | None = None) -> LoadResult:
    """`clients` threads sending POST /payments for `duration_s` (or until `stop_event` is set), then the
    accepted payments followed to a terminal status for at most `follow_timeout_s` more."""
    import requests

    result = LoadResult(clients=clients, duration_s=duration_s)
    lock = threading.Lock()
    follower = _Follower(outputs, result, lock)
    tag = tag or uuid.uuid4().hex[:8]
    stop = threading.Event()
    url, key = f"{outputs['api_url']}/payments", outputs["api_key"]
    started = time.perf_counter()
    end = started + duration_s
    last_answer = [started]

    def client(index: int) -> None:
        session = requests.Session()
        rng = random.Random(f"{tag}-{index}")
        n = 0
        while not stop.is_set() and not (stop_event is not None and stop_event.is_set()) and time.perf_counter() < end:
            n += 1
            body = {"amount": rng.randrange(500, 20_000), "currency": rng.choice(("eur", "usd")),
                    "customer_id": f"cus_load_{tag}_{index}_{n}", "payment_method_id": PAYMENT_METHOD,
                    "order_id": f"load-{tag}-{index}-{n}"}
            sent_at = time.perf_counter()
            try:
                response = session.post(url, json=body, timeout=POST_TIMEOUT,
                                        headers={"x-api-key": key, "Idempotency-Key": uuid.uuid4().hex})
                code, answer = str(response.status_code), response
            except requests.RequestException as error:
                code, answer = f"error:{type(error).__name__}", None
            answered_at = time.perf_counter()
            ms = (answered_at - sent_at) * 1000
            payment = {}
            if answer is not None and answer.status_code in ACCEPTED:
                try:
                    payment = answer.json()
                except ValueError:
                    payment = {}
            with lock:
                result.sent += 1
                result.post_samples.append((round(sent_at - started, 3), round(ms, 1), code))
                last_answer[0] = max(last_answer[0], answered_at)
                if not payment.get("transaction_id"):
                    # An accepted status without a transaction id is no payment the audit could check.
                    result.rejected[code] = result.rejected.get(code, 0) + 1
                    continue
                result.accepted += 1
                result.post_latency_ms.append(ms)
                result.transaction_ids.append(payment["transaction_id"])
                status = str(payment.get("status", ""))
                if status in TERMINAL_STATUSES:
                    result.terminal_latency_ms.append(ms)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                else:
                    follower.add(payment["transaction_id"], sent_at, status)

    follow_deadline = [float("inf")]
    followers = [threading.Thread(target=follower.run, args=(follow_deadline,), name=f"load-follower-{i}", daemon=True)
                 for i in range(FOLLOWERS)]
    threads = [threading.Thread(target=client, args=(i,), name=f"load-client-{i}", daemon=True) for i in range(clients)]
    for thread in followers + threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    result.elapsed_s = last_answer[0] - started
    follow_deadline[0] = time.perf_counter() + follow_timeout_s
    follower.finish()
    for thread in followers:
        thread.join()
    result.not_terminal = follower.leftovers()
    for status in result.not_terminal.values():
        result.statuses[status or "unknown"] = result.statuses.get(status or "unknown", 0) + 1
    return result


def _machine() -> str:
    return f"{platform.node()} {platform.machine()} {platform.python_version()}"


def results_document(load: LoadResult, report, load_average: tuple[float, float], samples_file: str,
                     commit: str) -> dict[str, Any]:
    post, terminal = load.post_ms(), load.terminal_ms()
    return {
        "throughput_per_s": round(load.throughput_per_s, 2),
        "p50_ms": post["p50"], "p95_ms": post["p95"], "p99_ms": post["p99"],
        "terminal_p50_ms": terminal["p50"], "terminal_p95_ms": terminal["p95"], "terminal_p99_ms": terminal["p99"],
        "lost": len(report.lost), "duplicated": len(report.duplicated),
        "clients": load.clients, "duration_s": load.duration_s, "elapsed_s": round(load.elapsed_s, 2),
        "sent": load.sent, "accepted": load.accepted, "rejected": dict(sorted(load.rejected.items())),
        "statuses_seen_by_clients": dict(sorted(load.statuses.items())),
        "audit": report.as_dict(),
        "how": ("each client a thread with its own HTTP session sending POST /payments back to back (fresh "
                "Idempotency-Key, new customer, pm_card_visa); throughput = accepted / time from the first POST sent "
                "to the last answered; POST → terminal = POST sent to the first answer (POST or GET poll every "
                f"{FOLLOW_INTERVAL_S} s) with a terminal status; percentiles nearest-rank over accepted POSTs; then "
                "the zero-loss audit (localdev.zero_loss) over the accepted payments with a subscriber on the bus"),
        "samples": samples_file,
        "machine": _machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        # The stack shares the machine's cores with the load generator and whatever else runs.
        "load_average_1m": {"start": round(load_average[0], 2), "end": round(load_average[1], 2),
                            "cpus": os.cpu_count()},
    }


def main(argv: list[str] | None = None) -> int:
    from localdev.bench_rebuild import _commit

    parser = argparse.ArgumentParser(prog="python -m localdev.bench_load", description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                        help="the running stack's outputs.json (default .local/outputs.json)")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending (default 60)")
    parser.add_argument("--settle-timeout", type=float, default=300.0,
                        help="seconds the audit waits for the payments to settle (default 300)")
    parser.add_argument("--dlq-baseline", action="store_true",
                        help="count only messages the DLQs gained during the run (a stack used for other work)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "load.json")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        print("bench_load: --clients must be >= 1 and --duration > 0", file=sys.stderr)
        return 2

    samples_path = args.out.with_name(f"{args.out.stem}-samples.json")
    try:
        with bench_stack("bench_load", args.outputs, args.own_stack) as outputs_path:
            outputs = json.loads(outputs_path.read_text())
            load_at_start = os.getloadavg()[0]
            baseline = dlq_depths(outputs) if args.dlq_baseline else None
            with BusSubscriber(outputs, name_prefix="bench-load") as subscriber:
                load = run_load(outputs, args.clients, args.duration)
                report = audit(outputs, load.transaction_ids, subscriber, settle_timeout_s=args.settle_timeout,
                               dlq_baseline=baseline)
            load_at_end = os.getloadavg()[0]
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        samples_name = str(samples_path.relative_to(PROJECT_ROOT))
    except ValueError:
        samples_name = str(samples_path)
    results = results_document(load, report, (load_at_start, load_at_end), samples_name, _commit())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    samples_path.write_text(json.dumps({
        "post": {"columns": ["seconds_since_start", "ms", "status"], "rows": load.post_samples},
        "terminal_ms": [round(ms, 1) for ms in load.terminal_latency_ms],
    }) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "audit"}, indent=2))
    print(report.summary())
    if not load.accepted:
        print(f"bench_load: no payment was accepted ({load.sent} sent: {dict(load.rejected)})", file=sys.stderr)
        return 1
    if not report.ok:
        print(f"bench_load: {report.summary()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
