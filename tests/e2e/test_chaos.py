"""`make chaos` with small sizes (issue 8, item 5): each fault injected while payments are sent, then the
zero-loss audit. The runner restores the stack after each fault (the session's other tests share it)."""

from __future__ import annotations

import pytest

from localdev import chaos

CLIENTS, DURATION_S, SETTLE_S = 3, 15.0, 240.0


def _proof_the_fault_happened(fault: str, figures: dict, stack: chaos.Stack) -> None:
    """A chaos run whose fault never bit proves nothing: each fault must show it acted."""
    injected = figures["injected"]
    if fault == "stripe_restart":
        assert figures["switched_on"]["state_saved"], figures["switched_on"]
        assert injected["webhook"] in ("kept", "registered") and not injected["already_running"], injected
        assert figures["parked"] > 0, "no POST was parked while localstripe was down"
    elif fault == "kill_worker":
        kills = injected["worker_kills"]
        assert kills.get(stack.function_name("process_payment"), 0) > 0, kills
        assert figures["retried_invocations"], "a killed invocation must be retried by its event source"
    elif fault == "put_events_failures":
        assert injected["put_events_failures"] > 0, injected
    elif fault == "dynamodb_throttling":
        assert injected["dynamodb_write_throttling"] > 0, injected
    elif fault == "webhook_chaos":
        assert injected["counts"]["duplicates"] > 0 and injected["counts"]["out_of_order"] > 0, injected
    else:  # a new fault needs its own proof here
        pytest.fail(f"no proof check for fault {fault}")


@pytest.mark.parametrize("fault", list(chaos.FAULTS))
def test_nothing_is_lost_or_duplicated_after_the_fault(fault, outputs, outputs_path):
    stack = chaos.Stack(dict(outputs), outputs_path)
    figures = chaos.run_fault(stack, fault, CLIENTS, DURATION_S, SETTLE_S)
    assert figures["accepted"] > 0, figures["rejected"]
    assert figures["audit_ok"], figures["audit_summary"]
    assert (figures["lost"], figures["duplicated"]) == (0, 0)
    _proof_the_fault_happened(fault, figures, stack)
