"""`make local-up` is idempotent and recovers from a crashed earlier run without manual cleanup."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest
import stripe

from .conftest import run_localdev

# These restart components of the session's stack: conftest runs them last.
pytestmark = [pytest.mark.e2e, pytest.mark.restarts_stack]


@pytest.fixture()
def own_stack(stack_state_dir):
    if stack_state_dir is None:
        pytest.fail("lifecycle tests restart components: run them on the stack the session starts itself (unset PAYSTREAM_E2E_OUTPUTS)")
    return stack_state_dir


def webhook_round_trip(outputs: dict, event_id: str) -> int:
    body = json.dumps({"id": event_id, "type": "customer.created", "created": 1, "data": {"object": {"id": "cus_1"}}})
    header = stripe.WebhookSignature.generate_signature_header(body, outputs["webhook_secret"])
    req = urllib.request.Request(f"{outputs['api_url']}/webhooks/stripe", data=body.encode(), method="POST",
                                 headers={"Stripe-Signature": header, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status


def test_second_up_keeps_processes_and_changes_no_infrastructure(own_stack):
    before = json.loads((own_stack / "stack.json").read_text())
    result = run_localdev("up", "--state-dir", str(own_stack), "--ports", "auto")
    assert result.returncode == 0, result.stderr
    after = json.loads((own_stack / "stack.json").read_text())
    assert after["pids"] == before["pids"]
    log = (own_stack / "logs" / "terraform.log").read_text()
    last_apply = log.rsplit("Apply complete!", 1)
    assert len(last_apply) == 2 and last_apply[1].lstrip().startswith("Resources: 0 added, 0 changed, 0 destroyed")


def test_up_recovers_after_the_emulator_crashed(own_stack):
    state = json.loads((own_stack / "stack.json").read_text())
    os.kill(state["pids"]["emulator"], signal.SIGKILL)
    result = run_localdev("up", "--state-dir", str(own_stack), "--ports", "auto")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recovering from a stale earlier run" in result.stdout
    outputs = json.loads((own_stack / "outputs.json").read_text())
    assert webhook_round_trip(outputs, f"evt_after_recovery_{time.time_ns()}") == 200
