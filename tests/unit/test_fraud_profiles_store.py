"""The DynamoDB ProfileStore (paystream.adapters.fraud_profiles) on in-process moto: batched reads across the
profiles and transactions tables, one transaction per batch (split at 100 actions) writing the profiles and
fraud.scored, conflicts and the per-record fallback, unprocessed keys, and the request budget of a 100-record
batch."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.fraud_profiles import DynamoDBProfileStore, fraud_scored_event_id, projection_key
from paystream.fraud import (
    FraudConfig,
    FraudRecord,
    FraudScore,
    ProfileStoreError,
    ProfileUpdate,
    ProfileWrite,
    RiskFactor,
    RiskProfile,
    VersionConflict,
    parse_payment,
    score_batch,
)
from paystream.models import PaymentRequest
from paystream.states import apply, created_event, next_event
from paystream.store import EventStore

REGION = "us-east-1"
PROFILES = "fraud-profiles"
TRANSACTIONS = "transactions"
CONFIG = FraudConfig()
NOW = datetime(2026, 11, 22, 5, 0, tzinfo=timezone.utc)


class CountingClient:
    """The moto client, counting the DynamoDB requests by operation (what the budget is about)."""

    def __init__(self, client):
        self._client = client
        self.calls: dict[str, int] = {}
        self.before_write = None
        self.scorer_writes = 0  # through this wrapper only (the event store in the tests writes on the raw client)
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model, **kwargs):
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def transact_write_items(self, **kwargs):
        self.scorer_writes += 1
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        return self._client.transact_write_items(**kwargs)

    def total(self) -> int:
        return sum(self.calls.values())

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture()
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        raw = boto3.client("dynamodb", region_name=REGION)
        raw.create_table(
            TableName=TRANSACTIONS, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )
        raw.create_table(
            TableName=PROFILES, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        )
        client = CountingClient(raw)
        yield {
            "client": client,
            "store": DynamoDBProfileStore(client, PROFILES, TRANSACTIONS, CONFIG, sleep=lambda seconds: None),
            "events": EventStore(DynamoDBTransactionsTable(raw, TRANSACTIONS)),
        }


def new_payment(events: EventStore, transaction_id: str, customer_id: str = "cus_1", amount: int = 5000,
                device_id: str | None = "dev-1", ip_address: str | None = "203.0.113.9",
                occurred_at: datetime = NOW, capture_method: str = "automatic"):
    """A payment stored as initiate_payment stores it; returns the fraud-stream record data the relay writes."""
    request = PaymentRequest(amount=amount, currency="usd", customer_id=customer_id, payment_method_id="pm_1",
                             order_id=f"o-{transaction_id}", device_id=device_id, ip_address=ip_address, country="US")
    first = created_event(transaction_id, request, occurred_at=occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                          capture_method=capture_method)
    events.create(apply(None, first), first)
    return json.dumps(first.to_bus_detail())


def a_write(data: str, *, score: FraudScore | None, related: dict, expected_version: int = 0) -> ProfileWrite:
    payment = parse_payment(data)
    profile = RiskProfile.new(f"CUSTOMER#{payment.customer_id}").model_copy(
        update={"version": expected_version + 1, "payment_count": expected_version + 1})
    return ProfileWrite(payment, (ProfileUpdate(profile, expected_version),), score, related)


SCORE = FraudScore(75, (RiskFactor("velocity", "7 payments in 300 s", 40), RiskFactor("unknown_device", "new", 35)))


def test_get_many_reads_profiles_and_projections_in_one_batch_get_item(aws):
    store, client = aws["store"], aws["client"]
    new_payment(aws["events"], "tx-1")
    client._client.put_item(TableName=PROFILES, Item={"pk": {"S": "CUSTOMER#cus_1"}, "profile_kind": {"S": "CUSTOMER"},
                                                      "version": {"N": "3"}, "payment_count": {"N": "3"}})
    client.calls.clear()

    found = store.get_many(["CUSTOMER#cus_1", "DEVICE#dev-unknown", projection_key("tx-1"), projection_key("tx-none")])

    assert client.calls == {"BatchGetItem": 1}
    assert set(found) == {"CUSTOMER#cus_1", "TXN#tx-1"}
    assert found["CUSTOMER#cus_1"] == RiskProfile(key="CUSTOMER#cus_1", version=3, payment_count=3)
    assert found["TXN#tx-1"]["sk"] == "PROJECTION" and found["TXN#tx-1"]["last_sequence"] == 1


def test_put_writes_profiles_and_appends_fraud_scored_in_one_transaction(aws):
    store, client, events = aws["store"], aws["client"], aws["events"]
    data = new_payment(events, "tx-1")
    related = store.get_many([projection_key("tx-1")])
    client.calls.clear()

    store.put(a_write(data, score=SCORE, related=related))

    assert client.calls == {"TransactWriteItems": 1}
    projection, stored = events.load("tx-1")
    assert [e.event_type for e in stored] == ["payment.created", "fraud.scored"]
    scored = stored[1]
    assert scored.source == "paystream.fraud" and scored.sequence == 2
    assert scored.event_id == fraud_scored_event_id(parse_payment(data).event_id)
    assert scored.detail == SCORE.to_detail()
    assert projection.risk_score == 75 and projection.last_sequence == 2 and projection.status == "created"
    assert store.get_many(["CUSTOMER#cus_1"])["CUSTOMER#cus_1"].version == 1


def test_fraud_scored_says_a_risk_gated_payment_s_capture_method_for_the_capture_rule(aws):
    # terraform/modules/platform rule fraud-cleared matches capture_method "manual": automatic payments never
    # reach capture_payment, risk-gated ones must.
    store, events = aws["store"], aws["events"]
    for transaction_id, capture_method in (("tx-auto", "automatic"), ("tx-gated", "manual")):
        data = new_payment(events, transaction_id, customer_id=f"cus-{transaction_id}", capture_method=capture_method)
        store.put(a_write(data, score=SCORE, related=store.get_many([projection_key(transaction_id)])))
    assert events.load("tx-auto")[1][1].detail == SCORE.to_detail()
    assert events.load("tx-gated")[1][1].detail == {**SCORE.to_detail(), "capture_method": "manual"}


def test_a_stale_profile_version_is_a_conflict_and_writes_nothing(aws):
    store, events = aws["store"], aws["events"]
    data = new_payment(events, "tx-1")
    related = store.get_many([projection_key("tx-1")])
    store.put(a_write(data, score=None, related={}))  # someone else created the profile meanwhile

    with pytest.raises(VersionConflict):
        store.put(a_write(data, score=SCORE, related=related, expected_version=0))

    projection, stored = events.load("tx-1")
    assert projection.risk_score is None and [e.event_type for e in stored] == ["payment.created"]
    assert store.get_many(["CUSTOMER#cus_1"])["CUSTOMER#cus_1"].version == 1


def test_a_payment_that_moved_on_is_a_conflict_and_the_profiles_are_not_written(aws):
    store, events = aws["store"], aws["events"]
    data = new_payment(events, "tx-1")
    related = store.get_many([projection_key("tx-1")])
    projection, _ = events.load("tx-1")
    processing = next_event(projection, "payment.processing", {"payment_intent_id": "pi_1"})
    events.append("tx-1", 1, [processing], apply(projection, processing))

    with pytest.raises(VersionConflict):
        store.put(a_write(data, score=SCORE, related=related))

    assert store.get_many(["CUSTOMER#cus_1"]) == {}
    assert events.load("tx-1")[0].risk_score is None


def test_only_the_first_score_is_appended(aws):
    store, events = aws["store"], aws["events"]
    data = new_payment(events, "tx-1")
    store.put(a_write(data, score=SCORE, related=store.get_many([projection_key("tx-1")])))

    later = FraudScore(10, (RiskFactor("unusual_country", "FR", 10),))
    store.put(a_write(data, score=later, related=store.get_many([projection_key("tx-1")]), expected_version=1))

    projection, stored = events.load("tx-1")
    assert [e.event_type for e in stored] == ["payment.created", "fraud.scored"] and projection.risk_score == 75
    assert store.get_many(["CUSTOMER#cus_1"])["CUSTOMER#cus_1"].version == 2


def test_a_record_without_a_stored_payment_writes_the_profiles_only(aws):
    store = aws["store"]
    data = json.dumps({"event_id": "e-1", "transaction_id": "tx-ghost", "customer_id": "cus_9", "amount": 100,
                       "currency": "usd", "occurred_at": "2026-11-22T05:00:00.000Z"})

    store.put(a_write(data, score=SCORE, related={projection_key("tx-ghost"): None}))

    assert store.get_many(["CUSTOMER#cus_9", projection_key("tx-ghost")]).keys() == {"CUSTOMER#cus_9"}


class ScriptedBatchGet:
    """A client whose first BatchGetItem answers leave keys unprocessed (as DynamoDB does under throttling)."""

    def __init__(self, client, unprocessed_answers: int):
        self._client = client
        self.unprocessed_answers = unprocessed_answers
        self.batch_get_calls = 0

    def batch_get_item(self, RequestItems):
        self.batch_get_calls += 1
        if self.unprocessed_answers:
            self.unprocessed_answers -= 1
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        return self._client.batch_get_item(RequestItems=RequestItems)


def test_unprocessed_keys_are_asked_for_again_with_backoff(aws):
    new_payment(aws["events"], "tx-1")
    client = ScriptedBatchGet(aws["client"]._client, unprocessed_answers=2)
    sleeps: list[float] = []
    store = DynamoDBProfileStore(client, PROFILES, TRANSACTIONS, CONFIG, sleep=sleeps.append)

    found = store.get_many(["CUSTOMER#cus_1", projection_key("tx-1")])

    assert set(found) == {"TXN#tx-1"} and client.batch_get_calls == 3 and len(sleeps) == 2


def test_keys_still_unprocessed_after_the_attempts_fail_the_read(aws):
    client = ScriptedBatchGet(aws["client"]._client, unprocessed_answers=5)
    store = DynamoDBProfileStore(client, PROFILES, TRANSACTIONS, CONFIG, max_read_attempts=3, sleep=lambda s: None)

    with pytest.raises(ProfileStoreError, match="2 keys still unprocessed after 3"):
        store.get_many(["CUSTOMER#cus_1", "DEVICE#d"])
    assert client.batch_get_calls == 3


class CancellingClient:
    def __init__(self, reasons):
        self.reasons = reasons

    def transact_write_items(self, **kwargs):
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                           "CancellationReasons": [{"Code": code} for code in self.reasons]}, "TransactWriteItems")


def test_a_cancellation_for_another_reason_than_a_condition_is_a_store_error_not_a_conflict():
    store = DynamoDBProfileStore(CancellingClient(["ThrottlingError", "None"]), PROFILES, TRANSACTIONS, CONFIG)
    data = json.dumps({"event_id": "e-1", "transaction_id": "tx-1", "customer_id": "cus_1", "amount": 100,
                       "currency": "usd", "occurred_at": "2026-11-22T05:00:00.000Z"})
    with pytest.raises(ProfileStoreError) as raised:
        store.put(a_write(data, score=None, related={}))
    assert not isinstance(raised.value, VersionConflict)


def test_a_batch_is_scored_and_fraud_scored_appended_then_a_redelivery_writes_nothing(aws):
    store, events, client = aws["store"], aws["events"], aws["client"]
    records = [FraudRecord(str(i), new_payment(events, f"tx-{i}", amount=150, occurred_at=NOW + timedelta(seconds=i)))
               for i in range(4)]  # one customer, one device: a card-testing burst

    first = score_batch(records, store, CONFIG, NOW + timedelta(minutes=1),
                        related_keys=lambda p: [projection_key(p.transaction_id)])
    client.calls.clear()
    again = score_batch(records, store, CONFIG, NOW + timedelta(minutes=2),
                        related_keys=lambda p: [projection_key(p.transaction_id)])
    assert client.calls == {"BatchGetItem": 1}  # the redelivery is recognised from the profile: no write

    scores = [outcome.score.risk_score for outcome in first.outcomes]
    assert [o.status for o in first.outcomes] == ["scored"] * 4
    assert scores[0] < 70 <= scores[3]
    assert [events.load(f"tx-{i}")[0].risk_score for i in range(4)] == scores
    assert [o.status for o in again.outcomes] == ["duplicate"] * 4
    assert all(len(events.load(f"tx-{i}")[1]) == 2 for i in range(4))


def test_a_payment_moving_on_during_scoring_is_rescored_and_still_gets_its_score(aws):
    store, events, client = aws["store"], aws["events"], aws["client"]
    records = [FraudRecord("1", new_payment(events, "tx-1"))]

    def payment_processing_meanwhile():
        projection, _ = events.load("tx-1")
        processing = next_event(projection, "payment.processing", {"payment_intent_id": "pi_1"})
        events.append("tx-1", 1, [processing], apply(projection, processing))

    client.before_write = payment_processing_meanwhile
    result = score_batch(records, store, CONFIG, NOW, related_keys=lambda p: [projection_key(p.transaction_id)])

    assert result.outcomes[0].status == "scored"
    projection, stored = events.load("tx-1")
    assert [e.event_type for e in stored] == ["payment.created", "payment.processing", "fraud.scored"]
    assert projection.status == "processing" and projection.risk_score == result.outcomes[0].score.risk_score
    assert store.get_many(["CUSTOMER#cus_1"])["CUSTOMER#cus_1"].payment_count == 1
    assert client.scorer_writes == 2  # cancelled once, then written


def test_a_100_record_batch_of_distinct_customers_costs_at_most_1_2_requests_per_record(aws):
    store, events, client = aws["store"], aws["events"], aws["client"]
    records = [FraudRecord(str(i), new_payment(events, f"tx-{i}", customer_id=f"cus_{i}", device_id=f"dev-{i}",
                                               ip_address=f"198.51.100.{i}")) for i in range(100)]
    client.calls.clear()

    result = score_batch(records, store, CONFIG, NOW, related_keys=lambda p: [projection_key(p.transaction_id)])

    assert [o.status for o in result.outcomes] == ["scored"] * 100
    # 300 profiles + 100 projections: 4 BatchGetItem calls, then 500 actions (3 profiles, the event and the
    # projection per record) in transactions of 20 records.
    assert client.calls == {"BatchGetItem": 4, "TransactWriteItems": 5}
    assert client.total() / 100 <= 0.1
    assert all(events.load(f"tx-{i}")[0].risk_score is not None for i in (0, 57, 99))


def related(payment):
    return [projection_key(payment.transaction_id)]


def stored_state(aws, transaction_ids, profile_keys):
    """What a batch leaves: each payment's events (type, source, detail; the id of fraud.scored, derived from
    the scored record's) and score, and the profiles."""
    events = aws["events"]
    payments = {}
    for transaction_id in transaction_ids:
        projection, stored = events.load(transaction_id)
        payments[transaction_id] = (projection.risk_score, [
            (e.event_type, e.source, e.event_id if e.event_type == "fraud.scored" else None, e.detail) for e in stored])
    return payments, aws["store"].get_many(profile_keys)


