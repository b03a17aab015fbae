"""Fraud review and risk-gated capture (paystream.review) over the real event store in in-process moto and a
fake Stripe whose PaymentIntents move as Stripe's do (capture only from requires_capture, cancel only
before capture, idempotency keys give back the first answer)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws
from lambda_testing import create_transactions_table

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.stripe_gateway import PaymentProviderError
from paystream.models import PaymentRequest
from paystream.review import (
    FraudFlag,
    FraudReviewService,
    InvalidFraudEvent,
    NotChargedYet,
    ReviewRefused,
    Thresholds,
    alert,
    authorization_window,
    cancel_idempotency_key,
    capture_idempotency_key,
)
from paystream.states import apply, created_event, next_event
from paystream.store import EventStore

TABLE = "transactions"
REQUEST = PaymentRequest(amount=4200, currency="eur", customer_id="cus_1", payment_method_id="pm_1", order_id="o-1")
CREATED_AT = 1_790_000_000


class FakeStripe:
    def __init__(self):
        self.intents: dict[str, dict] = {}
        self.calls: list[tuple[str, str, str | None]] = []
        self.by_key: dict[str, dict] = {}

    def add(self, intent_id: str, status: str) -> None:
        self.intents[intent_id] = {"id": intent_id, "status": status, "created": CREATED_AT, "client_secret": "s"}

    def retrieve_payment_intent(self, intent_id):
        self.calls.append(("retrieve", intent_id, None))
        return dict(self.intents[intent_id])

    def capture_payment_intent(self, intent_id, *, idempotency_key):
        self.calls.append(("capture", intent_id, idempotency_key))
        if idempotency_key in self.by_key:
            return self.by_key[idempotency_key]
        intent = self.intents[intent_id]
        if intent["status"] != "requires_capture":
            raise PaymentProviderError("invalid_request", retryable=False, message=f"cannot capture a {intent['status']} PaymentIntent")
        intent["status"] = "succeeded"
        self.by_key[idempotency_key] = dict(intent)
        return dict(intent)

    def cancel_payment_intent(self, intent_id, *, idempotency_key, cancellation_reason=None):
        self.calls.append(("cancel", intent_id, idempotency_key))
        intent = self.intents[intent_id]
        if intent["status"] in ("succeeded", "canceled"):
            raise PaymentProviderError("invalid_request", retryable=False, message=f"cannot cancel a {intent['status']} PaymentIntent")
        intent.update(status="canceled", cancellation_reason=cancellation_reason)
        return dict(intent)

    def effects(self) -> list[tuple[str, str, str | None]]:
        return [call for call in self.calls if call[0] != "retrieve"]


@pytest.fixture()
def store(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_transactions_table(client, TABLE, status_index=True)
        yield EventStore(DynamoDBTransactionsTable(client, TABLE))


@pytest.fixture()
def stripe():
    return FakeStripe()


@pytest.fixture()
def service(store, stripe):
    return FraudReviewService(store, stripe, Thresholds(review=70, block=90))


def make_payment(store, stripe, transaction_id="tx-1", *, events=("payment.processing",), intent_status="requires_capture",
                 capture_method="manual", risk_score=None):
    projection = apply(None, first := created_event(transaction_id, REQUEST, capture_method=capture_method))
    store.create(projection, first)
    intent_id = f"pi_{transaction_id}"
    for event_type in events:
        detail = {} if event_type == "payment.queued" else {"payment_intent_id": intent_id, "stripe_status": intent_status}
        event = next_event(projection, event_type, detail)
        store.append(transaction_id, projection.last_sequence, [event], updated := apply(projection, event))
        projection = updated
    if risk_score is not None:
        event = next_event(projection, "fraud.scored", {"risk_score": risk_score, "risk_factors": []}, source="paystream.fraud")
        store.append(transaction_id, projection.last_sequence, [event], updated := apply(projection, event))
    stripe.add(intent_id, intent_status)
    return store.load(transaction_id)


def flag(transaction_id="tx-1", score=80) -> FraudFlag:
    return FraudFlag.from_bus_event({
        "source": "paystream.fraud", "detail-type": "fraud.scored",
        "detail": {"event_id": f"fraud-{transaction_id}", "transaction_id": transaction_id, "risk_score": score,
                   "risk_factors": [{"code": "velocity", "reason": "7 payments in 300 s", "weight": 40}]},
    })


def event_types(store, transaction_id="tx-1") -> list[str]:
    return [event.event_type for event in store.load(transaction_id)[1]]


# ---------------------------------------------------------------- flagged payments (fraud_review)

def test_a_flagged_authorized_payment_is_held_in_review_once(service, store, stripe):
    make_payment(store, stripe, risk_score=80)
    outcome = service.flagged(flag(score=80))
    assert (outcome.action, outcome.projection.status) == ("held", "review")
    again = service.flagged(flag(score=80))  # a redelivered message
    assert again.action == "held"
    assert event_types(store).count("payment.review") == 1
    assert stripe.effects() == []  # review alone never touches the money


def test_a_payment_at_the_block_threshold_is_canceled_at_stripe_as_fraudulent(service, store, stripe):
    make_payment(store, stripe, risk_score=95)
    outcome = service.flagged(flag(score=95))
    assert (outcome.action, outcome.projection.status) == ("blocked", "canceled")
    assert stripe.intents["pi_tx-1"]["cancellation_reason"] == "fraudulent"
    assert stripe.effects() == [("cancel", "pi_tx-1", cancel_idempotency_key("tx-1"))]
    canceled = store.load("tx-1")[1][-1]
    assert canceled.event_type == "payment.canceled" and canceled.detail["risk_score"] == 95
    assert service.flagged(flag(score=95)).action == "already_closed"  # redelivered: nothing more
    assert stripe.effects() == [("cancel", "pi_tx-1", cancel_idempotency_key("tx-1"))]


def test_a_payment_already_captured_is_only_reported(service, store, stripe):
    make_payment(store, stripe, events=("payment.succeeded",), intent_status="succeeded", capture_method="automatic")
    outcome = service.flagged(flag(score=99))
    assert (outcome.action, outcome.projection.status) == ("already_captured", "succeeded")
    assert stripe.effects() == []


def test_a_block_that_loses_the_race_with_a_capture_records_the_capture(service, store, stripe):
    make_payment(store, stripe, events=("payment.requires_action",), intent_status="requires_action",
                 capture_method="automatic")
    stripe.intents["pi_tx-1"]["status"] = "succeeded"  # the customer authenticated meanwhile
    outcome = service.flagged(flag(score=92))
    assert (outcome.action, outcome.projection.status) == ("already_captured", "succeeded")
    assert stripe.effects() == []


def test_a_payment_without_a_payment_intent_yet_is_retried_later(service, store, stripe):
    make_payment(store, stripe, events=("payment.queued",))
    with pytest.raises(NotChargedYet, match="queued"):
        service.flagged(flag(score=80))
    assert event_types(store) == ["payment.created", "payment.queued"]


@pytest.mark.parametrize("event, message", [
    ({"source": "paystream.payments", "detail-type": "payment.created", "detail": {}}, "expected a fraud.scored"),
    ({"source": "paystream.fraud", "detail-type": "fraud.scored", "detail": {"event_id": "e"}}, "transaction_id, risk_score"),
    ({"source": "paystream.fraud", "detail-type": "fraud.scored",
      "detail": {"event_id": "e", "transaction_id": "t", "risk_score": "high"}}, "integer 0-100"),
])
def test_an_unusable_message_is_refused_with_the_reason(event, message):
    with pytest.raises(InvalidFraudEvent, match=message):
        FraudFlag.from_bus_event(event)


def test_the_alert_carries_the_score_reasons_and_what_was_done(service, store, stripe):
    make_payment(store, stripe, risk_score=80)
    flagged = flag(score=80)
    message = alert(flagged, service.flagged(flagged), service.thresholds)
    assert message["risk_score"] == 80 and message["decision"] == "review" and message["action"] == "held"
    assert message["risk_factors"] == [{"code": "velocity", "reason": "7 payments in 300 s", "weight": 40}]
    assert (message["transaction_id"], message["status"], message["amount"]) == ("tx-1", "review", 4200)


# ---------------------------------------------------------------- risk-gated capture (capture_payment)

def test_a_low_score_captures_the_authorization_once(service, store, stripe):
    make_payment(store, stripe, risk_score=10)
    outcome = service.capture_if_cleared("tx-1")
    assert (outcome.action, outcome.projection.status) == ("captured", "succeeded")
    assert service.capture_if_cleared("tx-1").action == "nothing_to_capture"  # the other trigger, later
    assert stripe.effects() == [("capture", "pi_tx-1", capture_idempotency_key("tx-1"))]
    assert store.load("tx-1")[1][-1].detail["captured_by"] == "risk_gated_capture"


@pytest.mark.parametrize("setup, action", [
    ({"risk_score": None}, "awaiting_score"),  # authorized first: the score's event triggers again
    ({"risk_score": 70}, "held_for_review"),
    ({"risk_score": 5, "intent_status": "requires_action", "events": ("payment.requires_action",)}, "awaiting_authorization"),
    ({"risk_score": 5, "capture_method": "automatic", "intent_status": "succeeded", "events": ("payment.succeeded",)}, "not_risk_gated"),
])
def test_nothing_is_captured_before_both_facts_are_known(service, store, stripe, setup, action):
    make_payment(store, stripe, **setup)
    assert service.capture_if_cleared("tx-1").action == action
    assert stripe.effects() == []


# ---------------------------------------------------------------- operators (scripts/review.py)

def test_an_approved_payment_is_captured_and_the_decision_recorded_with_the_operator(service, store, stripe):
    make_payment(store, stripe, risk_score=80)
    service.flagged(flag(score=80))
    projection = service.approve("tx-1", operator="ana", reason="customer confirmed by phone")
    assert (projection.status, projection.review_decision) == ("succeeded", "approved")
    events = store.load("tx-1")[1]
    reviewed = next(e for e in events if e.event_type == "payment.reviewed")
    assert reviewed.detail == {"decision": "approved", "operator": "ana", "reason": "customer confirmed by phone"}
    assert events[-1].event_type == "payment.succeeded" and events[-1].detail["approved_by"] == "ana"
    assert stripe.effects() == [("capture", "pi_tx-1", capture_idempotency_key("tx-1"))]


def test_a_declined_payment_is_canceled_and_a_second_decision_is_refused(service, store, stripe):
    make_payment(store, stripe, risk_score=80)
    service.flagged(flag(score=80))
    projection = service.decline("tx-1", operator="bo", reason="card reported stolen")
    assert (projection.status, projection.review_decision) == ("canceled", "declined")
    assert stripe.intents["pi_tx-1"]["status"] == "canceled"
    with pytest.raises(ReviewRefused, match="already declined"):
        service.approve("tx-1", operator="ana", reason="changed my mind")
    assert [e for e in event_types(store) if e == "payment.reviewed"] == ["payment.reviewed"]


def test_a_decision_re_run_after_a_stripe_failure_completes_it(service, store, stripe):
    make_payment(store, stripe, risk_score=80)
    service.flagged(flag(score=80))
    failing = stripe.capture_payment_intent
    stripe.capture_payment_intent = lambda *a, **k: (_ for _ in ()).throw(
        PaymentProviderError("unavailable", retryable=True, unavailable=True, message="connection refused"))
    with pytest.raises(PaymentProviderError):
        service.approve("tx-1", operator="ana", reason="ok")
    assert store.load("tx-1")[0].review_decision == "approved"  # the decision is never lost
    stripe.capture_payment_intent = failing
    assert service.approve("tx-1", operator="ana", reason="ok").status == "succeeded"
    assert event_types(store).count("payment.reviewed") == 1


def test_decisions_need_a_payment_in_review_an_operator_and_a_reason(service, store, stripe):
    make_payment(store, stripe, risk_score=10)
    with pytest.raises(ReviewRefused, match="processing, not held in review"):
        service.approve("tx-1", operator="ana", reason="fine")
    with pytest.raises(ReviewRefused, match="operator name and a reason"):
        service.decline("tx-1", operator="ana", reason=" ")
    assert stripe.effects() == []


def test_held_lists_payments_in_review_soonest_expiry_first(service, store, stripe):
    for transaction_id, created in (("tx-late", CREATED_AT + 3600), ("tx-soon", CREATED_AT)):
        make_payment(store, stripe, transaction_id, risk_score=80)
        stripe.intents[f"pi_{transaction_id}"]["created"] = created
        service.flagged(flag(transaction_id, score=80))
    make_payment(store, stripe, "tx-fine", risk_score=10)
    held = service.held()
    assert [h.projection.transaction_id for h in held] == ["tx-soon", "tx-late"]
    assert held[0].expires_at == datetime.fromtimestamp(CREATED_AT, timezone.utc) + timedelta(days=7)


def test_stripes_capture_before_wins_over_the_seven_day_default():
    intent = {"created": CREATED_AT, "latest_charge": {"created": CREATED_AT + 60, "payment_method_details": {
        "card": {"capture_before": CREATED_AT + 86400}}}}
    authorized, expires = authorization_window(intent)
    assert authorized == datetime.fromtimestamp(CREATED_AT + 60, timezone.utc)
    assert expires == datetime.fromtimestamp(CREATED_AT + 86400, timezone.utc)
