"""The outbox relay against in-process moto: a bus with a rule to an SQS queue (to see what was
delivered), a Kinesis fraud stream and the transactions table, fed hand-built DynamoDB stream records."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import boto3
import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from moto import mock_aws

from paystream.adapters.inbox import DynamoDBWebhookInbox
from paystream.adapters.publishers import EventBusPublisher, FraudStreamPublisher, RelayMarks
from paystream.fraud import parse_payment
from paystream.relay import MAX_PUT_EVENTS_BYTES, OutboxRelay
from paystream.webhooks import parse_event

REGION = "us-east-1"
TABLE, BUS, STREAM = "transactions", "payments-test", "fraud-test"
HANDLER_PATH = Path(__file__).resolve().parents[2] / "lambdas" / "outbox_relay" / "handler.py"
_serializer = TypeSerializer()


class CountingEvents:
    """Wraps the EventBridge client: records every PutEvents call; `reject(entry, attempt)` fails entries."""

    def __init__(self, real, reject=lambda entry, attempt: False):
        self.real, self.reject, self.calls = real, reject, []

    def put_events(self, Entries):
        attempt = len(self.calls) + 1
        self.calls.append([json.loads(e["Detail"]) | {"_type": e["DetailType"]} for e in Entries])
        rejected = [self.reject(json.loads(e["Detail"]), attempt) for e in Entries]
        accepted = [e for e, r in zip(Entries, rejected) if not r]
        real_results = iter(self.real.put_events(Entries=accepted)["Entries"] if accepted else [])
        results = [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} if r else next(real_results)
                   for r in rejected]
        return {"FailedEntryCount": sum(rejected), "Entries": results}


class CountingKinesis:
    def __init__(self, real, reject=lambda record, attempt: False):
        self.real, self.reject, self.calls = real, reject, []

    def put_records(self, StreamName, Records):
        attempt = len(self.calls) + 1
        self.calls.append([json.loads(r["Data"])["event_id"] for r in Records])
        rejected = [self.reject(json.loads(r["Data"]), attempt) for r in Records]
        accepted = [r for r, rej in zip(Records, rejected) if not rej]
        real_results = iter(self.real.put_records(StreamName=StreamName, Records=accepted)["Records"] if accepted else [])
        results = [{"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "injected"} if rej
                   else next(real_results) for rej in rejected]
        return {"FailedRecordCount": sum(rejected), "Records": results}


class Platform:
    def __init__(self):
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue_url = self.sqs.create_queue(QueueName="bus-observer")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.events = boto3.client("events", region_name=REGION)
        self.events.create_event_bus(Name=BUS)
        self.events.put_rule(Name="all", EventBusName=BUS,
                             EventPattern=json.dumps({"source": [{"prefix": "paystream."}]}))
        self.events.put_targets(Rule="all", EventBusName=BUS, Targets=[{"Id": "observer", "Arn": queue_arn}])
        self.kinesis = boto3.client("kinesis", region_name=REGION)
        self.kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        self.seq = 0
        self.delivered: list[dict] = []

    def relay(self, events=None, kinesis=None, ddb=None, **options) -> OutboxRelay:
        self.sleeps: list[float] = []
        return OutboxRelay(EventBusPublisher(events or self.events, BUS),
                           FraudStreamPublisher(kinesis or self.kinesis, STREAM),
                           RelayMarks(ddb or self.ddb, TABLE, sleep=self.sleeps.append), sleep=self.sleeps.append,
                           **options)

    def store_event(self, transaction_id: str, sequence: int, event_type: str = "payment.created",
                    customer_id: str = "cus_1", source: str = "paystream.payments", detail: dict | None = None) -> dict:
        item = {
            "pk": f"TXN#{transaction_id}", "sk": f"EVENT#{sequence:010d}", "item_type": "event",
            "event_id": str(uuid.uuid4()), "event_type": event_type, "source": source, "sequence": sequence,
            "occurred_at": "2026-11-22T10:00:00.000Z", "transaction_id": transaction_id, "amount": 1250,
            "currency": "eur", "customer_id": customer_id, "detail": detail or {},
        }
        self.table.put_item(Item=item)
        return item

    def record(self, item: dict, event_name: str = "INSERT") -> dict:
        """A DynamoDB stream record for `item`, as Lambda passes it."""
        self.seq += 1
        return {
            "eventID": str(uuid.uuid4()), "eventName": event_name, "eventSource": "aws:dynamodb", "awsRegion": REGION,
            "dynamodb": {
                "Keys": {"pk": {"S": item["pk"]}, "sk": {"S": item["sk"]}},
                "NewImage": {name: _serializer.serialize(value) for name, value in item.items()},
                "SequenceNumber": f"{self.seq:021d}", "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        }

    def bus_deliveries(self) -> list[dict]:
        """Every event the rule has delivered so far (accumulated across calls)."""
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return self.delivered
            for message in messages:
                self.delivered.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def delivered_ids(self) -> list[str]:
        return [d["detail"]["event_id"] for d in self.bus_deliveries()]

    def stream_records(self) -> list[dict]:
        shard = self.kinesis.list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return self.kinesis.get_records(ShardIterator=iterator)["Records"]

    def stored(self, item: dict) -> dict:
        return self.table.get_item(Key={"pk": item["pk"], "sk": item["sk"]})["Item"]


@pytest.fixture()
def platform():
    with mock_aws():
        yield Platform()


def sequence_numbers(records: list[dict]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in records]


def test_put_events_carries_at_most_ten_entries(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(23)]
    events = CountingEvents(platform.events)
    outcome = platform.relay(events).relay([platform.record(item) for item in items])
    assert [len(call) for call in events.calls] == [10, 10, 3]
    assert outcome.failures == []
    assert sorted(platform.delivered_ids()) == sorted(item["event_id"] for item in items)


def test_payment_event_detail_has_the_design_fields_plus_its_own(platform):
    item = platform.store_event("t1", 3, event_type="payment.failed", customer_id="cus_9",
                                detail={"retryable": True, "failure_code": "card_declined",
                                        "stripe_payload": '{"id": "pi_1"}'})
    platform.relay().relay([platform.record(item)])
    [delivered] = platform.bus_deliveries()
    assert delivered["source"] == "paystream.payments"
    assert delivered["detail-type"] == "payment.failed"
    assert delivered["detail"] == {
        "transaction_id": "t1", "event_id": item["event_id"], "sequence": 3,
        "occurred_at": "2026-11-22T10:00:00.000Z", "amount": 1250, "currency": "eur", "customer_id": "cus_9",
        "retryable": True, "failure_code": "card_declined", "stripe_payload": '{"id": "pi_1"}',
    }


def test_event_detail_fields_cannot_override_the_common_fields(platform):
    item = platform.store_event("t1", 1, event_type="fraud.scored", source="paystream.fraud",
                                detail={"risk_score": 82, "risk_factors": ["velocity"], "amount": 1})
    platform.relay().relay([platform.record(item)])
    [delivered] = platform.bus_deliveries()
    assert delivered["source"] == "paystream.fraud"
    assert delivered["detail"]["amount"] == 1250
    assert delivered["detail"]["risk_score"] == 82 and delivered["detail"]["risk_factors"] == ["velocity"]


def test_payment_created_reaches_the_fraud_stream_keyed_by_customer_and_other_events_do_not(platform):
    created = platform.store_event("t1", 1, "payment.created", customer_id="cus_42")
    processing = platform.store_event("t1", 2, "payment.processing", customer_id="cus_42")
    other = platform.store_event("t2", 1, "payment.created", customer_id="cus_7")
    platform.relay().relay([platform.record(i) for i in (created, processing, other)])
    records = platform.stream_records()
    assert [(r["PartitionKey"], json.loads(r["Data"])["event_id"]) for r in records] == [
        ("cus_42", created["event_id"]), ("cus_7", other["event_id"])]
    bus_detail = {d["detail"]["event_id"]: d["detail"] for d in platform.bus_deliveries()}
    assert json.loads(records[0]["Data"]) == bus_detail[created["event_id"]]
    assert platform.stored(created)["fraud_stream_sequence_number"] == records[0]["SequenceNumber"]
    assert "fraud_stream_sequence_number" not in platform.stored(processing)


def test_card_declines_reach_the_fraud_stream_as_declines_and_other_failures_do_not(platform):
    decline = platform.store_event("t1", 2, "payment.failed", customer_id="cus_42",
                                   detail={"retryable": False, "failure_code": "card_declined",
                                           "failure_message": "Your card was declined."})
    retryable = platform.store_event("t2", 2, "payment.failed", customer_id="cus_42",
                                     detail={"retryable": True, "failure_code": "processing_error"})
    exhausted = platform.store_event("t3", 3, "payment.failed", customer_id="cus_42",
                                     detail={"retryable": False, "final": True, "attempt": 3,
                                             "failure_code": "processing_error"})
    unflagged = platform.store_event("t4", 2, "payment.failed", customer_id="cus_42", detail={"failure_code": "x"})
    items = (decline, retryable, exhausted, unflagged)
    outcome = platform.relay().relay([platform.record(i) for i in items])

    assert outcome.failures == [] and len(outcome.published) == 4  # every failure still reaches the bus
    [record] = platform.stream_records()
    assert record["PartitionKey"] == "cus_42"
    bus_detail = {d["detail"]["event_id"]: d["detail"] for d in platform.bus_deliveries()}
    data = json.loads(record["Data"])
    assert data == bus_detail[decline["event_id"]] | {"event_type": "payment.failed"}
    payment = parse_payment(record["Data"])  # what the scorer reads: a decline of the customer, not a payment
    assert payment.is_decline and payment.customer_id == "cus_42" and payment.event_id == decline["event_id"]
    assert platform.stored(decline)["fraud_stream_sequence_number"] == record["SequenceNumber"]
    for other in (retryable, exhausted, unflagged):
        assert "fraud_stream_sequence_number" not in platform.stored(other)
        assert "relayed_at" in platform.stored(other)


def test_a_decline_never_reaches_the_fraud_stream_before_its_payment_s_creation(platform):
    created = platform.store_event("t1", 1, "payment.created", customer_id="cus_42")
    declined = platform.store_event("t1", 2, "payment.failed", customer_id="cus_42",
                                    detail={"retryable": False, "failure_code": "card_declined"})
    records = [platform.record(i) for i in (created, declined)]
    kinesis = CountingKinesis(platform.kinesis, reject=lambda data, attempt: data["event_id"] == created["event_id"])
    outcome = platform.relay(kinesis=kinesis).relay(records)

    assert outcome.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records)]
    assert declined["event_id"] not in [event_id for call in kinesis.calls for event_id in call]
    assert platform.stream_records() == []
    assert "relayed_at" not in platform.stored(declined)

    # Lambda retries from the first reported record: the stream gets the payment, then its decline.
    assert platform.relay().relay(records).failures == []
    assert [(json.loads(r["Data"])["event_id"], json.loads(r["Data"]).get("event_type"))
            for r in platform.stream_records()] == [(created["event_id"], None),
                                                    (declined["event_id"], "payment.failed")]


def test_a_rejected_decline_is_retried_then_reported_like_any_stream_record(platform):
    declined = platform.store_event("t1", 2, "payment.failed", detail={"retryable": False})
    records = [platform.record(declined)]
    kinesis = CountingKinesis(platform.kinesis, reject=lambda data, attempt: True)
    outcome = platform.relay(kinesis=kinesis, max_attempts=2).relay(records)
    assert kinesis.calls == [[declined["event_id"]]] * 2
    assert outcome.batch_item_failures() == [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    assert "PutRecords rejected event" in outcome.failures[0].reason
    assert "relayed_at" not in platform.stored(declined)


def test_stripe_inbox_items_go_out_as_stripe_events(platform):
    raw = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "created": 1763800000, "livemode": False,
                      "data": {"object": {"id": "pi_123", "amount": 1250}}})
    DynamoDBWebhookInbox(platform.table, ttl_days=90).put_if_absent(parse_event(raw))
    item = platform.stored({"pk": "STRIPE_EVENT#evt_1", "sk": "INBOX"})
    record = platform.record(item)
    outcome = platform.relay().relay([record])
    [delivered] = platform.bus_deliveries()
    assert delivered["source"] == "paystream.stripe"
    assert delivered["detail-type"] == "stripe.payment_intent.succeeded"
    assert delivered["detail"] == {"event_id": "evt_1", "stripe_event_id": "evt_1",
                                   "stripe_event_type": "payment_intent.succeeded", "object_id": "pi_123",
                                   "event": json.loads(raw)}
    assert platform.stream_records() == []
    assert outcome.published == sequence_numbers([record])
    assert platform.stored(item) == item  # not marked: process_payment's outcome on it shows it went through


def test_rejected_entries_alone_are_retried(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(4)]
    flaky = items[2]["event_id"]
    events = CountingEvents(platform.events, reject=lambda detail, attempt: detail["event_id"] == flaky and attempt == 1)
    outcome = platform.relay(events).relay([platform.record(item) for item in items])
    assert [[d["event_id"] for d in call] for call in events.calls] == [[i["event_id"] for i in items], [flaky]]
    assert outcome.failures == []
    assert sorted(platform.delivered_ids()) == sorted(i["event_id"] for i in items)
    assert platform.sleeps == [0.05]


def test_persistent_rejection_is_reported_from_the_first_failed_record_on_and_nothing_is_skipped(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(12)]
    records = [platform.record(item) for item in items]
    doomed = items[1]["event_id"]
    events = CountingEvents(platform.events, reject=lambda detail, attempt: detail["event_id"] == doomed)
    outcome = platform.relay(events, max_attempts=3).relay(records)

    assert outcome.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records[1:])]
    assert "InternalFailure" in outcome.failures[0].reason and doomed in outcome.failures[0].reason
    # three attempts at the failing entry, and the second chunk is never sent
    assert [len(call) for call in events.calls] == [10, 1, 1]
    assert platform.sleeps == [0.05, 0.1]
    sent_first_time = {i["event_id"] for i in items[:10]} - {doomed}
    assert set(platform.delivered_ids()) == sent_first_time
    # relayed_at only on what was published
    for item in items:
        assert ("relayed_at" in platform.stored(item)) == (item["event_id"] in sent_first_time)

    # Lambda retries from the first reported record: everything arrives, duplicates are only re-sends.
    retry = platform.relay().relay(records[1:])
    assert retry.failures == []
    delivered = platform.delivered_ids()
    assert set(delivered) == {i["event_id"] for i in items}
    assert all(platform.stored(item)["relayed_at"] for item in items)


def test_a_payment_s_next_event_is_never_sent_before_the_previous_one_is_accepted(platform):
    a = [platform.store_event("A", n, "payment.processing") for n in (1, 2, 3)]
    b = [platform.store_event("B", n, "payment.processing") for n in (1, 2)]
    records = [platform.record(i) for i in (a[0], b[0], a[1], b[1], a[2])]
    doomed = a[1]["event_id"]
    events = CountingEvents(platform.events, reject=lambda detail, attempt: detail["event_id"] == doomed)
    outcome = platform.relay(events).relay(records)
    for call in events.calls:
        transactions = [d["transaction_id"] for d in call]
        assert len(transactions) == len(set(transactions)), "one chunk never holds two events of one payment"
    sent = [d["event_id"] for call in events.calls for d in call]
    assert a[2]["event_id"] not in sent
    assert outcome.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records[2:])]

    platform.relay().relay(records[2:])
    per_payment: dict[str, list[int]] = {}
    for delivered in platform.bus_deliveries():
        per_payment.setdefault(delivered["detail"]["transaction_id"], []).append(delivered["detail"]["sequence"])
    assert per_payment["A"] == [1, 2, 3]
    assert per_payment["B"][0] == 1 and sorted(set(per_payment["B"])) == [1, 2]


def test_oversize_entry_is_a_reported_failure_not_a_silent_drop(platform):
    small = platform.store_event("t1", 1)
    # Only the stream record carries the blob (moto would store it too, but the relay reads the record).
    huge = {**platform.store_event("t2", 1), "detail": {"blob": "x" * (MAX_PUT_EVENTS_BYTES + 1)}}
    after = platform.store_event("t3", 1)
    records = [platform.record(i) for i in (small, huge, after)]
    events = CountingEvents(platform.events)
    outcome = platform.relay(events).relay(records)
    assert platform.delivered_ids() == [small["event_id"]]
    assert outcome.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records[1:])]
    assert f"over the {MAX_PUT_EVENTS_BYTES}-byte limit" in outcome.failures[0].reason
    assert huge["event_id"] in outcome.failures[0].reason
    assert "relayed_at" not in platform.stored(after)


def test_entries_of_one_chunk_stay_under_the_request_size_limit(platform):
    items = [{**platform.store_event(f"t{i}", 1), "detail": {"blob": "x" * 100_000}} for i in range(5)]
    events = CountingEvents(platform.events)
    outcome = platform.relay(events).relay([platform.record(i) for i in items])
    assert outcome.failures == []
    assert [len(call) for call in events.calls] == [2, 2, 1]


def test_fraud_stream_rejections_are_retried_alone_then_reported(platform):
    items = [platform.store_event(f"t{i}", 1, customer_id=f"cus_{i}") for i in range(3)]
    records = [platform.record(i) for i in items]
    flaky, doomed = items[0]["event_id"], items[2]["event_id"]
    kinesis = CountingKinesis(platform.kinesis, reject=lambda data, attempt: data["event_id"] == doomed
                              or (data["event_id"] == flaky and attempt == 1))
    outcome = platform.relay(kinesis=kinesis).relay(records)
    assert kinesis.calls == [[i["event_id"] for i in items], [flaky, doomed], [doomed]]
    assert outcome.batch_item_failures() == [{"itemIdentifier": records[2]["dynamodb"]["SequenceNumber"]}]
    assert "ProvisionedThroughputExceededException" in outcome.failures[0].reason
    assert sorted(json.loads(r["Data"])["event_id"] for r in platform.stream_records()) == sorted([flaky, items[1]["event_id"]])
    assert "relayed_at" not in platform.stored(items[2])
    assert "relayed_at" in platform.stored(items[0])


def test_modifies_and_other_items_are_ignored(platform):
    event = platform.store_event("t1", 1)
    projection = {"pk": "TXN#t1", "sk": "PROJECTION", "item_type": "projection", "status": "created"}
    events = CountingEvents(platform.events)
    outcome = platform.relay(events).relay([platform.record(event, "MODIFY"), platform.record(projection)])
    assert events.calls == [] and outcome.ignored == 2 and outcome.failures == []
    assert "relayed_at" not in platform.stored(event)


def test_a_failed_put_events_call_is_retried_then_reported(platform):
    class Down:
        calls = 0

        def put_events(self, Entries):
            Down.calls += 1
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "try later"}}, "PutEvents")

    item = platform.store_event("t1", 1)
    records = [platform.record(item)]
    outcome = platform.relay(Down()).relay(records)
    assert Down.calls == 3
    assert outcome.batch_item_failures() == [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
    assert "ServiceUnavailable" in outcome.failures[0].reason


def test_an_item_missing_event_fields_is_reported_with_what_is_missing(platform):
    item = platform.store_event("t1", 1)
    del item["customer_id"]
    outcome = platform.relay().relay([platform.record(item)])
    assert len(outcome.failures) == 1 and "lacks customer_id" in outcome.failures[0].reason


@pytest.fixture()
def handler_module(platform, monkeypatch):
    monkeypatch.setenv("EVENT_BUS_NAME", BUS)
    monkeypatch.setenv("FRAUD_STREAM_NAME", STREAM)
    monkeypatch.setenv("TRANSACTIONS_TABLE", TABLE)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    spec = importlib.util.spec_from_file_location("outbox_relay_handler_under_test", HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Context:
    function_name = "outbox_relay"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:outbox_relay"
    aws_request_id = "req-1"


def test_handler_publishes_and_answers_batch_item_failures(platform, handler_module):
    good = platform.store_event("t1", 1)
    bad = {**platform.store_event("t2", 1), "currency": ""}
    records = [platform.record(good), platform.record(bad)]
    response = handler_module.handler({"Records": records}, Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": records[1]["dynamodb"]["SequenceNumber"]}]}
    assert platform.delivered_ids() == [good["event_id"]]
    assert [r["PartitionKey"] for r in platform.stream_records()] == ["cus_1"]
    assert "relayed_at" in platform.stored(good) and "relayed_at" not in platform.stored(bad)


def test_handler_without_configuration_says_what_to_set(platform, monkeypatch):
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    monkeypatch.delenv("FRAUD_STREAM_NAME", raising=False)
    monkeypatch.setenv("TRANSACTIONS_TABLE", TABLE)
    spec = importlib.util.spec_from_file_location("outbox_relay_handler_unconfigured", HANDLER_PATH)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(RuntimeError, match="EVENT_BUS_NAME, FRAUD_STREAM_NAME"):
        spec.loader.exec_module(module)


def test_bus_detail_matches_the_event_models_own_definition(platform):
    """The relay builds details from raw items (no pydantic at cold start); it must agree with the model."""
    from paystream.models import PaymentEvent
    from paystream.store import event_item

    event = PaymentEvent(event_id=str(uuid.uuid4()), event_type="payment.failed", source="paystream.payments",
                         sequence=2, occurred_at="2026-11-22T10:00:00.000Z", transaction_id="t1", amount=1250,
                         currency="eur", customer_id="cus_1", detail={"retryable": False, "sequence": 99})
    item = event_item(event)
    platform.table.put_item(Item=item)
    platform.relay().relay([platform.record(item)])
    [delivered] = platform.bus_deliveries()
    assert delivered["detail"] == event.to_bus_detail()
