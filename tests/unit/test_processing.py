"""Stripe webhook processing (paystream.processing) over the event store on in-process moto.

The store, its TransactWriteItems conditions and the PaymentIntent links are real (moto); the inbox
outcome recorder and the ops-alerts publisher are in-memory fakes (the DynamoDB recorder has its own
test at the end).
"""

from __future__ import annotations

import itertools
import json
import random

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.inbox import DynamoDBWebhookOutcomes
from paystream.models import PaymentRequest, Projection, Status
from paystream.payments import append_event
from paystream.processing import (
    APPLIED,
    IGNORED,
    NO_CHANGE,
    UNMATCHED,
    MalformedStripeEvent,
    Outcome,
    PaymentNotYetKnown,
    StripeEventProcessor,
    parse_bus_event,
)
from paystream.states import apply, created_event
from paystream.store import EventStore, PaymentIntentLinkConflict

TABLE = "transactions"
REQUEST = PaymentRequest(amount=5000, currency="usd", customer_id="cus_1", payment_method_id="pm_1", order_id="o-1")
_ids = itertools.count(1)


class RecordedOutcomes:
    def __init__(self):
        self.records: dict[str, dict] = {}

    def record_all(self, outcomes):
        for outcome in outcomes:
            self.records[outcome.stripe_event_id] = {"status": outcome.status, "transaction_id": outcome.transaction_id,
                                                     "reason": outcome.reason}
        return {}


class RecordedAlerts:
    def __init__(self):
        self.alerts: list[tuple[str, dict]] = []

    def publish(self, subject, message):
        self.alerts.append((subject, message))


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
        ddb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )
        yield ddb


@pytest.fixture
def store(client) -> EventStore:
    return EventStore(DynamoDBTransactionsTable(client, TABLE))


@pytest.fixture
def outcomes() -> RecordedOutcomes:
    return RecordedOutcomes()


@pytest.fixture
def alerts() -> RecordedAlerts:
    return RecordedAlerts()


@pytest.fixture
def processor(store, outcomes, alerts) -> StripeEventProcessor:
    return StripeEventProcessor(store, outcomes, alerts, unmatched_retry_receives=3)


def new_payment(store: EventStore, transaction_id: str = "tx-1", payment_intent_id: str | None = "pi_1",
                status_event: str = "payment.processing") -> Projection:
    """A payment as initiation leaves it: created, then (with a PaymentIntent) Stripe's first answer."""
    first = created_event(transaction_id, REQUEST)
    projection = apply(None, first)
    store.create(projection, first)
    if payment_intent_id:
        projection = append_event(store, projection, status_event, {"payment_intent_id": payment_intent_id})
    return projection


def stripe_event(event_type: str, data_object: dict, event_id: str | None = None) -> dict:
    return {"id": event_id or f"evt_{next(_ids)}", "object": "event", "type": event_type, "created": 1_700_000_000,
            "livemode": False, "data": {"object": data_object}}


def bus_event(event: dict) -> dict:
    """The EventBridge event the outbox relay publishes for a stored webhook (paystream.relay)."""
    return {"version": "0", "id": "bus-1", "source": "paystream.stripe", "detail-type": f"stripe.{event['type']}",
            "time": "2026-11-22T05:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"event_id": event["id"], "stripe_event_id": event["id"], "stripe_event_type": event["type"],
                       "object_id": event["data"]["object"].get("id"), "event": event}}


def intent(event_type: str, *, payment_intent_id: str = "pi_1", transaction_id: str | None = "tx-1",
           event_id: str | None = None, **fields) -> dict:
    status = {"payment_intent.succeeded": "succeeded", "payment_intent.processing": "processing",
              "payment_intent.requires_action": "requires_action", "payment_intent.canceled": "canceled",
              "payment_intent.payment_failed": "requires_payment_method",
              "payment_intent.amount_capturable_updated": "requires_capture"}.get(event_type, "processing")
    obj = {"id": payment_intent_id, "object": "payment_intent", "amount": 5000, "currency": "usd", "status": status,
           "metadata": {"transaction_id": transaction_id} if transaction_id else {}, **fields}
    return stripe_event(event_type, obj, event_id)


