"""The event store on the transactions table (in-process moto): round trips, types, and conditional appends."""

from __future__ import annotations

import threading
from decimal import Decimal

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable, deserialize, serialize
from paystream.models import PaymentRequest, Projection
from paystream.states import apply, created_event, decide, next_event
from paystream.store import (
    ConcurrentAppendError,
    EventStore,
    EventStoreError,
    PaymentExistsError,
    PaymentNotFound,
)

TABLE = "paystream-local-transactions"
REQUEST = PaymentRequest(
    amount=99_999_999, currency="JPY", customer_id="cus_1", payment_method_id="pm_1", order_id="注文-1",
    description="'; DROP TABLE x; --", metadata={"cart": "7", "note": "🙂"}, country="jp",
)


class SerializedClient:
    """DynamoDB runs transactions serializably; moto's in-memory backend does not guard concurrent
    requests (two threads can both pass a condition, or one's rollback can erase the other's write),
    so the threaded test passes every call through one lock, as DynamoDB's own isolation would."""

    def __init__(self, client):
        self._client, self._lock = client, threading.Lock()
        self.exceptions = client.exceptions
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(**kwargs):
            with self._lock:
                self.calls.append((name, kwargs))
                return method(**kwargs)

        return call


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        raw = boto3.client("dynamodb", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
        raw.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield SerializedClient(raw)


@pytest.fixture
def store(client) -> EventStore:
    return EventStore(DynamoDBTransactionsTable(client, TABLE))


def new_payment(store: EventStore, transaction_id: str = "tx-1") -> Projection:
    event = created_event(transaction_id, REQUEST)
    projection = apply(None, event)
    store.create(projection, event)
    return projection


def advance(projection: Projection, event_type: str, detail: dict | None = None):
    event = next_event(projection, event_type, detail)
    return event, apply(projection, event)


def test_create_append_load_round_trip(store, client):
    p1 = new_payment(store)
    e2, p2 = advance(p1, "payment.processing", {"payment_intent_id": "pi_1", "stripe": {"latency_s": 0.25, "attempts": 1}})
    store.append("tx-1", 1, [e2], p2)
    e3, p3 = advance(p2, "fraud.scored", {"risk_score": 12, "risk_factors": []})
    e4, p4 = advance(p3, "payment.succeeded", {"raw": '{"id": "pi_1", "amount": 99999999}'})
    e4 = e4.model_copy(update={"sequence": 4})
    store.append("tx-1", 2, [e3, e4], p4)

    projection, events = store.load("tx-1")
    assert projection == p4
    assert [e.event_type for e in events] == ["payment.created", "payment.processing", "fraud.scored", "payment.succeeded"]
    assert events[1:] == [e2, e3, e4]
    assert events[0].detail == {"payment_method_id": "pm_1", "order_id": "注文-1", "description": "'; DROP TABLE x; --",
                                "metadata": {"cart": "7", "note": "🙂"}, "country": "JP"}
    assert store.get_projection("tx-1") == p4
    queries = [c for c in client.calls if c[0] == "query"]
    assert len(queries) == 1 and queries[0][1]["ConsistentRead"] is True


def test_amounts_and_sequences_come_back_as_int(store):
    p1 = new_payment(store)
    e2, p2 = advance(p1, "payment.processing", {"fee": 1.5, "attempt": 2})
    store.append("tx-1", 1, [e2], p2)
    projection, events = store.load("tx-1")
    assert type(projection.amount) is int and projection.amount == 99_999_999
    assert type(projection.last_sequence) is int and type(projection.amount_refunded) is int
    assert all(type(e.amount) is int and type(e.sequence) is int for e in events)
    assert events[1].detail == {"fee": 1.5, "attempt": 2}
    assert type(events[1].detail["attempt"]) is int


def test_serialization_maps_numbers_both_ways():
    item = {"amount": 1050, "fee": 0.1, "nested": {"list": [1, 2.5, "x"], "flag": True, "none": None}}
    stored = serialize(item)
    assert stored["amount"] == {"N": "1050"} and stored["fee"] == {"N": "0.1"}
    assert deserialize(stored) == item
    assert deserialize({"n": {"N": "1E+2"}}) == {"n": 100}
    assert deserialize({"n": {"N": str(Decimal("12.50"))}}) == {"n": 12.5}


def test_items_follow_the_documented_layout(store, client):
    new_payment(store)
    raw = client.query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                       ExpressionAttributeValues={":pk": {"S": "TXN#tx-1"}})["Items"]
    event, projection = raw
    assert (event["sk"], event["item_type"], event["sequence"]) == ({"S": "EVENT#0000000001"}, {"S": "event"}, {"N": "1"})
    assert "customer_pk" not in event  # events stay out of the sparse GSIs
    assert (projection["sk"], projection["item_type"]) == ({"S": "PROJECTION"}, {"S": "projection"})
    assert (projection["customer_pk"], projection["status_pk"]) == ({"S": "CUSTOMER#cus_1"}, {"S": "STATUS#created"})
    assert projection["last_sequence"] == {"N": "1"} and projection["currency"] == {"S": "jpy"}


