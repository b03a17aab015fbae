"""The payment state machine: the transition table, duplicates, out-of-order deliveries, folding and rebuild."""

from __future__ import annotations

import itertools
import random

import pytest

from paystream.models import PaymentRequest, Projection, Status
from paystream.states import (
    ALLOWED_FROM,
    RANK,
    UnknownEventType,
    apply,
    created_event,
    decide,
    next_event,
    rebuild,
)

REQUEST = PaymentRequest(
    amount=1000, currency="usd", customer_id="cus_1", payment_method_id="pm_1", order_id="order-1",
    metadata={"cart": "7"}, ip_address="10.0.0.1", country="FR",
)

STATUS_EVENTS = [
    "payment.created", "payment.queued", "payment.processing", "payment.requires_action", "payment.review",
    "payment.failed", "payment.succeeded", "payment.canceled", "payment.refunded", "payment.disputed",
]

# The expected table, written out independently of paystream.states: for each current status, the
# status each event leads to; an event not listed is ignored (no new event, status unchanged).
# payment.refunded here is a full refund.
EXPECTED = {
    "created": {"payment.queued": "queued", "payment.processing": "processing",
                "payment.requires_action": "requires_action", "payment.review": "review",
                "payment.failed": "failed", "payment.succeeded": "succeeded", "payment.canceled": "canceled"},
    "queued": {"payment.processing": "processing", "payment.requires_action": "requires_action",
               "payment.review": "review", "payment.failed": "failed", "payment.succeeded": "succeeded",
               "payment.canceled": "canceled"},
    "processing": {"payment.requires_action": "requires_action", "payment.review": "review",
                   "payment.failed": "failed", "payment.succeeded": "succeeded", "payment.canceled": "canceled"},
    "requires_action": {"payment.review": "review", "payment.failed": "failed",
                        "payment.succeeded": "succeeded", "payment.canceled": "canceled"},
    "review": {"payment.failed": "failed", "payment.succeeded": "succeeded", "payment.canceled": "canceled"},
    "failed": {"payment.succeeded": "succeeded", "payment.canceled": "canceled"},
    "succeeded": {"payment.refunded": "refunded", "payment.disputed": "disputed"},
    "canceled": {},
    "partially_refunded": {"payment.refunded": "refunded", "payment.disputed": "disputed"},
    "refunded": {"payment.disputed": "disputed"},
    "disputed": {},
}


def projection_in(status: str, **fields) -> Projection:
    event = created_event("tx-1", REQUEST)
    return apply(None, event).model_copy(update={"status": Status(status), **fields})


def deliver(projection: Projection, event_type: str, detail: dict | None = None, log: list | None = None) -> Projection:
    """What a consumer does with a delivery: decide, and only if it is new, create the event and fold it."""
    decision = decide(projection, event_type, detail)
    if not decision.append:
        assert decision.new_status == projection.status
        return projection
    event = next_event(projection, event_type, detail)
    if log is not None:
        log.append(event)
    updated = apply(projection, event)
    assert updated.status == decision.new_status
    return updated


def test_expected_table_covers_every_status():
    assert set(EXPECTED) == {s.value for s in Status}


@pytest.mark.parametrize("status, event_type", list(itertools.product(EXPECTED, STATUS_EVENTS)))
def test_transition_table(status, event_type):
    projection = projection_in(status, amount_refunded=300 if status == "partially_refunded" else 0)
    decision = decide(projection, event_type, {})
    expected = EXPECTED[status].get(event_type)
    if expected is None:
        assert (decision.append, decision.new_status) == (False, status)
    else:
        assert (decision.append, decision.new_status) == (True, expected)


def test_every_allowed_move_goes_up_in_rank():
    for target, sources in ALLOWED_FROM.items():
        for source in sources - {target}:
            assert RANK[target] > RANK[source], f"{source} → {target} would move backwards"


def test_a_new_payment_starts_created_and_nothing_else_can_start_one():
    assert (decide(None, "payment.created").append, decide(None, "payment.created").new_status) == (True, "created")
    with pytest.raises(ValueError, match="first event must be payment.created"):
        decide(None, "payment.succeeded")


def test_unknown_event_type_is_an_error():
    with pytest.raises(UnknownEventType, match="payment.exploded"):
        decide(projection_in("created"), "payment.exploded")


