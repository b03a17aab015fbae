"""Zero loss under a small load (issue 8, item 4): a few concurrent clients pay for a while through the
session's stack, then the zero-loss audit (localdev.zero_loss) over exactly the payments they got accepted:
every one terminal, its events complete and contiguous, each stored event (and stored webhook) published to
the bus once as a test subscriber counts it, and no DLQ gained a message meanwhile.

Sized for `make test` (4 clients × 15 s); `python -m localdev.bench_load` runs the full-size load. The stack
is shared: the audit reads only these payments, the subscriber's rule and queue are removed afterwards, and
the DLQs are compared with what they held before (other tests may leave letters behind).
"""

from __future__ import annotations

import pytest

from localdev.bench_load import run_load
from localdev.zero_loss import TERMINAL_STATUSES, BusSubscriber, audit, dlq_depths

pytestmark = pytest.mark.e2e

CLIENTS, DURATION_S = 4, 15


def test_a_small_load_loses_and_duplicates_nothing(outputs, aws_client):
    baseline = dlq_depths(outputs)
    with BusSubscriber(outputs, name_prefix="e2e-load") as subscriber:
        name = subscriber.name
        load = run_load(outputs, clients=CLIENTS, duration_s=DURATION_S, follow_timeout_s=120)
        report = audit(outputs, load.transaction_ids, subscriber, settle_timeout_s=240, dlq_baseline=baseline)

    assert load.accepted > 0 and load.sent == load.accepted + sum(load.rejected.values())
    # A plain succeeding card: nothing refused, nothing parked, every answer (or its GET) reached a terminal state.
    assert load.rejected == {} and load.not_terminal == {}, (load.rejected, load.not_terminal)
    assert len(load.terminal_latency_ms) == load.accepted == len(set(load.transaction_ids))
    assert report.ok, report.summary()
    assert report.payments == report.terminal == load.accepted
    assert set(report.statuses) <= TERMINAL_STATUSES and report.statuses == {"succeeded": load.accepted}
    assert (len(report.lost), len(report.duplicated)) == (0, 0)
    # created, succeeded, fraud.scored per payment at least, each seen once at the subscriber.
    assert report.published_once == report.stored_events >= 3 * load.accepted
    # The subscriber left nothing behind on the shared bus.
    rules = aws_client("events").list_rules(EventBusName=outputs["bus_name"], NamePrefix=name)["Rules"]
    assert rules == []