def test_create_is_one_transaction_and_refuses_an_existing_payment(store, client):
    projection = new_payment(store)
    writes = [c for c in client.calls if c[0] == "transact_write_items"]
    assert len(writes) == 1 and len(client.calls) == 1
    assert [i["Put"]["ConditionExpression"] for i in writes[0][1]["TransactItems"]] == ["attribute_not_exists(pk)"] * 2
    again = created_event("tx-1", REQUEST)
    with pytest.raises(PaymentExistsError):
        store.create(projection.model_copy(update={"based_on_event_id": again.event_id}), again)


def test_create_can_store_several_first_events_at_once(store):
    first = created_event("tx-q", REQUEST)
    queued = next_event(apply(None, first), "payment.queued", sequence=2)
    store.create(apply(apply(None, first), queued), first, queued)
    projection, events = store.load("tx-q")
    assert (projection.status, [e.sequence for e in events]) == ("queued", [1, 2])


def test_append_is_one_transaction_with_the_sequence_condition(store, client):
    p1 = new_payment(store)
    e2, p2 = advance(p1, "payment.processing")
    client.calls.clear()
    store.append("tx-1", 1, [e2], p2)
    assert [c[0] for c in client.calls] == ["transact_write_items"]
    request = client.calls[0][1]
    assert request["ClientRequestToken"] == e2.event_id  # an SDK retry of a write that landed is a no-op on DynamoDB
    event_put, projection_put = (i["Put"] for i in request["TransactItems"])
    assert event_put["ConditionExpression"] == "attribute_not_exists(pk)"
    assert projection_put["ConditionExpression"] == "last_sequence = :expected"
    assert projection_put["ExpressionAttributeValues"] == {":expected": {"N": "1"}}


def test_append_with_a_stale_sequence_fails_and_writes_nothing(store):
    p1 = new_payment(store)
    e2, p2 = advance(p1, "payment.processing")
    store.append("tx-1", 1, [e2], p2)
    late, late_projection = advance(p1, "payment.failed")  # decided on the stale projection p1
    with pytest.raises(ConcurrentAppendError):
        store.append("tx-1", 1, [late], late_projection)
    projection, events = store.load("tx-1")
    assert projection == p2 and [e.event_id for e in events][1:] == [e2.event_id]


def test_append_to_an_unknown_payment_fails(store):
    p1 = apply(None, created_event("tx-ghost", REQUEST))
    e2, p2 = advance(p1, "payment.processing")
    with pytest.raises(ConcurrentAppendError):
        store.append("tx-ghost", 1, [e2], p2)
    with pytest.raises(PaymentNotFound):
        store.load("tx-ghost")
    assert store.get_projection("tx-ghost") is None


def test_two_appends_of_the_same_sequence_exactly_one_wins(store):
    p1 = new_payment(store)
    first, first_projection = advance(p1, "payment.succeeded")
    second, second_projection = advance(p1, "payment.failed")
    store.append("tx-1", 1, [first], first_projection)
    with pytest.raises(ConcurrentAppendError):
        store.append("tx-1", 1, [second], second_projection)
    projection, events = store.load("tx-1")
    assert projection.status == "succeeded" and [e.event_id for e in events] == [p1.based_on_event_id, first.event_id]


def test_concurrent_writers_race_and_exactly_one_wins_each_sequence(store):
    """Eight threads read the same projection and append at once, then retry from a reload, as consumers do."""
    new_payment(store)
    wanted = ["payment.processing", "payment.requires_action", "payment.succeeded", "payment.failed",
              "fraud.scored", "payment.review", "payment.canceled", "payment.processing"]
    start = threading.Barrier(len(wanted))
    outcomes: dict[int, list[str]] = {i: [] for i in range(len(wanted))}
    errors: list[BaseException] = []

    def writer(index: int, event_type: str):
        try:
            projection = store.get_projection("tx-1")
            start.wait()
            for _ in range(20):
                decision = decide(projection, event_type, {"risk_score": 40})
                if not decision.append:
                    outcomes[index].append("ignored")
                    return
                event, updated = advance(projection, event_type, {"risk_score": 40})
                try:
                    store.append("tx-1", projection.last_sequence, [event], updated)
                    outcomes[index].append("appended")
                    return
                except ConcurrentAppendError:
                    outcomes[index].append("conflict")
                    projection = store.get_projection("tx-1")
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i, t)) for i, t in enumerate(wanted)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)

    projection, events = store.load("tx-1")
    sequences = [e.sequence for e in events]
    assert sequences == list(range(1, len(events) + 1))  # contiguous: no gap, no sequence twice
    appended = sum(o[-1] == "appended" for o in outcomes.values())
    assert appended == len(events) - 1  # every successful append is stored, and nothing else
    assert "conflict" in sum(outcomes.values(), [])  # the race really happened
    assert projection.last_sequence == len(events) and projection.based_on_event_id == events[-1].event_id
    transitions = [e.event_type for e in events if e.event_type != "fraud.scored"]
    assert len(transitions) == len(set(transitions))