def test_partial_refunds_accumulate_and_a_late_or_repeated_one_is_ignored():
    log: list = []
    p = projection_in("succeeded")
    p = deliver(p, "payment.refunded", {"amount_refunded": 300}, log)
    assert (p.status, p.amount_refunded) == ("partially_refunded", 300)
    p = deliver(p, "payment.refunded", {"amount_refunded": 300}, log)  # the same refund delivered again
    p = deliver(p, "payment.refunded", {"amount_refunded": 700}, log)
    assert (p.status, p.amount_refunded) == ("partially_refunded", 700)
    p = deliver(p, "payment.refunded", {"amount_refunded": 300}, log)  # a late copy of the first refund
    assert (p.status, p.amount_refunded) == ("partially_refunded", 700)
    p = deliver(p, "payment.refunded", {"amount_refunded": 1000}, log)
    assert (p.status, p.amount_refunded) == ("refunded", 1000)
    p = deliver(p, "payment.refunded", {"amount_refunded": 700}, log)
    p = deliver(p, "payment.refunded", {}, log)
    assert (p.status, p.amount_refunded) == ("refunded", 1000)
    assert [e.detail["amount_refunded"] for e in log] == [300, 700, 1000]


def test_refund_without_an_amount_is_a_full_refund():
    p = deliver(projection_in("succeeded"), "payment.refunded", {})
    assert (p.status, p.amount_refunded) == ("refunded", 1000)


def test_refund_before_success_is_ignored():
    for status in ("created", "processing", "failed", "canceled"):
        assert not decide(projection_in(status), "payment.refunded", {"amount_refunded": 100}).append


def test_fraud_score_is_recorded_once_without_changing_status():
    log: list = []
    p = projection_in("processing")
    p = deliver(p, "fraud.scored", {"risk_score": 81, "risk_factors": ["velocity"]}, log)
    assert (p.status, p.risk_score) == ("processing", 81)
    p = deliver(p, "fraud.scored", {"risk_score": 20, "risk_factors": []}, log)  # redelivered, rescored
    assert (p.status, p.risk_score, len(log)) == ("processing", 81, 1)
    assert decide(projection_in("succeeded"), "fraud.scored", {"risk_score": 5}).append


def test_a_retry_records_each_later_failed_attempt_once():
    log: list = []
    p = projection_in("created")
    p = deliver(p, "payment.failed", {"retryable": True, "failure_code": "rate_limit"}, log)
    assert (p.status, p.attempt, p.retryable) == ("failed", 1, True)
    p = deliver(p, "payment.failed", {"retryable": True, "failure_code": "rate_limit"}, log)  # duplicate delivery
    p = deliver(p, "payment.failed", {"retryable": True, "attempt": 1}, log)  # same attempt, explicitly
    assert len(log) == 1
    p = deliver(p, "payment.failed", {"retryable": False, "failure_code": "processing_error", "attempt": 3}, log)
    assert (p.status, p.attempt, p.retryable, p.failure_code, len(log)) == ("failed", 3, False, "processing_error", 2)
    p = deliver(p, "payment.failed", {"retryable": True, "attempt": 2}, log)  # a late, older attempt
    assert (p.attempt, len(log)) == (3, 2)
    p = deliver(p, "payment.succeeded", {}, log)
    assert p.status == "succeeded" and len(log) == 3
    assert not decide(p, "payment.failed", {"attempt": 9}).append, "a failure after success moved the payment"


def test_dispute_outcome_is_recorded_once_and_only_on_a_disputed_payment():
    log: list = []
    p = projection_in("succeeded")
    assert not decide(p, "payment.dispute_closed", {"dispute_status": "won"}).append
    p = deliver(p, "payment.disputed", {"dispute_id": "dp_1"}, log)
    p = deliver(p, "payment.dispute_closed", {"dispute_status": "won"}, log)
    assert (p.status, p.dispute_status) == ("disputed", "won")
    p = deliver(p, "payment.dispute_closed", {"dispute_status": "lost"}, log)  # redelivered, changed its mind
    assert (p.dispute_status, len(log)) == ("won", 2)
    assert rebuild([created_event("tx-9", REQUEST, event_id="e1")]).dispute_status is None