def test_a_batch_of_payments_with_distinct_profiles_costs_one_read_and_one_transaction(aws):
    store, events, client = aws["store"], aws["events"], aws["client"]
    records = [FraudRecord(str(i), new_payment(events, f"tx-{i}", customer_id=f"cus_{i}", device_id=f"dev-{i}",
                                               ip_address=f"198.51.100.{i}")) for i in range(10)]
    client.calls.clear()

    result = score_batch(records, store, CONFIG, NOW, related_keys=related)

    assert [o.status for o in result.outcomes] == ["scored"] * 10
    assert client.calls == {"BatchGetItem": 1, "TransactWriteItems": 1}
    for i in range(10):
        projection, stored = events.load(f"tx-{i}")
        assert [e.event_type for e in stored] == ["payment.created", "fraud.scored"]
        assert projection.risk_score == result.outcomes[i].score.risk_score
    assert store.get_many([f"CUSTOMER#cus_{i}" for i in range(10)]).keys() == {f"CUSTOMER#cus_{i}" for i in range(10)}


def test_two_payments_of_one_customer_write_its_profile_once_with_both_counted(aws):
    store, events, client = aws["store"], aws["events"], aws["client"]
    records = [FraudRecord(str(i), new_payment(events, f"tx-{i}", occurred_at=NOW + timedelta(seconds=i)))
               for i in range(2)]
    client.calls.clear()

    result = score_batch(records, store, CONFIG, NOW + timedelta(minutes=1), related_keys=related)

    assert client.calls == {"BatchGetItem": 1, "TransactWriteItems": 1}
    profiles = store.get_many(["CUSTOMER#cus_1", "DEVICE#dev-1", "IP#203.0.113.9"])
    assert {key: (p.version, p.payment_count) for key, p in profiles.items()} == {
        "CUSTOMER#cus_1": (2, 2), "DEVICE#dev-1": (2, 2), "IP#203.0.113.9": (2, 2)}
    assert [r.event_id for r in profiles["CUSTOMER#cus_1"].recent_results] == \
        [parse_payment(r.data).event_id for r in records]
    assert [events.load(f"tx-{i}")[0].risk_score for i in range(2)] == [o.score.risk_score for o in result.outcomes]


