"""The refund service (paystream.refunds) over the real event store in in-process moto, the real circuit
breaker on an in-memory store, and a fake Stripe that refunds as Stripe does (idempotency keys, never
more than what is left on the charge, cumulative `amount_refunded` on the charge)."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
import stripe
from botocore.config import Config
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.stripe_gateway import REFUND_EXCEEDS_REMAINING, PaymentProviderError, StripeGateway
from paystream.api import ApiError
from paystream.breaker import BreakerState, CircuitBreaker
from paystream.models import PaymentRequest, RefundRequest
from paystream.refunds import RefundRefused, RefundService, refund_request_key, stripe_refund_idempotency_key
from paystream.states import apply, created_event, next_event
from paystream.store import EventStore

TABLE = "transactions"
PAYMENT = PaymentRequest(amount=1000, currency="eur", customer_id="cus_1", payment_method_id="pm_1", order_id="o-1")
KEY_A = refund_request_key("apikey-1", "refund-a")
KEY_B = refund_request_key("apikey-1", "refund-b")
KEY_C = refund_request_key("apikey-1", "refund-c")


class FakeStripe:
    """Refunds like Stripe: one charge per PaymentIntent, an idempotency key gives back its first answer,
    a refund above what is left is refused (`charge_already_refunded` when nothing is left)."""

    def __init__(self):
        self.charges: dict[str, dict] = {}  # payment intent id -> charge
        self.refunds: list[dict] = []
        self.by_key: dict[str, dict] = {}
        self.calls: list[dict] = []
        self.unavailable = False
        self.charge_read_unavailable = False
        self.refusal: PaymentProviderError | None = None

    def add_charge(self, payment_intent_id: str, amount: int) -> None:
        self.charges[payment_intent_id] = {"id": f"ch_{payment_intent_id}", "amount": amount, "amount_refunded": 0}

    def create_refund(self, payment_intent_id, *, idempotency_key, amount=None, reason=None):
        self.calls.append({"payment_intent_id": payment_intent_id, "idempotency_key": idempotency_key,
                           "amount": amount, "reason": reason})
        if self.unavailable:
            raise PaymentProviderError("unavailable", retryable=True, unavailable=True, message="connection refused")
        if self.refusal:
            raise self.refusal
        if idempotency_key in self.by_key:
            return self.by_key[idempotency_key]
        charge = self.charges[payment_intent_id]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise PaymentProviderError(REFUND_EXCEEDS_REMAINING, retryable=False, code="charge_already_refunded",
                                       message=f"Charge {charge['id']} has already been refunded.")
        if amount is not None and amount > remaining:
            raise PaymentProviderError(REFUND_EXCEEDS_REMAINING, retryable=False,
                                       message=f"Refund amount ({amount}) is greater than unrefunded amount ({remaining})")
        refund = {"id": f"re_{len(self.refunds) + 1}", "object": "refund", "amount": amount or remaining,
                  "charge": charge["id"], "payment_intent": payment_intent_id, "status": "succeeded", "reason": reason}
        charge["amount_refunded"] += refund["amount"]
        self.refunds.append(refund)
        self.by_key[idempotency_key] = refund
        return refund

    def retrieve_charge(self, charge_id):
        if self.charge_read_unavailable:
            raise PaymentProviderError("unavailable", retryable=True, unavailable=True, message="read timed out")
        return dict(next(c for c in self.charges.values() if c["id"] == charge_id))


class MemoryBreakerStore:
    def __init__(self):
        self.state = BreakerState()

    def load(self, name):
        return self.state

    def save(self, name, state, expected_version):
        if self.state.version != expected_version:
            return False
        self.state = dataclasses.replace(state, version=expected_version + 1)
        return True


@pytest.fixture()
def store(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        )
        yield EventStore(DynamoDBTransactionsTable(client, TABLE))


@pytest.fixture()
def stripe_fake():
    return FakeStripe()


@pytest.fixture()
def breaker():
    return CircuitBreaker("stripe", MemoryBreakerStore(), failure_threshold=2, cooldown_seconds=30)


@pytest.fixture()
def service(store, stripe_fake, breaker):
    return RefundService(store, stripe_fake, breaker, retry_after_seconds=4.5)


def make_payment(store, stripe_fake, transaction_id="tx-1", *, outcome="payment.succeeded", amount=1000):
    """A payment through `outcome` (a list for several events), with its charge at the fake Stripe."""
    first = created_event(transaction_id, PAYMENT.model_copy(update={"amount": amount}))
    projection = apply(None, first)
    store.create(projection, first)
    intent_id = f"pi_{transaction_id}"
    for event_type in ([outcome] if isinstance(outcome, str) else outcome):
        detail = {"payment_intent_id": intent_id}
        if event_type == "payment.failed":
            detail |= {"retryable": False, "failure_code": "card_declined"}
        event = next_event(projection, event_type, detail)
        updated = apply(projection, event)
        store.append(transaction_id, projection.last_sequence, [event], updated)
        projection = updated
    stripe_fake.add_charge(intent_id, amount)
    return projection


def refund(service, amount=None, key=KEY_A, transaction_id="tx-1", reason=None):
    return service.refund(transaction_id, RefundRequest(amount=amount, reason=reason), key)


def refused(call) -> ApiError:
    with pytest.raises(RefundRefused) as error:
        call()
    return error.value.error


def refunded_events(store, transaction_id="tx-1"):
    return [e for e in store.load(transaction_id)[1] if e.event_type == "payment.refunded"]


def test_full_refund_when_no_amount_is_given(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    result = refund(service, reason="requested_by_customer")
    assert result.status_code == 201
    assert result.body == {"refund_id": "re_1", "transaction_id": "tx-1", "amount": 1000, "status": "succeeded",
                           "amount_refunded": 1000, "payment_status": "refunded"}
    assert stripe_fake.calls[0]["amount"] is None  # Stripe refunds what is left
    [event] = refunded_events(store)
    assert event.detail["amount_refunded"] == 1000 and event.detail["refund_id"] == "re_1"
    assert event.detail["refund_amount"] == 1000 and event.detail["reason"] == "requested_by_customer"
    assert json.loads(event.detail["stripe_refund"])["id"] == "re_1"
    projection = store.get_projection("tx-1")
    assert projection.status == "refunded" and projection.amount_refunded == 1000


def test_partial_refund_then_the_rest(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    first = refund(service, amount=300, key=KEY_A)
    assert (first.body["amount"], first.body["amount_refunded"], first.body["payment_status"]) == (300, 300, "partially_refunded")
    rest = refund(service, key=KEY_B)
    assert (rest.body["amount"], rest.body["amount_refunded"], rest.body["payment_status"]) == (700, 1000, "refunded")
    assert [e.detail["amount_refunded"] for e in refunded_events(store)] == [300, 1000]
    assert len(stripe_fake.refunds) == 2


def test_amount_above_what_is_left_is_422_naming_the_remaining_amount(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    refund(service, amount=600, key=KEY_A)
    error = refused(lambda: refund(service, amount=401, key=KEY_B))
    assert (error.status_code, error.error) == (422, "amount_exceeds_refundable")
    assert "remaining amount is 400 eur" in error.message
    assert len(stripe_fake.calls) == 1  # refused before calling Stripe


def test_a_fully_refunded_payment_has_nothing_left_422(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    refund(service, key=KEY_A)
    for amount in (None, 1):
        error = refused(lambda: refund(service, amount=amount, key=KEY_B))
        assert (error.status_code, error.error) == (422, "amount_exceeds_refundable")
        assert "remaining amount 0" in error.message
    assert len(stripe_fake.calls) == 1


@pytest.mark.parametrize("outcome, status", [
    ("payment.processing", "processing"),
    ("payment.failed", "failed"),
    ("payment.canceled", "canceled"),
    ("payment.requires_action", "requires_action"),
    (["payment.succeeded", "payment.disputed"], "disputed"),
])
def test_a_payment_that_has_not_succeeded_or_is_disputed_is_409_naming_its_status(service, store, stripe_fake, outcome, status):
    make_payment(store, stripe_fake, outcome=outcome)
    error = refused(lambda: refund(service))
    assert (error.status_code, error.error) == (409, "payment_not_refundable")
    assert f"is {status}" in error.message
    assert stripe_fake.calls == []


def test_unknown_payment_is_404(service, stripe_fake):
    error = refused(lambda: refund(service, transaction_id="nope"))
    assert (error.status_code, error.error) == (404, "not_found") and "nope" in error.message
    assert stripe_fake.calls == []


def test_stripe_refusing_an_amount_above_what_is_left_is_the_same_422(service, store, stripe_fake, breaker):
    make_payment(store, stripe_fake)
    # Another refund reached Stripe after our local check could see it (not recorded here yet).
    stripe_fake.create_refund("pi_tx-1", idempotency_key="elsewhere", amount=800)
    error = refused(lambda: refund(service, amount=500))
    assert (error.status_code, error.error) == (422, "amount_exceeds_refundable")
    assert "greater than unrefunded amount (200)" in error.message
    assert refunded_events(store) == []
    assert breaker.current().failures == 0  # Stripe answered: not an outage


def test_the_cumulative_amount_is_stripes_not_a_local_sum(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    stripe_fake.create_refund("pi_tx-1", idempotency_key="concurrent", amount=300)  # a concurrent refund
    result = refund(service, amount=200)
    assert (result.body["amount"], result.body["amount_refunded"]) == (200, 500)
    assert refunded_events(store)[0].detail["amount_refunded"] == 500
    assert store.get_projection("tx-1").amount_refunded == 500


def test_a_refund_whose_total_is_already_recorded_appends_nothing(service, store, stripe_fake):
    projection = make_payment(store, stripe_fake)
    # The charge.refunded webhook for a concurrent 300 + ours (200) got there first.
    stripe_fake.create_refund("pi_tx-1", idempotency_key="concurrent", amount=300)
    event = next_event(projection, "payment.refunded", {"amount_refunded": 500})
    store.append("tx-1", projection.last_sequence, [event], apply(projection, event))
    stripe_fake.charges["pi_tx-1"]["amount_refunded"] += 200
    stripe_fake.by_key[stripe_refund_idempotency_key("tx-1", KEY_A)] = {
        "id": "re_ours", "amount": 200, "charge": "ch_pi_tx-1", "status": "succeeded"}
    result = refund(service, amount=200)
    assert (result.body["refund_id"], result.body["amount_refunded"], result.body["payment_status"]) == (
        "re_ours", 500, "partially_refunded")
    assert len(refunded_events(store)) == 1


def test_open_breaker_is_503_with_retry_after_and_no_stripe_call(service, store, stripe_fake, breaker):
    make_payment(store, stripe_fake)
    stripe_fake.unavailable = True
    for key in (KEY_A, KEY_B):  # threshold 2: the breaker opens
        error = refused(lambda: refund(service, key=key))
        assert (error.status_code, error.error, error.headers) == (503, "provider_unavailable", {"Retry-After": "5"})
    calls = len(stripe_fake.calls)
    error = refused(lambda: refund(service, key=KEY_C))
    assert (error.status_code, error.headers["Retry-After"]) == (503, "5") and "circuit breaker open" in error.message
    assert len(stripe_fake.calls) == calls
    assert refunded_events(store) == []


def test_stripe_idempotency_key_is_stable_so_a_retry_never_refunds_twice(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    # The refund is made, then reading the charge fails: like a crash between Stripe and the append.
    stripe_fake.charge_read_unavailable = True
    assert refused(lambda: refund(service, amount=400)).status_code == 503
    assert len(stripe_fake.refunds) == 1 and refunded_events(store) == []
    stripe_fake.charge_read_unavailable = False
    result = refund(service, amount=400)
    assert result.status_code == 201 and result.body["refund_id"] == "re_1" and result.body["amount_refunded"] == 400
    assert len(stripe_fake.refunds) == 1
    keys = {call["idempotency_key"] for call in stripe_fake.calls}
    assert keys == {stripe_refund_idempotency_key("tx-1", KEY_A)} and "tx-1" in keys.pop()
    assert [e.detail["amount_refunded"] for e in refunded_events(store)] == [400]


def test_another_request_key_is_another_stripe_refund(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    refund(service, amount=100, key=KEY_A)
    refund(service, amount=100, key=KEY_B)
    assert len({c["idempotency_key"] for c in stripe_fake.calls}) == 2 and len(stripe_fake.refunds) == 2
    assert refund_request_key("apikey-1", "k") != refund_request_key("apikey-2", "k")


def test_a_retry_after_the_append_answers_from_the_recorded_event(service, store, stripe_fake):
    make_payment(store, stripe_fake)
    first = refund(service, key=KEY_A)  # full refund: nothing left afterwards
    again = refund(service, key=KEY_A)
    assert again.status_code == 201 and again.body == first.body
    assert len(stripe_fake.calls) == 1


@pytest.mark.parametrize("error, status, code", [
    (PaymentProviderError("invalid_request", retryable=False, code="charge_disputed", message="disputed"),
     409, "payment_not_refundable"),
    (PaymentProviderError("idempotency_conflict", retryable=False, message="keys for idempotent requests"),
     422, "idempotency_key_reused"),
    (PaymentProviderError("rate_limited", retryable=True, message="too many requests"), 503, "provider_unavailable"),
    (PaymentProviderError("configuration", retryable=False, message="invalid api key"), 502, "provider_error"),
])
def test_other_stripe_refusals_are_mapped(service, store, stripe_fake, error, status, code):
    make_payment(store, stripe_fake)
    stripe_fake.refusal = error
    answer = refused(lambda: refund(service))
    assert (answer.status_code, answer.error) == (status, code)
    assert refunded_events(store) == []


class _RaisingRefunds:
    def __init__(self, exc):
        self.exc = exc

    def create(self, **kwargs):
        raise self.exc


@pytest.mark.parametrize("exc, kind", [
    (stripe.InvalidRequestError("Charge ch_1 has already been refunded.", None, code="charge_already_refunded"),
     REFUND_EXCEEDS_REMAINING),
    (stripe.InvalidRequestError("Refund amount ($5.00) is greater than unrefunded amount on charge ($3.00)", "amount"),
     REFUND_EXCEEDS_REMAINING),
    (stripe.InvalidRequestError("Charge ch_1 has been charged back", None, code="charge_disputed"), "invalid_request"),
])
def test_the_gateway_recognises_stripes_refusal_of_an_amount_above_what_is_left(exc, kind):
    client = type("Client", (), {"v1": type("V1", (), {"refunds": _RaisingRefunds(exc)})()})()
    gateway = StripeGateway("sk_test_x", client=client)
    with pytest.raises(PaymentProviderError) as error:
        gateway.create_refund("pi_1", idempotency_key="k", amount=500)
    assert error.value.kind == kind and error.value.unavailable is False
