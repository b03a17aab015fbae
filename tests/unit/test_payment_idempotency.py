"""POST /payments' idempotency record inside the event store's transactions (docs/payments-core.md, "Idempotency"):
2 sequential AWS round trips for a new payment, and every answer to a repeated Idempotency-Key."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from paystream import relay
from paystream.adapters import wiring
from paystream.adapters.dynamodb_store import deserialize
from paystream.config import Settings
from paystream.models import PaymentRequest
from paystream.payments import PaymentService, RequestInProgress
from paystream.states import apply, created_event
from paystream.store import (REQUEST_SK, ConcurrentAppendError, EventStore, PaymentExistsError, RequestRecord,
                             RequestRecorded, TransactionCancelled, partition_key)
from paystream_ops.rebuild import read_payment  # what rebuild, reconcile and the zero-loss audit read
# The event store on in-process moto (fixtures client, store).
from test_event_store import REQUEST, client, store  # noqa: F401
# The POST /payments handler with its fake Stripe and in-process moto (fixture api).
from test_payment_api_handlers import (PAYMENT, REGION, Context, InjectedCrash, api, get_payment,  # noqa: F401
                                       load_handler, post, sqs_event)


def record_item(transaction_id: str) -> dict | None:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName="transactions", Key={"pk": {"S": partition_key(transaction_id)}, "sk": {"S": REQUEST_SK}},
        ConsistentRead=True).get("Item")
    return None if item is None else deserialize(item)


@pytest.fixture()
def dynamodb_calls():
    """The operations (and keys/items) the functions' shared DynamoDB client sends, in order."""
    client = wiring.dynamodb_client()
    calls: list[tuple[str, dict]] = []

    def record(params, model, **_):
        calls.append((model.name, params))

    client.meta.events.register("before-parameter-build.dynamodb", record, unique_id="count-calls")
    yield calls
    client.meta.events.unregister("before-parameter-build.dynamodb", unique_id="count-calls")


def not_the_breaker(calls: list[tuple[str, dict]]) -> list[str]:
    # The breaker's state read is cached (BREAKER_CLOSED_CACHE_SECONDS, 0 in these tests); it is not the payment's.
    return [name for name, params in calls if not (name == "GetItem" and params["Key"]["pk"]["S"].startswith("BREAKER#"))]


def test_a_new_payment_is_two_transactions_and_its_record_holds_the_answer(api, dynamodb_calls):
    initiate, get, _, _ = api
    post(initiate, PAYMENT, key="warm-up")  # the first invocation also reads the Stripe key
    dynamodb_calls.clear()
    status, body, _ = post(initiate, PAYMENT, key="count-me")
    assert status == 201
    assert not_the_breaker(dynamodb_calls) == ["TransactWriteItems", "TransactWriteItems"]
    first, second = (params["TransactItems"] for name, params in dynamodb_calls if name == "TransactWriteItems")
    assert [p["Put"]["Item"]["sk"]["S"] for p in first] == ["EVENT#0000000001", "PROJECTION", REQUEST_SK]
    assert REQUEST_SK in [p["Put"]["Item"]["sk"]["S"] for p in second]
    record = record_item(body["transaction_id"])
    assert record["item_type"] == "idempotency" and record["idempotency_status"] == "COMPLETED"
    assert json.loads(record["response"]) == body and record["status_code"] == 201
    assert abs(record["expires_at"] - (time.time() + 24 * 3600)) < 60
    # Never part of the payment as GET /payments, rebuild and the zero-loss audit read it.
    status, payment = get_payment(get, body["transaction_id"])
    assert status == 200 and "client_secret" not in json.dumps(payment)
    _, events = wiring.event_store(Settings.from_env()).load(body["transaction_id"])
    assert [e.event_type for e in events] == ["payment.created", "payment.succeeded"]
    items = read_payment(wiring.event_store(Settings.from_env())._table, body["transaction_id"])
    assert [e["sk"] for e in items.events] == ["EVENT#0000000001", "EVENT#0000000002"]


