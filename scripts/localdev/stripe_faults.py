"""Stripe outage drill on a running local stack: stop localstripe, keep it down, start it again.

    python -m localdev stripe-restart --state-dir .local [--down-for 10]

In process (the chaos runner): `stop_stripe(state_dir)`, `start_stripe(state_dir)`, `restart_stripe(state_dir,
down_for)`; `state_dir` is the stack's state directory (the one holding outputs.json and stack.json).

A restart behaves like Stripe back from an outage, not like a new Stripe account: localstripe saves its state
to `<state_dir>/stripe-state.pickle` when it stops and the new process starts from it on the same port
(PaymentIntents, charges, refunds, events, idempotency keys and the registered webhook endpoint survive; the
webhooks it had not delivered yet are sent after the start — see localdev.stripe_server). While it is down the
functions' Stripe calls are refused at connect: the platform parks new payments (202 `queued`) and resumes them
when it is back. Webhook chaos (duplicate, shuffled deliveries) is the other Stripe-side switch:
`localdev.stripe_server.set_webhook_chaos` / `clear_webhook_chaos` on the stack's `stripe_api_base`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from localdev.stripe_server import STOP_GRACE_SECONDS
from localdev.stack import (DEFAULT_STATE_DIR, Paths, StackError, StackState, _component_ok, _pid_alive, _stop_pid,
                            _webhook_secret, start_stripe_component)
from localdev.stripe_server import health_url, register_webhook, webhook_endpoints

WEBHOOK_NAME = "paystream"  # the endpoint `make local-up` registers


def _stack(state_dir: Path | str) -> tuple[StackState, Paths]:
    paths = Paths(Path(state_dir))
    state = StackState.load(paths.stack)
    if state is None or state.backend != "embedded" or "stripe" not in state.ports:
        raise StackError(f"no embedded local stack is recorded in {paths.state}: start one with make local-up")
    return state, paths


def stripe_api_base(state_dir: Path | str) -> str:
    state, _ = _stack(state_dir)
    return f"http://127.0.0.1:{state.ports['stripe']}"


def stop_stripe(state_dir: Path | str) -> dict:
    """Stop the stack's localstripe (SIGTERM: it answers the requests in flight and saves its state).

    Returns {"pid", "state_saved": bool, "stopped_at": epoch seconds}. Raises StackError when it is not running.
    """
    state, paths = _stack(state_dir)
    pid = state.pids.get("stripe")
    if not pid or not _pid_alive(pid):
        raise StackError(f"localstripe is not running in {paths.state}: start_stripe / make local-up starts it")
    asked_at = time.time()
    # Its graceful shutdown lasts at most STOP_GRACE_SECONDS (stripe_server.py) before it saves; the margin is
    # for pickling a large state on a loaded machine. Killed before that, it would restart empty.
    _stop_pid(pid, timeout=STOP_GRACE_SECONDS + 25)
    if _pid_alive(pid):
        raise StackError(f"localstripe (pid {pid}) did not stop")
    saved = paths.stripe_state.exists() and paths.stripe_state.stat().st_mtime >= asked_at - 1
    return {"pid": pid, "state_saved": saved, "stopped_at": time.time()}


def start_stripe(state_dir: Path | str, timeout: float = 30) -> dict:
    """Start the stack's localstripe again on its port from the state it saved, wait until it is healthy and
    make sure the platform's webhook endpoint is registered (registered again when no state was saved).

    Returns {"pid", "restored_objects", "webhook": "kept" | "registered", "started_at"}; a localstripe already
    running is left alone ({"already_running": True, …}).
    """
    state, paths = _stack(state_dir)
    base = f"http://127.0.0.1:{state.ports['stripe']}"
    already = _component_ok(state, "stripe")
    if not already:
        start_stripe_component(state, paths, restore=True, timeout=timeout)
    import urllib.request

    with urllib.request.urlopen(health_url(base), timeout=5) as resp:
        health = json.loads(resp.read())
    webhook = "kept"
    try:
        outputs = json.loads(paths.outputs.read_text())
    except (OSError, ValueError) as exc:
        raise StackError(f"cannot read {paths.outputs} ({exc}): is the stack up?") from exc
    url = f"{outputs['api_url']}/webhooks/stripe"
    if webhook_endpoints(base).get(WEBHOOK_NAME, {}).get("url") != url:
        register_webhook(base, WEBHOOK_NAME, url, _webhook_secret(paths))
        webhook = "registered"
    return {"pid": state.pids["stripe"], "already_running": already, "restored_objects": health.get("restored_objects", 0),
            "webhook": webhook, "started_at": time.time()}


def restart_stripe(state_dir: Path | str, down_for: float = 10.0, timeout: float = 30) -> dict:
    """Stop localstripe, keep it down for `down_for` seconds, start it again: {"stopped": …, "started": …,
    "down_seconds": how long it really was down}."""
    stopped = stop_stripe(state_dir)
    time.sleep(max(0.0, down_for))
    started = start_stripe(state_dir, timeout=timeout)
    return {"stopped": stopped, "started": started, "down_seconds": round(started["started_at"] - stopped["stopped_at"], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev stripe-restart",
                                     description="stop the local stack's localstripe, keep it down, start it again with its state")
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("PAYSTREAM_LOCAL_DIR", DEFAULT_STATE_DIR)))
    parser.add_argument("--down-for", type=float, default=10.0, help="seconds to keep it down (default 10)")
    args = parser.parse_args(argv)
    if args.down_for < 0:
        print("stripe-restart: --down-for must be 0 or more seconds", file=sys.stderr)
        return 2
    try:
        stopped = stop_stripe(args.state_dir)
        print(f"stripe-restart: stopped localstripe (pid {stopped['pid']}), state "
              f"{'saved' if stopped['state_saved'] else 'NOT saved (it will start empty)'}; down for {args.down_for:g} s",
              flush=True)
        time.sleep(args.down_for)
        started = start_stripe(args.state_dir)
    except (StackError, OSError, RuntimeError) as exc:  # each carries one clear line
        print(f"stripe-restart: {exc}", file=sys.stderr)
        return 1
    print(f"stripe-restart: localstripe is back (pid {started['pid']}) with {started['restored_objects']} objects; "
          f"webhook endpoint {started['webhook']}")
    return 0