def charge_refunded(amount_refunded: int, *, payment_intent_id: str = "pi_1", event_id: str | None = None) -> dict:
    return stripe_event("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 5000,
                                            "amount_refunded": amount_refunded, "payment_intent": payment_intent_id,
                                            "metadata": {}}, event_id)


def dispute(event_type: str, *, status: str = "needs_response", payment_intent_id: str | None = "pi_1",
            charge: str | dict = "ch_1", event_id: str | None = None) -> dict:
    return stripe_event(event_type, {"id": "dp_1", "object": "dispute", "amount": 5000, "charge": charge,
                                     "payment_intent": payment_intent_id, "reason": "fraudulent", "status": status},
                        event_id)


def deliver(processor: StripeEventProcessor, event: dict, receive_count: int = 1):
    return processor.process(parse_bus_event(json.dumps(bus_event(event))), receive_count=receive_count)


def history(store: EventStore, transaction_id: str = "tx-1") -> tuple[Projection, list]:
    return store.load(transaction_id)


def types(events) -> list[str]:
    return [e.event_type for e in events]


# ------------------------------------------------------------------ mapping


@pytest.mark.parametrize(("stripe_type", "payment_type", "status"), [
    ("payment_intent.processing", "payment.processing", Status.PROCESSING),
    ("payment_intent.requires_action", "payment.requires_action", Status.REQUIRES_ACTION),
    ("payment_intent.succeeded", "payment.succeeded", Status.SUCCEEDED),
    ("payment_intent.payment_failed", "payment.failed", Status.FAILED),
    ("payment_intent.canceled", "payment.canceled", Status.CANCELED),
    ("payment_intent.amount_capturable_updated", "payment.processing", Status.PROCESSING),
])
def test_each_payment_intent_event_maps_onto_its_payment_event(processor, store, stripe_type, payment_type, status):
    new_payment(store, payment_intent_id=None)  # created, nothing from Stripe recorded yet
    event = intent(stripe_type, event_id="evt_map", last_payment_error={
        "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds."}, cancellation_reason="abandoned")
    outcome = deliver(processor, event)
    projection, events = history(store)
    assert (outcome.status, outcome.appended, outcome.transaction_id) == (APPLIED, [payment_type], "tx-1")
    assert projection.status == status and projection.payment_intent_id == "pi_1"
    appended = events[-1]
    assert (appended.event_type, appended.source) == (payment_type, "paystream.payments")
    detail = appended.detail
    assert (detail["stripe_event_id"], detail["stripe_event_type"], detail["payment_intent_id"]) == (
        "evt_map", stripe_type, "pi_1")
    assert json.loads(detail["stripe_object"]) == event["data"]["object"]  # the raw provider payload, kept
    if stripe_type == "payment_intent.amount_capturable_updated":
        assert detail["stripe_status"] == "requires_capture"
    if stripe_type == "payment_intent.canceled":
        assert detail["cancellation_reason"] == "abandoned"
    if stripe_type == "payment_intent.payment_failed":
        assert (detail["retryable"], detail["failure_code"], detail["attempt"]) == (False, "insufficient_funds", 1)
        assert projection.failure_message == "Your card has insufficient funds."