def test_the_record_is_not_relayed():
    inserted = {"eventName": "INSERT", "dynamodb": {"NewImage": {
        "pk": {"S": "TXN#t"}, "sk": {"S": REQUEST_SK}, "item_type": {"S": "idempotency"},
        "response": {"S": json.dumps({"client_secret": "pi_1_secret_x"})}}}}
    assert relay.to_outgoing(inserted) is None
    assert relay.to_outgoing({**inserted, "eventName": "MODIFY"}) is None


def test_a_replay_is_one_read_and_no_write(api, dynamodb_calls):
    initiate, _, stripe, _ = api
    first = post(initiate, PAYMENT)
    dynamodb_calls.clear()
    status, body, headers = post(initiate, PAYMENT)
    assert (status, body, headers.get("Idempotent-Replayed")) == (200, first[1], "true")
    assert not_the_breaker(dynamodb_calls) == ["TransactWriteItems", "GetItem"]  # the cancelled create, the record
    assert len(stripe.calls) == 1


def test_a_crashed_attempt_holds_the_key_until_its_deadline_then_a_retry_finishes_with_one_payment_intent(api, monkeypatch):
    initiate, get, stripe, _ = api
    monkeypatch.setenv("FAULT_INJECTION_ENABLED", "true")
    enabled = load_handler("initiate_payment", "initiate_payment_crashing")

    def crash(code):
        raise InjectedCrash()  # as os._exit: nothing after it runs, so nothing releases the record

    monkeypatch.setattr(enabled.os, "_exit", crash)
    with pytest.raises(InjectedCrash):
        post(enabled, PAYMENT, key="crash", headers={"X-Paystream-Fault": "after_stripe_call"})
    status, body, _ = post(enabled, PAYMENT, key="crash")
    assert (status, body["error"]) == (409, "request_in_progress")  # within the crashed attempt's 10 s
    service = enabled.service()
    monkeypatch.setattr(service, "_clock", lambda: time.time() + 11)  # past the attempt's deadline
    status, body, _ = post(enabled, PAYMENT, key="crash")
    assert status == 201 and body["status"] == "succeeded" and body["client_secret"]
    assert len(stripe.calls) == 2 and len(stripe.intents) == 1
    assert [e["type"] for e in get_payment(get, body["transaction_id"])[1]["events"]] == [
        "payment.created", "payment.succeeded"]
    again = post(enabled, PAYMENT, key="crash")
    assert (again[0], again[1], again[2].get("Idempotent-Replayed")) == (200, body, "true")


def test_another_body_is_422_even_while_the_first_is_in_flight(api):
    initiate, _, stripe, _ = api
    inner = {}
    stripe.during_call = lambda: inner.setdefault("answer", post(initiate, {**PAYMENT, "amount": 1}))
    assert post(initiate, PAYMENT)[0] == 201
    assert (inner["answer"][0], inner["answer"][1]["error"]) == (422, "idempotency_key_reused")


def test_a_parked_request_replays_its_202_body_also_after_the_payment_resumed(api):
    initiate, get, stripe, queue_url = api
    stripe.outcome = "unavailable"
    status, parked, _ = post(initiate, PAYMENT)
    assert status == 202 and parked["status"] == "queued"
    replay = post(initiate, PAYMENT)
    assert (replay[0], replay[1], replay[2].get("Idempotent-Replayed")) == (200, parked, "true")
    stripe.outcome = "succeeded"
    resume = load_handler("resume_payments", "resume_payments_idempotency")
    assert resume.handler(sqs_event(queue_url), Context()) == {"batchItemFailures": []}
    assert get_payment(get, parked["transaction_id"])[1]["status"] == "succeeded"
    replay = post(initiate, PAYMENT)
    assert (replay[0], replay[1]) == (200, parked)  # the original answer, as Powertools replayed it