def test_a_review_decision_is_recorded_once_and_only_on_a_payment_held_in_review():
    log: list = []
    p = projection_in("processing")
    assert not decide(p, "payment.reviewed", {"decision": "approved", "operator": "ana"}).append
    p = deliver(p, "payment.review", {"risk_score": 85}, log)
    p = deliver(p, "payment.reviewed", {"decision": "declined", "operator": "ana", "reason": "stolen card"}, log)
    assert (p.status, p.review_decision, len(log)) == ("review", "declined", 2)
    p = deliver(p, "payment.reviewed", {"decision": "approved", "operator": "bo"}, log)  # a second operator
    assert (p.review_decision, len(log)) == ("declined", 2)
    p = deliver(p, "payment.canceled", {"cancellation_reason": "fraudulent"}, log)
    assert p.status == "canceled" and p.review_decision == "declined"
    with pytest.raises(ValueError, match="decision"):
        decide(projection_in("review"), "payment.reviewed", {"decision": "maybe"})


def test_a_refused_status_move_still_records_the_first_payment_intent_id():
    log: list = []
    p = projection_in("queued")
    p = deliver(p, "payment.review", {"risk_score": 75}, log)  # held while Stripe was being called
    p = deliver(p, "payment.processing", {"payment_intent_id": "pi_1", "stripe_status": "requires_capture"}, log)
    assert (p.status, p.payment_intent_id, len(log)) == ("review", "pi_1", 2)
    p = deliver(p, "payment.processing", {"payment_intent_id": "pi_1"}, log)  # nothing new any more
    assert len(log) == 2
    assert rebuild([created_event("tx-1", REQUEST, event_id="e1"), *log]).payment_intent_id == "pi_1"


@pytest.mark.parametrize(
    "deliveries, final",
    [
        (["payment.succeeded", "payment.processing"], "succeeded"),  # late processing
        (["payment.processing", "payment.succeeded"], "succeeded"),
        (["payment.succeeded", "payment.failed"], "succeeded"),  # failed after succeeded
        (["payment.failed", "payment.succeeded"], "succeeded"),  # a retried PaymentIntent succeeds
        (["payment.queued", "payment.processing", "payment.succeeded"], "succeeded"),
        (["payment.processing", "payment.queued"], "processing"),
        (["payment.requires_action", "payment.succeeded"], "succeeded"),
        (["payment.requires_action", "payment.failed"], "failed"),
        (["payment.requires_action", "payment.processing"], "requires_action"),
        (["payment.review", "payment.processing", "payment.requires_action"], "review"),
        (["payment.review", "payment.canceled", "payment.succeeded"], "canceled"),
        (["payment.succeeded", "payment.canceled"], "succeeded"),
        (["payment.canceled", "payment.failed"], "canceled"),
        (["payment.succeeded", "payment.review"], "succeeded"),
        (["payment.succeeded", "payment.refunded", "payment.disputed", "payment.refunded"], "disputed"),
    ],
)
def test_delivery_orders_end_in_the_right_state(deliveries, final):
    p = projection_in("created")
    for event_type in deliveries:
        p = deliver(p, event_type, {})
    assert p.status == final


def test_duplicates_never_produce_a_second_event():
    log: list = []
    p = projection_in("created")
    for event_type in ["payment.processing", "payment.processing", "payment.succeeded", "payment.succeeded",
                       "payment.processing", "payment.created", "payment.disputed", "payment.disputed"]:
        p = deliver(p, event_type, {}, log)
    assert [e.event_type for e in log] == ["payment.processing", "payment.succeeded", "payment.disputed"]
    assert [e.sequence for e in log] == [2, 3, 4]


def test_shuffled_duplicated_deliveries_never_move_backwards():
    rng = random.Random(1234)
    pool = STATUS_EVENTS[1:] + ["fraud.scored"]
    for _ in range(500):
        deliveries = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
        p, log = projection_in("created"), []
        for event_type in deliveries:
            before = p.status
            p = deliver(p, event_type, {"risk_score": 50}, log)
            assert RANK[p.status] >= RANK[before], (deliveries, before, p.status)
        transitions = [e.event_type for e in log if e.event_type != "fraud.scored"]
        assert len(transitions) == len(set(transitions)), deliveries  # never the same transition twice
        assert rebuild([created_event("tx-1", REQUEST, event_id="e1", occurred_at=p.created_at),
                        *[e.model_copy(update={"sequence": i}) for i, e in enumerate(log, start=2)]]).status == p.status