@pytest.mark.parametrize(("error", "retryable"), [
    ({"type": "card_error", "code": "card_declined", "decline_code": "generic_decline"}, False),
    ({"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}, False),
    ({"type": "card_error", "code": "expired_card"}, False),
    ({"type": "card_error", "code": "incorrect_cvc"}, False),
    ({"type": "card_error", "code": "authentication_required"}, False),
    ({"type": "card_error", "code": "processing_error"}, True),
    ({"type": "card_error", "code": "card_declined", "decline_code": "processing_error"}, True),
    ({"type": "invalid_request_error", "code": "rate_limit"}, True),
    ({"type": "api_error"}, True),
    ({"type": "api_connection_error"}, True),
    ({}, False),
])
def test_failures_are_retryable_only_when_stripe_not_the_card_failed(processor, store, error, retryable):
    new_payment(store)
    deliver(processor, intent("payment_intent.payment_failed", last_payment_error=error))
    projection, events = history(store)
    assert events[-1].detail["retryable"] is retryable and projection.retryable is retryable


def test_the_gateway_classifies_a_card_processing_error_like_the_webhook_does():
    import stripe

    from paystream.adapters.stripe_gateway import map_stripe_error

    def card_error(code, decline_code=None):
        exc = stripe.CardError("failed", param=None, code=code, http_status=402,
                               json_body={"error": {"type": "card_error", "code": code, "decline_code": decline_code}})
        return map_stripe_error(exc)

    assert card_error("processing_error").retryable is True
    assert card_error("card_declined", "insufficient_funds").retryable is False
    assert card_error("expired_card").retryable is False


def test_a_webhook_failure_is_recorded_under_the_current_attempt_never_a_new_one(processor, store):
    projection = new_payment(store)
    projection = append_event(store, projection, "payment.failed", {"retryable": True, "attempt": 1})
    append_event(store, projection, "payment.failed", {"retryable": True, "attempt": 2})  # the retry function's
    outcome = deliver(processor, intent("payment_intent.payment_failed",
                                        last_payment_error={"type": "card_error", "code": "processing_error"}))
    projection, events = history(store)
    assert outcome.status == NO_CHANGE  # attempt 2's failure is already recorded
    assert projection.attempt == 2 and types(events).count("payment.failed") == 2


def test_charge_refunded_partial_then_full_then_late_partial(processor, store):
    new_payment(store, status_event="payment.succeeded")
    assert deliver(processor, charge_refunded(2000)).status == APPLIED
    projection, _ = history(store)
    assert (projection.status, projection.amount_refunded) == (Status.PARTIALLY_REFUNDED, 2000)
    assert deliver(processor, charge_refunded(5000)).status == APPLIED
    assert deliver(processor, charge_refunded(2000)).status == NO_CHANGE  # the partial one, delivered late
    assert deliver(processor, charge_refunded(5000)).status == NO_CHANGE  # a duplicate with a new event id
    projection, events = history(store)
    assert (projection.status, projection.amount_refunded) == (Status.REFUNDED, 5000)
    refunds = [e for e in events if e.event_type == "payment.refunded"]
    assert [(e.detail["amount_refunded"], e.detail["charge_id"], e.detail["payment_intent_id"]) for e in refunds] == [
        (2000, "ch_1", "pi_1"), (5000, "ch_1", "pi_1")]


def test_dispute_created_then_closed_records_the_outcome_once(processor, store):
    new_payment(store, status_event="payment.succeeded")
    assert deliver(processor, dispute("charge.dispute.created")).status == APPLIED
    assert deliver(processor, dispute("charge.dispute.closed", status="won")).status == APPLIED
    assert deliver(processor, dispute("charge.dispute.closed", status="won")).status == NO_CHANGE
    assert deliver(processor, dispute("charge.dispute.created")).status == NO_CHANGE
    projection, events = history(store)
    assert (projection.status, projection.dispute_status) == (Status.DISPUTED, "won")
    assert types(events) == ["payment.created", "payment.succeeded", "payment.disputed", "payment.dispute_closed"]
    disputed = events[2].detail
    assert (disputed["dispute_id"], disputed["dispute_reason"], disputed["dispute_amount"]) == ("dp_1", "fraudulent", 5000)


def test_a_dispute_closed_before_its_created_webhook_still_records_dispute_and_outcome(processor, store):
    new_payment(store, status_event="payment.succeeded")
    outcome = deliver(processor, dispute("charge.dispute.closed", status="lost"))
    assert outcome.appended == ["payment.disputed", "payment.dispute_closed"]
    assert deliver(processor, dispute("charge.dispute.created")).status == NO_CHANGE
    projection, events = history(store)
    assert (projection.status, projection.dispute_status) == (Status.DISPUTED, "lost")
    assert types(events)[-2:] == ["payment.disputed", "payment.dispute_closed"]


def test_a_dispute_naming_only_an_expanded_charge_finds_the_payment(processor, store):
    new_payment(store, status_event="payment.succeeded")
    event = dispute("charge.dispute.created", payment_intent_id=None, charge={"id": "ch_1", "payment_intent": "pi_1"})
    assert deliver(processor, event).status == APPLIED
    assert history(store)[0].status == Status.DISPUTED


# ------------------------------------------------------------------ order and duplicates


def lifecycle_webhooks() -> list[dict]:
    """A successful payment's webhooks, refunded in part and then disputed; each sent three times,
    twice with the same event id (Stripe's redelivery) and once with another (a second endpoint, a replay)."""
    webhooks = [
        intent("payment_intent.processing", event_id="evt_processing"),
        intent("payment_intent.succeeded", event_id="evt_succeeded"),
        intent("payment_intent.payment_failed", event_id="evt_failed_late",
               last_payment_error={"type": "card_error", "code": "card_declined"}),
        charge_refunded(1000, event_id="evt_refund"),
        dispute("charge.dispute.created", event_id="evt_dispute"),
    ]
    copies = []
    for webhook in webhooks:
        copies += [webhook, webhook, {**webhook, "id": webhook["id"] + "_again"}]
    return copies


def deliver_like_sqs(processor: StripeEventProcessor, deliveries: list[dict]) -> None:
    """Deliver in order; a record that fails (no payment matched yet) comes back after the others, as
    SQS redelivers it after its visibility timeout, with its receive count raised."""
    queue = [(webhook, 1) for webhook in deliveries]
    while queue:
        webhook, receive_count = queue.pop(0)
        try:
            deliver(processor, webhook, receive_count)
        except PaymentNotYetKnown:
            queue.append((webhook, receive_count + 1))


@pytest.mark.parametrize("seed", range(8))
def test_every_webhook_three_times_in_shuffled_order_ends_right_with_one_event_per_transition(processor, store, alerts, seed):
    new_payment(store, payment_intent_id=None)
    deliveries = lifecycle_webhooks()
    random.Random(seed).shuffle(deliveries)
    deliver_like_sqs(processor, deliveries)
    projection, events = history(store)
    appended = types(events)[1:]
    assert len(appended) == len(set(appended))  # never a second event for one transition
    assert projection.status == Status.DISPUTED and not alerts.alerts  # disputed is terminal, whatever the order
    assert appended[-1] == "payment.disputed"
    assert "payment.failed" not in appended or appended.index("payment.failed") < appended.index("payment.succeeded")
    assert "payment.processing" not in appended or appended.index("payment.processing") < appended.index("payment.succeeded")
    for event in events[1:]:
        assert event.source == "paystream.payments" and event.detail["payment_intent_id"] == "pi_1"


@pytest.mark.parametrize("seed", range(8))
def test_success_webhooks_three_times_shuffled_always_end_succeeded(processor, store, seed):
    new_payment(store, payment_intent_id=None)
    deliveries = [w for w in lifecycle_webhooks() if w["type"].startswith("payment_intent.")]
    random.Random(seed).shuffle(deliveries)
    for webhook in deliveries:
        deliver(processor, webhook)
    projection, events = history(store)
    assert projection.status == Status.SUCCEEDED and projection.failure_code is None
    assert types(events)[-1] == "payment.succeeded" and types(events).count("payment.succeeded") == 1
    assert set(types(events)) <= {"payment.created", "payment.processing", "payment.failed", "payment.succeeded"}


def test_succeeded_before_processing_stays_succeeded(processor, store):
    new_payment(store, payment_intent_id=None)
    assert deliver(processor, intent("payment_intent.succeeded")).status == APPLIED
    outcome = deliver(processor, intent("payment_intent.processing"))
    assert outcome.status == NO_CHANGE and outcome.payment_status == "succeeded"
    assert types(history(store)[1]) == ["payment.created", "payment.succeeded"]


def test_a_refund_before_the_success_webhook_records_the_success_it_implies(processor, store):
    new_payment(store)  # processing
    outcome = deliver(processor, charge_refunded(1500))
    assert outcome.appended == ["payment.succeeded", "payment.refunded"]
    assert deliver(processor, intent("payment_intent.succeeded")).status == NO_CHANGE
    projection, events = history(store)
    assert (projection.status, projection.amount_refunded) == (Status.PARTIALLY_REFUNDED, 1500)
    assert events[2].detail["implied_by"] == "charge.refunded"
    assert types(events) == ["payment.created", "payment.processing", "payment.succeeded", "payment.refunded"]


def test_failed_after_succeeded_changes_nothing(processor, store):
    new_payment(store, status_event="payment.succeeded")
    outcome = deliver(processor, intent("payment_intent.payment_failed",
                                        last_payment_error={"type": "card_error", "code": "card_declined"}))
    assert outcome.status == NO_CHANGE
    projection, events = history(store)
    assert projection.status == Status.SUCCEEDED and types(events) == ["payment.created", "payment.succeeded"]


def test_every_processed_webhook_outcome_is_noted(processor, store, outcomes):
    new_payment(store)
    deliver(processor, intent("payment_intent.succeeded", event_id="evt_a"))
    deliver(processor, intent("payment_intent.succeeded", event_id="evt_b"))
    deliver(processor, stripe_event("customer.created", {"id": "cus_9", "object": "customer"}, "evt_c"))
    assert outcomes.records["evt_a"]["status"] == APPLIED and outcomes.records["evt_a"]["transaction_id"] == "tx-1"
    assert outcomes.records["evt_b"]["status"] == NO_CHANGE and "already succeeded" in outcomes.records["evt_b"]["reason"]
    assert outcomes.records["evt_c"] == {"status": IGNORED, "transaction_id": None,
                                         "reason": "customer.created does not change a payment"}


def test_other_event_types_are_acknowledged_without_touching_any_payment(processor, store, alerts):
    new_payment(store)
    outcome = deliver(processor, stripe_event("payment_method.attached", {"id": "pm_9", "object": "payment_method"}))
    assert outcome.status == IGNORED and not alerts.alerts
    assert types(history(store)[1]) == ["payment.created", "payment.processing"]


# ------------------------------------------------------------------ finding the payment


def test_a_charge_event_before_the_link_exists_is_retried_then_matched(processor, store, outcomes, alerts):
    first = created_event("tx-1", REQUEST)
    projection = apply(None, first)
    store.create(projection, first)  # initiation stored the payment; its Stripe answer is not recorded yet
    refund = charge_refunded(5000, event_id="evt_early")
    for receive_count in (1, 2):
        with pytest.raises(PaymentNotYetKnown, match="pi_1"):
            deliver(processor, refund, receive_count)
    assert "evt_early" not in outcomes.records and not alerts.alerts
    append_event(store, projection, "payment.succeeded", {"payment_intent_id": "pi_1"})  # writes the link
    assert deliver(processor, refund, 3).status == APPLIED
    assert history(store)[0].status == Status.REFUNDED


def test_an_unknown_payment_intent_is_recorded_as_unmatched_and_alerted_after_the_threshold(processor, store, outcomes, alerts):
    event = charge_refunded(100, payment_intent_id="pi_foreign", event_id="evt_foreign")
    for receive_count in (1, 2):
        with pytest.raises(PaymentNotYetKnown):
            deliver(processor, event, receive_count)
    assert not alerts.alerts
    outcome = deliver(processor, event, 3)
    assert outcome.status == UNMATCHED
    assert outcomes.records["evt_foreign"]["status"] == UNMATCHED
    [(subject, message)] = alerts.alerts
    assert "charge.refunded" in subject
    assert (message["stripe_event_id"], message["stripe_event_type"], message["object_id"],
            message["payment_intent_id"]) == ("evt_foreign", "charge.refunded", "ch_1", "pi_foreign")


def test_metadata_naming_no_stored_payment_is_unmatched(processor, alerts):
    event = intent("payment_intent.succeeded", payment_intent_id="pi_x", transaction_id="tx-nobody")
    with pytest.raises(PaymentNotYetKnown):
        deliver(processor, event, 2)
    assert deliver(processor, event, 3).status == UNMATCHED
    assert alerts.alerts[0][1]["transaction_id"] == "tx-nobody"


def test_a_payment_intent_that_is_not_the_payments_own_is_unmatched_at_once(processor, store, alerts):
    new_payment(store, payment_intent_id="pi_1")
    outcome = deliver(processor, intent("payment_intent.succeeded", payment_intent_id="pi_other"), 1)
    assert outcome.status == UNMATCHED and "pi_other" in outcome.reason
    assert history(store)[0].status == Status.PROCESSING and len(alerts.alerts) == 1


# ------------------------------------------------------------------ PaymentIntent links in the event store


def test_the_first_recording_of_a_payment_intent_writes_its_link_in_the_same_transaction(store, client):
    first = created_event("tx-1", REQUEST)
    projection = apply(None, first)
    store.create(projection, first)
    assert store.find_transaction_ids(["pi_1"]) == {}
    calls = []
    original = client.transact_write_items

    def spy(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    client.transact_write_items = spy
    projection = append_event(store, projection, "payment.processing", {"payment_intent_id": "pi_1"})
    append_event(store, projection, "payment.succeeded", {"payment_intent_id": "pi_1"})
    assert store.find_transaction_ids(["pi_1"]) == {"pi_1": "tx-1"}
    first_write, second_write = ([item["Put"]["Item"]["pk"]["S"] for item in call["TransactItems"]] for call in calls)
    assert first_write == ["TXN#tx-1", "TXN#tx-1", "PAYMENT_INTENT#pi_1"]  # event, projection, link: one round trip
    assert second_write == ["TXN#tx-1", "TXN#tx-1"]  # already linked: nothing more
    link = client.get_item(TableName=TABLE, Key={"pk": {"S": "PAYMENT_INTENT#pi_1"}, "sk": {"S": "LINK"}})["Item"]
    assert link["item_type"] == {"S": "payment_intent_link"} and link["transaction_id"] == {"S": "tx-1"}


def test_a_payment_intent_linked_to_another_payment_is_refused_and_nothing_is_written(store):
    new_payment(store, "tx-1", payment_intent_id="pi_1")
    other = new_payment(store, "tx-2", payment_intent_id=None)
    with pytest.raises(PaymentIntentLinkConflict, match="pi_1"):
        append_event(store, other, "payment.processing", {"payment_intent_id": "pi_1"})
    projection, events = store.load("tx-2")
    assert projection.payment_intent_id is None and types(events) == ["payment.created"]
    assert store.find_transaction_ids(["pi_1"]) == {"pi_1": "tx-1"}


# ------------------------------------------------------------------ malformed input


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"source": "paystream.payments", "detail": {}}), "source"),
    # A payment event with source paystream.stripe is no relayed webhook either.
    (json.dumps({"source": "paystream.stripe", "detail-type": "payment.refunded", "detail": {"transaction_id": "t"}}),
     "detail-type 'payment.refunded'"),
    (json.dumps({"source": "paystream.stripe", "detail-type": "stripe.x", "detail": {"event": {"id": 1}}}), "needs string"),
    (json.dumps({"source": "paystream.stripe", "detail-type": "stripe.x", "detail": {"event": {"id": "evt", "type": "x"}}}),
     "data.object"),
])
def test_malformed_messages_are_refused_with_a_reason(body, message):
    with pytest.raises(MalformedStripeEvent, match=message):
        parse_bus_event(body)