def test_a_request_parked_by_the_open_breaker_is_one_transaction_and_replays(api, dynamodb_calls):
    initiate, _, stripe, _ = api
    stripe.outcome = "unavailable"
    post(initiate, PAYMENT, key="a")
    post(initiate, PAYMENT, key="b")  # threshold 2: the breaker opens
    dynamodb_calls.clear()
    status, parked, _ = post(initiate, PAYMENT, key="c")
    assert status == 202 and [n for n in not_the_breaker(dynamodb_calls)] == ["TransactWriteItems"]
    assert json.loads(record_item(parked["transaction_id"])["response"]) == parked
    assert post(initiate, PAYMENT, key="c")[:2] == (200, parked)


def test_an_expired_record_no_longer_replays_the_key_answers_from_the_payment(api, monkeypatch):
    initiate, _, stripe, _ = api
    first = post(initiate, PAYMENT)[1]
    monkeypatch.setattr(initiate.service(), "_clock", lambda: time.time() + 25 * 3600)  # TTL not yet applied
    status, body, headers = post(initiate, {**PAYMENT, "amount": 999})
    # As after a Powertools record expired: the key names the same payment, answered as it is now.
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert body["transaction_id"] == first["transaction_id"] and body["amount"] == 2500 and len(stripe.calls) == 1


def test_a_create_cancelled_by_a_concurrent_attempt_not_yet_committed_is_409():
    # DynamoDB cancels a transaction that meets another one in progress on the same items (TransactionConflict):
    # neither the record nor the payment can be read yet, so the key is in flight.
    class ConflictingTable:
        def transact_put(self, puts, token=None):
            raise TransactionCancelled(["TransactionConflict"] * len(puts))

        def get_item(self, pk, sk):
            return None

    class Breaker:
        def allow(self):
            return object()

    service = PaymentService(EventStore(ConflictingTable()), gateway=None, breaker=Breaker(), parker=None)
    with pytest.raises(RequestInProgress):
        service.initiate("t-1", PaymentRequest.model_validate(PAYMENT))


# ---------------------------------------------------------------- the store's record operations (in-process moto)

def created(transaction_id: str):
    event = created_event(transaction_id, REQUEST)
    return apply(None, event), event


def in_progress(transaction_id: str, until: int, *, request_hash: str = "h1", expires_at: int = 2_000_000_000):
    return RequestRecord(transaction_id, request_hash, expires_at=expires_at, in_progress_until=until)


def test_create_with_a_record_refuses_the_same_key_while_the_record_lives(store):
    record = in_progress("tx-r", until=5_000)
    store.create(*created("tx-r"), request=record, now=1_000)
    with pytest.raises(RequestRecorded):
        store.create(*created("tx-r"), request=in_progress("tx-r", until=9_000), now=1_000)
    assert store.get_request("tx-r") == record
    # Expired at `now`: the record no longer answers; only the payment is there.
    with pytest.raises(PaymentExistsError) as refused:
        store.create(*created("tx-r"), request=in_progress("tx-r", until=9_000), now=2_000_000_001)
    assert type(refused.value) is PaymentExistsError


def test_one_of_two_retries_takes_a_dead_attempt_over_and_a_release_reopens_it(store):
    stale = in_progress("tx-t", until=5_000)
    store.create(*created("tx-t"), request=stale, now=1_000)
    mine, theirs = in_progress("tx-t", until=60_000), in_progress("tx-t", until=61_000)
    assert store.take_over_request(stale, mine) is True
    assert store.take_over_request(stale, theirs) is False  # read the same stale deadline: too late
    assert store.get_request("tx-t") == mine
    assert store.release_request(mine) is True
    assert store.get_request("tx-t").in_progress_until == 0
    completed = mine.completed(201, {"status": "succeeded"})
    store.complete_request(completed, now=1_000)
    assert store.release_request(mine) is False  # completed: never released again
    assert store.get_request("tx-t") == completed


def test_a_record_of_another_body_is_never_overwritten(store):
    store.create(*created("tx-b"), request=in_progress("tx-b", until=5_000), now=1_000)
    other = in_progress("tx-b", until=5_000, request_hash="h2").completed(201, {"status": "succeeded"})
    with pytest.raises(ConcurrentAppendError):
        store.complete_request(other, now=1_000)
    assert store.get_request("tx-b").request_hash == "h1"