def test_failure_is_recorded_and_cleared_by_a_later_success():
    p = deliver(projection_in("processing"), "payment.failed",
                {"retryable": True, "failure_code": "card_declined", "failure_message": "Your card was declined.",
                 "payment_intent_id": "pi_1"})
    assert (p.status, p.failure_code, p.retryable, p.payment_intent_id) == ("failed", "card_declined", True, "pi_1")
    p = deliver(p, "payment.succeeded", {"payment_intent_id": "pi_2"})
    assert (p.status, p.failure_code, p.failure_message, p.retryable) == ("succeeded", None, None, None)
    assert p.payment_intent_id == "pi_1"  # the first PaymentIntent stays the payment's


def test_created_event_carries_the_request_and_folds_into_the_projection():
    event = created_event("tx-9", REQUEST, event_id="evt-1", occurred_at="2025-01-01T00:00:00.000Z")
    assert (event.sequence, event.source, event.amount, event.currency) == (1, "paystream.payments", 1000, "usd")
    p = apply(None, event)
    assert p.model_dump() == {
        "transaction_id": "tx-9", "status": Status.CREATED, "amount": 1000, "currency": "usd", "customer_id": "cus_1",
        "order_id": "order-1", "payment_method_id": "pm_1", "payment_intent_id": None, "risk_score": None,
        "created_at": "2025-01-01T00:00:00.000Z", "updated_at": "2025-01-01T00:00:00.000Z",
        "based_on_event_id": "evt-1", "last_sequence": 1, "description": None, "metadata": {"cart": "7"},
        "device_id": None, "ip_address": "10.0.0.1", "country": "FR", "failure_code": None, "failure_message": None,
        "retryable": None, "attempt": 1, "amount_refunded": 0, "dispute_status": None, "review_decision": None, "capture_method": "automatic",
    }


def test_apply_tracks_the_last_event():
    p = projection_in("created")
    event = next_event(p, "payment.processing", {"payment_intent_id": "pi_1"}, occurred_at="2030-01-01T00:00:00.000Z")
    p2 = apply(p, event)
    assert (p2.last_sequence, p2.based_on_event_id, p2.updated_at, p2.created_at) == (
        2, event.event_id, "2030-01-01T00:00:00.000Z", p.created_at)
    assert p.status == "created"  # pure: the input is unchanged


def test_apply_refuses_gaps_and_foreign_events():
    p = projection_in("created")
    with pytest.raises(ValueError, match="contiguous"):
        apply(p, next_event(p, "payment.processing", sequence=3))
    with pytest.raises(ValueError, match="belongs to"):
        apply(p, next_event(p, "payment.processing").model_copy(update={"transaction_id": "tx-2"}))
    with pytest.raises(ValueError, match="expected 1"):
        apply(None, created_event("tx-1", REQUEST).model_copy(update={"sequence": 2}))


def test_rebuild_restores_a_corrupted_projection():
    log = [created_event("tx-1", REQUEST)]
    p = apply(None, log[0])
    for event_type, detail in [("payment.processing", {"payment_intent_id": "pi_1"}), ("fraud.scored", {"risk_score": 12}),
                               ("payment.succeeded", {}), ("payment.refunded", {"amount_refunded": 250})]:
        p = deliver(p, event_type, detail, log)
    corrupted = p.model_copy(update={"status": Status.FAILED, "risk_score": None, "amount_refunded": 0})
    rebuilt = rebuild(log)
    assert rebuilt == p != corrupted
    assert (rebuilt.status, rebuilt.risk_score, rebuilt.amount_refunded, rebuilt.payment_intent_id) == (
        "partially_refunded", 12, 250, "pi_1")


def test_rebuild_ignores_an_event_the_rules_no_longer_allow():
    """An event appended under a buggy rule: the rebuild under the fixed rules does not follow it."""
    p = projection_in("created")
    log = [created_event("tx-1", REQUEST, occurred_at=p.created_at)]
    p = deliver(apply(None, log[0]), "payment.succeeded", {}, log)
    log.append(next_event(p, "payment.processing"))  # stored by a bug, after success
    rebuilt = rebuild(log)
    assert (rebuilt.status, rebuilt.last_sequence, rebuilt.based_on_event_id) == ("succeeded", 3, log[-1].event_id)


def test_rebuild_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="no events"):
        rebuild([])