def test_a_refund_without_an_amount_refunded_is_malformed(processor, store):
    new_payment(store, status_event="payment.succeeded")
    event = stripe_event("charge.refunded", {"id": "ch_1", "object": "charge", "payment_intent": "pi_1"})
    with pytest.raises(MalformedStripeEvent, match="amount_refunded"):
        deliver(processor, event)
    assert history(store)[0].status == Status.SUCCEEDED


# ------------------------------------------------------------------ the DynamoDB outcome recorder


def test_the_inbox_item_gets_its_outcome_and_a_missing_one_is_never_created(client):
    client.put_item(TableName=TABLE, Item={"pk": {"S": "STRIPE_EVENT#evt_1"}, "sk": {"S": "INBOX"},
                                           "item_type": {"S": "stripe_event"}, "payload": {"S": "{}"}})
    recorder = DynamoDBWebhookOutcomes(client, TABLE, clock=lambda: "2026-11-22T05:00:00.000Z")
    # evt_gone's missing item cancels the batch's transaction: each outcome is then written on its own.
    assert recorder.record_all([
        Outcome(UNMATCHED, "evt_1", "charge.refunded", "no payment is linked to PaymentIntent pi_x"),
        Outcome(APPLIED, "evt_gone", "payment_intent.succeeded", "expired from the inbox", transaction_id="tx-1"),
    ]) == {}
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": "STRIPE_EVENT#evt_1"}, "sk": {"S": "INBOX"}})["Item"]
    assert (item["processing_status"]["S"], item["processed_at"]["S"], item["payload"]["S"]) == (
        "unmatched", "2026-11-22T05:00:00.000Z", "{}")
    assert "no payment" in item["processing_reason"]["S"] and "transaction_id" not in item
    assert "Item" not in client.get_item(TableName=TABLE, Key={"pk": {"S": "STRIPE_EVENT#evt_gone"}, "sk": {"S": "INBOX"}})