def test_a_cancelled_batch_transaction_falls_back_and_ends_as_the_per_record_path_does(aws):
    # Another invocation scores a payment of the same device between the batch's read and its write.
    store, events, client = aws["store"], aws["events"], aws["client"]
    specs = [("tx-a", "cus_a"), ("tx-b", "cus_b"), ("tx-c", "cus_a")]
    records = [FraudRecord(t, new_payment(events, t, customer_id=c, amount=150, occurred_at=NOW + timedelta(seconds=i)))
               for i, (t, c) in enumerate(specs)]
    other = FraudRecord("o", new_payment(events, "tx-other", customer_id="cus_o", amount=150,
                                         occurred_at=NOW - timedelta(seconds=1)))
    client.before_write = lambda: score_batch([other], store, CONFIG, NOW + timedelta(minutes=1),
                                              related_keys=related)
    client.calls.clear()

    result = score_batch(records, store, CONFIG, NOW + timedelta(minutes=1), related_keys=related)

    # the cancelled batch, the other invocation's transaction, then the three records one by one
    assert client.scorer_writes == 1 + 1 + 3
    assert [o.status for o in result.outcomes] == ["scored"] * 3
    keys = ["CUSTOMER#cus_a", "CUSTOMER#cus_b", "CUSTOMER#cus_o", "DEVICE#dev-1", "IP#203.0.113.9"]
    batch_state = stored_state(aws, ["tx-a", "tx-b", "tx-c", "tx-other"], keys)
    batch_scores = [(o.status, o.score) for o in result.outcomes]

    # The per-record path on a fresh copy of the same payments: the other payment first, then each record alone.
    for table in (PROFILES, TRANSACTIONS):
        for item in client._client.scan(TableName=table)["Items"]:
            key = {"pk": item["pk"], **({"sk": item["sk"]} if "sk" in item else {})}
            client._client.delete_item(TableName=table, Key=key)
    for i, (t, c) in enumerate(specs):
        new_payment(events, t, customer_id=c, amount=150, occurred_at=NOW + timedelta(seconds=i))
    new_payment(events, "tx-other", customer_id="cus_o", amount=150, occurred_at=NOW - timedelta(seconds=1))
    score_batch([other], store, CONFIG, NOW + timedelta(minutes=1), related_keys=related)
    alone = [score_batch([r], store, CONFIG, NOW + timedelta(minutes=1), related_keys=related).outcomes[0]
             for r in records]

    assert batch_scores == [(o.status, o.score) for o in alone]
    assert batch_state == stored_state(aws, ["tx-a", "tx-b", "tx-c", "tx-other"], keys)
    assert batch_state[1]["DEVICE#dev-1"].payment_count == 4


def test_two_scored_writes_of_one_payment_in_one_transaction_append_fraud_scored_once(aws):
    store, events, client = aws["store"], aws["events"], aws["client"]
    data = new_payment(events, "tx-1")
    again = json.dumps({**json.loads(data), "event_id": "another-event-of-tx-1"})
    related_items = store.get_many([projection_key("tx-1")])
    later = FraudScore(10, (RiskFactor("unusual_country", "FR", 10),))
    client.calls.clear()

    store.put_many([a_write(data, score=SCORE, related=related_items),
                    a_write(again, score=later, related=related_items, expected_version=1)])

    assert client.calls == {"TransactWriteItems": 1}
    projection, stored = events.load("tx-1")
    assert [e.event_type for e in stored] == ["payment.created", "fraud.scored"] and projection.risk_score == 75
    assert store.get_many(["CUSTOMER#cus_1"])["CUSTOMER#cus_1"].version == 2
