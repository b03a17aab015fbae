"""Retries of failed payments: the core (paystream.retries) on in-process moto with a fake Stripe, and the
payment_retry handler through SQS events (visibility backoff, idempotency per attempt)."""

from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from paystream.adapters import stripe_gateway
from paystream.adapters.breaker_store import DynamoDBBreakerStore
from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.stripe_gateway import PaymentProviderError
from paystream.breaker import CircuitBreaker
from paystream.models import PaymentRequest
from paystream.payments import ProviderUnavailable, append_event
from paystream.retries import (
    FailedAttempt,
    InvalidRetryMessage,
    NotDueYet,
    RetryPolicy,
    RetryService,
)
from paystream.states import apply, created_event
from paystream.store import EventStore

REGION = "us-east-1"
LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
T0 = datetime(2026, 11, 1, 5, 0, 0, tzinfo=timezone.utc).timestamp()
REQUEST = PaymentRequest(amount=2500, currency="eur", customer_id="cus_1", payment_method_id="pm_1", order_id="o-1",
                         description="two tickets")


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeStripe:
    """Answers each call from a script of outcomes: an intent status or a PaymentProviderError."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.outcomes: list = []
        self.during_call = None  # runs inside a call, e.g. to deliver a duplicate meanwhile

    def _answer(self, kind: str, kwargs: dict, intent_id: str):
        self.calls.append((kind, kwargs))
        if self.during_call:
            self.during_call()
        outcome = self.outcomes.pop(0) if self.outcomes else "succeeded"
        if isinstance(outcome, Exception):
            raise outcome
        return {"id": intent_id, "status": outcome, "client_secret": "secret_never_stored"}

    def create_and_confirm_payment_intent(self, **kwargs):
        return self._answer("create", kwargs, "pi_created")

    def confirm_payment_intent(self, payment_intent_id, **kwargs):
        return self._answer("confirm", {"payment_intent_id": payment_intent_id, **kwargs}, payment_intent_id)


def rate_limited():
    # As stripe-python reports a 429: no error code, the kind says it.
    return PaymentProviderError("rate_limited", retryable=True, message="Too many requests", http_status=429)


def processing_error():
    return PaymentProviderError("card_declined", retryable=True, message="An error occurred while processing the card.",
                                code="processing_error", payment_intent={"id": "pi_1", "status": "requires_payment_method"})


def declined():
    return PaymentProviderError("card_declined", retryable=False, message="Your card was declined.",
                                code="card_declined", decline_code="insufficient_funds",
                                payment_intent={"id": "pi_1", "status": "requires_payment_method"})


def unavailable():
    return PaymentProviderError("unavailable", retryable=True, unavailable=True, message="connection refused")


def create_tables():
    ddb = boto3.client("dynamodb", region_name=REGION)
    for name, keys in (("transactions", ("pk", "sk")), ("idempotency", ("id",))):
        ddb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in zip(keys, ("HASH", "RANGE"))],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
        )
    return ddb


@pytest.fixture()
def world(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = create_tables()
        store = EventStore(DynamoDBTransactionsTable(ddb, "transactions"))
        clock = Clock(T0)
        breaker = CircuitBreaker("stripe", DynamoDBBreakerStore(ddb, "transactions"), failure_threshold=2,
                                 cooldown_seconds=30, clock=clock)
        stripe = FakeStripe()
        service = RetryService(store, stripe, breaker, RetryPolicy(max_attempts=3, backoff_base_seconds=10,
                                                                  backoff_max_seconds=60), clock=clock)
        yield store, stripe, service, clock, breaker


def failed_payment(store: EventStore, tid: str = "tx-1", detail: dict | None = None):
    """A stored payment whose first charge failed retryably (rate-limited create: no PaymentIntent)."""
    first = created_event(tid, REQUEST, occurred_at="2026-11-01T05:00:00.000Z")
    projection = apply(None, first)
    store.create(projection, first)
    detail = detail or {"retryable": True, "failure_code": "rate_limit", "failure_message": "Too many requests"}
    return append_event(store, projection, "payment.failed", detail)


def bus_event(store: EventStore, projection, **detail_overrides) -> dict:
    """The latest payment.failed event as EventBridge delivers it, built from the stored event."""
    _, events = store.load(projection.transaction_id)
    failure = [e for e in events if e.event_type == "payment.failed"][-1]
    detail = {**failure.to_bus_detail(), "occurred_at": "2026-11-01T05:00:00.000Z", **detail_overrides}
    return {"version": "0", "id": "bus-1", "detail-type": "payment.failed", "source": failure.source,
            "account": "000000000000", "time": "2026-11-22T05:00:00Z", "region": REGION, "resources": [],
            "detail": detail}


def event_types(store, tid="tx-1") -> list[str]:
    return [e.event_type for e in store.load(tid)[1]]


# -- the core --------------------------------------------------------------------------------------


def test_rate_limited_create_is_repeated_with_the_same_key_and_parameters_then_succeeds(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store)
    clock.now = T0 + 10
    outcome = service.retry(FailedAttempt.from_bus_event(bus_event(store, projection)))
    assert (outcome.retried, outcome.attempt, outcome.status) == (True, 2, "succeeded")
    [(kind, kwargs)] = stripe.calls
    assert kind == "create"
    assert kwargs == {"transaction_id": "tx-1", "amount": 2500, "currency": "eur", "customer_id": "cus_1",
                      "payment_method_id": "pm_1", "description": "two tickets", "metadata": {"order_id": "o-1"},
                      "idempotency_key": "paystream:tx-1:create", "capture_method": "automatic"}
    projection, events = store.load("tx-1")
    assert [e.event_type for e in events] == ["payment.created", "payment.failed", "payment.succeeded"]
    assert events[-1].detail["attempt"] == 2 and "secret_never_stored" not in json.dumps(events[-1].detail)
    assert projection.payment_intent_id == "pi_created" and projection.failure_code is None


def test_an_existing_payment_intent_is_confirmed_again_with_a_key_per_attempt(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store, detail={"retryable": True, "failure_code": "processing_error",
                                               "failure_message": "processing error", "payment_intent_id": "pi_1"})
    clock.now = T0 + 60
    stripe.outcomes = [processing_error(), "succeeded"]
    first = service.retry(FailedAttempt.from_bus_event(bus_event(store, projection)))
    assert (first.attempt, first.status) == (2, "failed")
    projection = store.get_projection("tx-1")
    second = service.retry(FailedAttempt.from_bus_event(bus_event(store, projection)))
    assert (second.attempt, second.status) == (3, "succeeded")
    assert [(kind, kw["idempotency_key"], kw["payment_method_id"]) for kind, kw in stripe.calls] == [
        ("confirm", "paystream:tx-1:confirm:2", "pm_1"), ("confirm", "paystream:tx-1:confirm:3", "pm_1")]
    assert {kw["payment_intent_id"] for _, kw in stripe.calls} == {"pi_1"}


def test_backoff_doubles_per_attempt_and_an_early_message_makes_no_call(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store)
    clock.now = T0 + 4
    with pytest.raises(NotDueYet) as waiting:
        service.retry(FailedAttempt.from_bus_event(bus_event(store, projection)))
    assert waiting.value.wait_seconds == pytest.approx(6)
    assert stripe.calls == []
    policy = service.policy
    assert [policy.delay_before(n) for n in (2, 3, 4, 5, 6)] == [10, 20, 40, 60, 60]
    assert [policy.unavailable_backoff(r) for r in (1, 2, 3, 9)] == [10, 20, 40, 60]


def test_retryable_failures_are_retried_up_to_the_limit_then_final(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store)
    clock.now = T0 + 1000
    stripe.outcomes = [rate_limited(), rate_limited()]
    service.retry(FailedAttempt.from_bus_event(bus_event(store, projection)))
    second = store.load("tx-1")[1][-1]
    assert (second.detail["attempt"], second.detail["retryable"], second.detail["final"]) == (2, True, False)
    outcome = service.retry(FailedAttempt.from_bus_event(bus_event(store, store.get_projection("tx-1"))))
    third = store.load("tx-1")[1][-1]
    assert (outcome.attempt, outcome.status) == (3, "failed")
    assert (third.detail["attempt"], third.detail["retryable"], third.detail["final"]) == (3, False, True)
    assert event_types(store) == ["payment.created", "payment.failed", "payment.failed", "payment.failed"]
    assert len(stripe.calls) == 2
    # The final failure is not a retryable message: the rule never matches it, and the core refuses it.
    with pytest.raises(InvalidRetryMessage, match="not retryable"):
        FailedAttempt.from_bus_event(bus_event(store, store.get_projection("tx-1"), retryable=False, final=True))


def test_a_decline_during_a_retry_is_final_at_once(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store)
    clock.now = T0 + 10
    stripe.outcomes = [declined()]
    outcome = service.retry(FailedAttempt.from_bus_event(bus_event(store, projection)))
    last = store.load("tx-1")[1][-1]
    assert outcome.status == "failed"
    assert (last.detail["retryable"], last.detail["final"], last.detail["failure_code"]) == (False, True, "insufficient_funds")
    assert last.detail["payment_intent_id"] == "pi_1"


def test_a_duplicate_delivery_of_a_handled_failure_makes_no_stripe_call(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store)
    clock.now = T0 + 10
    message = FailedAttempt.from_bus_event(bus_event(store, projection))
    stripe.outcomes = [rate_limited()]
    service.retry(message)
    again = service.retry(message)  # attempt 2 already failed: attempt 1's message is stale
    assert not again.retried and "not the latest failure" in again.reason
    assert len(stripe.calls) == 1 and event_types(store).count("payment.failed") == 2


def test_a_payment_that_succeeded_meanwhile_is_not_charged_again(world):
    store, stripe, service, clock, _ = world
    projection = failed_payment(store)
    message = FailedAttempt.from_bus_event(bus_event(store, projection))
    append_event(store, projection, "payment.succeeded", {"payment_intent_id": "pi_late"})
    clock.now = T0 + 10
    outcome = service.retry(message)
    assert not outcome.retried and outcome.status == "succeeded" and stripe.calls == []


def test_stripe_unavailable_or_breaker_open_postpones_without_using_an_attempt(world):
    store, stripe, service, clock, breaker = world
    projection = failed_payment(store)
    clock.now = T0 + 10
    message = FailedAttempt.from_bus_event(bus_event(store, projection))
    stripe.outcomes = [unavailable(), unavailable()]
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            service.retry(message)
    assert breaker.current().state == "open"
    with pytest.raises(ProviderUnavailable, match="circuit breaker open"):
        service.retry(message)
    assert len(stripe.calls) == 2 and event_types(store) == ["payment.created", "payment.failed"]
    clock.now += 31  # cooldown over: the probe goes through and succeeds
    assert service.retry(message).status == "succeeded"


def test_messages_that_are_not_retryable_failures_are_refused():
    base = {"detail-type": "payment.failed", "detail": {"transaction_id": "t", "event_id": "e", "retryable": True,
                                                         "occurred_at": "2026-11-01T05:00:00.000Z"}}
    assert FailedAttempt.from_bus_event(base).attempt == 1
    for bad in ({**base, "detail-type": "payment.succeeded"},
                {**base, "detail": {**base["detail"], "retryable": False}},
                {**base, "detail": {**base["detail"], "retryable": "true"}},
                {**base, "detail": {**base["detail"], "occurred_at": "yesterday"}},
                {**base, "detail": {k: v for k, v in base["detail"].items() if k != "transaction_id"}},
                ["not", "an", "event"]):
        with pytest.raises(InvalidRetryMessage):
            FailedAttempt.from_bus_event(bad)


# -- the handler -------------------------------------------------------------------------------------


class Context:
    function_name = "payment_retry"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:payment_retry"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


@pytest.fixture()
def handler_world(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = create_tables()
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="payment-retry", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="stripe-key", SecretString=json.dumps({"api_key": "sk_test_unit"}))
        for key, value in {"TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency",
                           "STRIPE_API_KEY_SECRET_ID": "stripe-key", "PAYMENT_RETRY_QUEUE_URL": queue_url,
                           "PAYMENT_RETRY_MAX_ATTEMPTS": "3", "PAYMENT_RETRY_BACKOFF_BASE_SECONDS": "1",
                           "BREAKER_CLOSED_CACHE_SECONDS": "0", "POWERTOOLS_SERVICE_NAME": "payment_retry"}.items():
            monkeypatch.setenv(key, value)
        stripe = FakeStripe()
        monkeypatch.setattr(stripe_gateway, "StripeGateway", lambda api_key, **kw: stripe)
        spec = importlib.util.spec_from_file_location("payment_retry_under_test", LAMBDAS / "payment_retry" / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        store = EventStore(DynamoDBTransactionsTable(ddb, "transactions"))
        yield module, store, stripe, sqs, queue_url


def sqs_batch(sqs, queue_url, bodies: list[str]) -> dict:
    """Send the bodies and receive them back, as the Lambda poller hands them over."""
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                   AttributeNames=["All"])["Messages"]
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                       "SentTimestamp": m["Attributes"]["SentTimestamp"]},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:payment-retry", "awsRegion": REGION,
    } for m in received]}


def test_handler_retries_due_failures_once_even_when_delivered_twice(handler_world):
    module, store, stripe, sqs, queue_url = handler_world
    projection = failed_payment(store)  # failed on 2026-11-01: long due now
    body = json.dumps(bus_event(store, projection))
    result = module.handler(sqs_batch(sqs, queue_url, [body, body]), Context())
    assert result == {"batchItemFailures": []}
    assert len(stripe.calls) == 1  # the second delivery of attempt 2 got the recorded outcome
    assert event_types(store) == ["payment.created", "payment.failed", "payment.succeeded"]


def test_handler_puts_back_early_messages_and_fails_unusable_ones(handler_world):
    module, store, stripe, sqs, queue_url = handler_world
    projection = failed_payment(store)
    now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    early = json.dumps(bus_event(store, projection, occurred_at=now))
    batch = sqs_batch(sqs, queue_url, [early, "not json", json.dumps({"detail-type": "payment.succeeded"})])
    result = module.handler(batch, Context())
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(r["messageId"] for r in batch["Records"])
    assert stripe.calls == []
    # The early message is invisible for its backoff (1 s base): not handed out again at once.
    visible = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert early not in [m["Body"] for m in visible]


def test_a_concurrent_duplicate_of_an_attempt_in_flight_makes_no_second_stripe_call(handler_world):
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    module, store, stripe, sqs, queue_url = handler_world
    projection = failed_payment(store)
    batch = sqs_batch(sqs, queue_url, [json.dumps(bus_event(store, projection))] * 2)
    first, duplicate = batch["Records"]
    raised = []

    def duplicate_arrives_meanwhile():
        # Another worker gets the same failure while this one waits for Stripe: the state still says
        # "attempt 1 failed", so only the idempotency record of attempt 2 (in progress) stops it.
        stripe.during_call = None
        try:
            module.retry(SQSRecord(duplicate))
        except IdempotencyAlreadyInProgressError as exc:
            raised.append(exc)

    stripe.during_call = duplicate_arrives_meanwhile
    assert module.handler({"Records": [first]}, Context()) == {"batchItemFailures": []}
    assert len(raised) == 1 and len(stripe.calls) == 1
    assert event_types(store) == ["payment.created", "payment.failed", "payment.succeeded"]