def test_writes_that_would_break_the_sequence_are_refused_before_any_call(store, client):
    p1 = new_payment(store)
    e2, p2 = advance(p1, "payment.processing")
    client.calls.clear()
    with pytest.raises(ValueError, match="without gaps"):
        store.append("tx-1", 1, [e2.model_copy(update={"sequence": 3})], p2)
    with pytest.raises(ValueError, match="last_sequence"):
        store.append("tx-1", 1, [e2], p1)
    with pytest.raises(ValueError, match="based_on_event_id"):
        store.append("tx-1", 1, [e2], p2.model_copy(update={"based_on_event_id": "other"}))
    with pytest.raises(ValueError, match="passed for"):
        store.append("tx-2", 1, [e2], p2)
    assert client.calls == []


def test_projection_only_write_is_guarded_by_the_sequence(store):
    p1 = new_payment(store)
    fixed = p1.model_copy(update={"risk_score": 3})
    store.append("tx-1", 1, [], fixed)
    assert store.get_projection("tx-1") == fixed
    e2, p2 = advance(fixed, "payment.processing")
    store.append("tx-1", 1, [e2], p2)
    with pytest.raises(ConcurrentAppendError):
        store.append("tx-1", 1, [], fixed)  # a rebuild computed before e2 must not overwrite its result
    assert store.get_projection("tx-1") == p2


def test_other_table_failures_are_not_reported_as_conflicts(client):
    missing = EventStore(DynamoDBTransactionsTable(client, "no-such-table"))
    event = created_event("tx-1", REQUEST)
    with pytest.raises(EventStoreError) as info:
        missing.create(apply(None, event), event)
    assert not isinstance(info.value, ConcurrentAppendError)
    with pytest.raises(EventStoreError):
        missing.load("tx-1")


def test_replace_projection_catches_a_projection_up_but_never_over_a_newer_one(store, client):
    p1 = new_payment(store)
    e2, p2 = advance(p1, "payment.processing")
    e3, p3 = advance(p2, "payment.succeeded")
    store.append("tx-1", 1, [e2], p2)
    client.put_item(TableName=TABLE, Item=serialize({**deserialize(client.get_item(  # left behind at sequence 1
        TableName=TABLE, Key={"pk": {"S": "TXN#tx-1"}, "sk": {"S": "PROJECTION"}})["Item"]), "last_sequence": 1}))
    with pytest.raises(ValueError, match="last_sequence"):
        store.append("tx-1", 1, [], p2)  # append's own check refuses a projection ahead of the guard
    with pytest.raises(ConcurrentAppendError):
        store.replace_projection("tx-1", 2, p2)  # not where it was read
    store.replace_projection("tx-1", 1, p2)
    assert store.get_projection("tx-1") == p2
    store.append("tx-1", 2, [e3], p3)  # the next writer continues from the caught-up projection
    with pytest.raises(ConcurrentAppendError):
        store.replace_projection("tx-1", 2, p2)  # a rebuild read before e3 never overwrites it
    assert store.get_projection("tx-1") == p3
    client.calls.clear()
    with pytest.raises(ValueError, match="never moves a payment back"):
        store.replace_projection("tx-1", 3, p2)
    with pytest.raises(ValueError, match="passed for"):
        store.replace_projection("tx-2", 3, p3)
    assert client.calls == []


def test_replace_projection_of_a_payment_without_one_only_while_it_has_none(store, client):
    p1 = new_payment(store)
    client.delete_item(TableName=TABLE, Key={"pk": {"S": "TXN#tx-1"}, "sk": {"S": "PROJECTION"}})
    store.replace_projection("tx-1", None, p1)
    assert store.get_projection("tx-1") == p1
    with pytest.raises(ConcurrentAppendError):
        store.replace_projection("tx-1", None, p1)
    item = deserialize(client.get_item(TableName=TABLE, Key={"pk": {"S": "TXN#tx-1"}, "sk": {"S": "PROJECTION"}})["Item"])
    assert item["status_pk"] == "STATUS#created" and item["item_type"] == "projection"  # the GSI keys with it
