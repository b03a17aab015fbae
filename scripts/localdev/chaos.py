"""`make chaos` (issue 8, item 5): faults injected while load runs, then the zero-loss audit after each.

    python -m localdev.chaos [--outputs FILE | --own-stack] [--clients 8] [--duration 40] [--fault NAME ...]
                             [--out bench/chaos.json]

For each fault, on the local stack: a test subscriber goes on the bus (localdev.zero_loss.BusSubscriber), the
load generator (localdev.bench_load.run_load) sends payments for `--duration` seconds, the fault is switched on
at 20% of it and off at 70%, and once the payments had their time the audit checks that every accepted payment
is terminal with complete, contiguous events, each published exactly once, and no DLQ gained anything. A DLQ
that did gain messages is redriven with `paystream-ops dlq redrive` — what an operator does after an incident —
and the audit runs again: the report says what was redriven, and the fault passes only if nothing is left.

The faults (FAULTS):
- `stripe_restart`: localstripe stopped (its state saved) and started again on its port (localdev.stripe_faults).
- `kill_worker`: SIGKILL of process_payment and fraud_scorer workers in the middle of invocations (a crashed
  sandbox: the event source mapping retries the batch) (localdev.faults, the data plane's chaos switch).
- `put_events_failures`: EventBridge PutEvents fails 30% of the entries, as a partial failure (the emulator).
- `dynamodb_throttling`: half of the functions' DynamoDB writes answer ThrottlingException (the emulator).
- `webhook_chaos`: localstripe delivers every webhook twice, shuffled within 3 s windows (out of order).

The figures per fault: what was injected, POSTs parked (202 `queued`), function invocations that failed and were
retried by their event source (the data plane's error counts), webhooks re-sent, messages redriven, and the
audit. Writes bench/chaos.json; exits 1 with one line naming the faults whose audit failed. `make test` runs
the same code with small sizes (tests/e2e/test_chaos.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from localdev.bench_stack import DEFAULT_OUTPUTS, NoStack, bench_stack

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAULT_ON_AT, FAULT_OFF_AT = 0.2, 0.7  # shares of the load's duration
KILLED_FUNCTIONS = ("process_payment", "fraud_scorer")


@dataclass
class Stack:
    outputs: dict[str, Any]
    outputs_path: Path

    @property
    def state_dir(self) -> Path:
        return self.outputs_path.parent

    def function_name(self, key: str) -> str:
        return self.outputs.get("function_names", {}).get(key, key)


@dataclass(frozen=True)
class Fault:
    description: str
    switch_on: Callable[[Stack, float], dict]  # (stack, seconds the fault lasts) -> what was switched on
    switch_off: Callable[[Stack], dict]  # -> what it did (counts)


def _stripe_off(stack: Stack, _seconds: float) -> dict:
    from localdev.stripe_faults import stop_stripe

    return stop_stripe(stack.state_dir)


def _stripe_on(stack: Stack) -> dict:
    from localdev.stripe_faults import start_stripe

    return start_stripe(stack.state_dir)


def _kill_workers(stack: Stack, _seconds: float) -> dict:
    from localdev import faults

    # Several kills each, a little into the invocation, so batches are cut in the middle.
    return {name: faults.kill_worker(stack.outputs, stack.function_name(name), "next-invocation", after_ms=50, count=3)
            for name in KILLED_FUNCTIONS}


def _emulator_switch(setter: str, **options: Any) -> Callable[[Stack, float], dict]:
    def switch_on(stack: Stack, seconds: float) -> dict:
        from localdev import faults

        return getattr(faults, setter)(stack.outputs, duration_s=seconds, seed=8, **options)

    return switch_on


def _faults_clear(stack: Stack) -> dict:
    from localdev import faults

    return faults.clear(stack.outputs)


def _webhook_chaos_on(stack: Stack, _seconds: float) -> dict:
    from localdev.stripe_server import set_webhook_chaos

    return set_webhook_chaos(stack.outputs["stripe_api_base"], duplicate=2, shuffle_window_s=3.0)


def _webhook_chaos_off(stack: Stack) -> dict:
    from localdev.stripe_server import clear_webhook_chaos

    return clear_webhook_chaos(stack.outputs["stripe_api_base"])


FAULTS: dict[str, Fault] = {
    "stripe_restart": Fault("localstripe stopped, then started again with its state", _stripe_off, _stripe_on),
    "kill_worker": Fault(f"workers of {' and '.join(KILLED_FUNCTIONS)} killed mid-invocation (3 each)",
                         _kill_workers, _faults_clear),
    "put_events_failures": Fault("EventBridge PutEvents fails 30% of entries (partial failure)",
                                 _emulator_switch("set_put_events_failures", ratio=0.3), _faults_clear),
    "dynamodb_throttling": Fault("50% of the functions' DynamoDB writes throttled",
                                 _emulator_switch("set_dynamodb_write_throttling", ratio=0.5), _faults_clear),
    "webhook_chaos": Fault("every webhook delivered twice, shuffled within 3 s windows", _webhook_chaos_on,
                           _webhook_chaos_off),
}


def restore(stack: Stack) -> None:
    """Every fault off, whatever state a failed run left: the stack must be usable afterwards."""
    from localdev import faults
    from localdev.stripe_faults import start_stripe
    from localdev.stripe_server import clear_webhook_chaos

    for step in (lambda: start_stripe(stack.state_dir), lambda: faults.clear(stack.outputs),
                 lambda: clear_webhook_chaos(stack.outputs["stripe_api_base"])):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - each step is tried; the first error is not the only one
            print(f"chaos: restoring the stack: {exc}", file=sys.stderr)


def function_errors(stack: Stack) -> dict[str, int]:
    """Failed invocations per function so far (the data plane's counts): each one is retried by its event source."""
    from localdev import faults

    url = f"{faults.dataplane_url(stack.outputs)}/_dataplane/status"
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        status = json.loads(response.read())
    return {f["name"]: int(f.get("errors", 0)) for f in status.get("functions", [])}


def redrive(stack: Stack, queues: list[str]) -> dict[str, dict[str, int]]:
    """`paystream-ops dlq redrive NAME --yes` for each queue: per queue the messages it held and the exit code
    (an on-failure destination of a stream mapping cannot be redriven: its runbook replays instead, and the
    audit after it still fails)."""
    from localdev.zero_loss import dlq_depths
    from paystream_ops import cli

    before = dlq_depths(stack.outputs)
    return {name: {"messages": sum(before.get(name, {}).values()),
                   "exit_code": cli.main(["--outputs", str(stack.outputs_path), "dlq", "redrive", name, "--yes"])}
            for name in queues}


def run_fault(stack: Stack, name: str, clients: int, duration_s: float, settle_timeout_s: float) -> dict[str, Any]:
    from localdev.bench_load import run_load
    from localdev.zero_loss import BusSubscriber, audit, dlq_depths

    fault = FAULTS[name]
    errors_before = function_errors(stack)
    baseline = dlq_depths(stack.outputs)
    figures: dict[str, Any] = {"fault": fault.description, "clients": clients, "duration_s": duration_s}
    with BusSubscriber(stack.outputs, name_prefix=f"chaos-{name.replace('_', '-')}") as subscriber:
        loaded: dict[str, Any] = {}
        load = threading.Thread(target=lambda: loaded.update(result=run_load(stack.outputs, clients, duration_s)),
                                name=f"load-{name}")
        load.start()
        try:
            time.sleep(duration_s * FAULT_ON_AT)
            fault_seconds = duration_s * (FAULT_OFF_AT - FAULT_ON_AT)
            figures["switched_on"] = fault.switch_on(stack, fault_seconds)
            time.sleep(fault_seconds)
            figures["injected"] = fault.switch_off(stack)
        finally:
            load.join()
            restore(stack)
        result = loaded.get("result")
        if result is None:
            raise RuntimeError(f"chaos {name}: the load generator failed (see the error above)")
        report = audit(stack.outputs, result.transaction_ids, subscriber, settle_timeout_s=settle_timeout_s,
                       dlq_baseline=baseline)
        figures["redriven"] = {}
        if report.dlq_holding:
            figures["audit_before_redrive"] = report.as_dict()
            figures["redriven"] = redrive(stack, sorted(report.dlq_holding))
            report = audit(stack.outputs, result.transaction_ids, subscriber, settle_timeout_s=settle_timeout_s,
                           dlq_baseline=baseline)
    errors_after = function_errors(stack)
    figures.update({
        "sent": result.sent, "accepted": result.accepted, "rejected": dict(sorted(result.rejected.items())),
        "parked": sum(1 for _, _, status in result.post_samples if str(status) == "202"),
        "throughput_per_s": round(result.throughput_per_s, 2), "post_ms": result.post_ms(),
        "terminal_ms": result.terminal_ms(),
        "retried_invocations": {fn: errors_after.get(fn, 0) - errors_before.get(fn, 0) for fn in sorted(errors_after)
                                if errors_after.get(fn, 0) > errors_before.get(fn, 0)},
        "audit_ok": report.ok, "lost": len(report.lost), "duplicated": len(report.duplicated),
        "audit_summary": report.summary(), "audit": report.as_dict(),
    })
    return figures


def run(stack: Stack, names: list[str], clients: int, duration_s: float, settle_timeout_s: float,
        on_fault: Callable[[str, dict], None] = lambda name, figures: None) -> dict[str, Any]:
    from localdev.bench_rebuild import _commit
    from localdev.bench_load import _machine

    faults: dict[str, Any] = {}
    for name in names:
        faults[name] = run_fault(stack, name, clients, duration_s, settle_timeout_s)
        on_fault(name, faults[name])
    return {
        "faults": faults,
        "all_passed": all(f["audit_ok"] for f in faults.values()),
        "how": __doc__.split("\n\n")[2].replace("\n", " "),
        "machine": _machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                        help="the running stack's outputs.json (default .local/outputs.json)")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--fault", action="append", choices=sorted(FAULTS), metavar="NAME",
                        help=f"a fault to inject (repeatable; default all: {', '.join(FAULTS)})")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of load per fault (default 40)")
    parser.add_argument("--settle-timeout", type=float, default=300.0,
                        help="seconds the audit waits for the payments to settle (default 300)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "chaos.json")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        print("chaos: --clients must be >= 1 and --duration > 0", file=sys.stderr)
        return 2
    names = args.fault or list(FAULTS)

    def say(name: str, figures: Mapping[str, Any]) -> None:
        print(f"{name}: {'passed' if figures['audit_ok'] else 'FAILED'}: accepted {figures['accepted']}, parked "
              f"{figures['parked']}, retried {figures['retried_invocations']}, redriven {figures['redriven']}: "
              f"{figures['audit_summary']}", flush=True)

    try:
        with bench_stack("chaos", args.outputs, args.own_stack) as outputs_path:
            stack = Stack(json.loads(outputs_path.read_text()), outputs_path)
            results = run(stack, names, args.clients, args.duration, args.settle_timeout, on_fault=say)
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    failed = [name for name, f in results["faults"].items() if not f["audit_ok"]]
    if failed:
        print(f"chaos: the zero-loss audit failed after {', '.join(failed)}: see {args.out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
