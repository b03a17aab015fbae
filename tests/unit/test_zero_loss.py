"""localdev.zero_loss: the zero-loss audit's verdict over in-memory tables (each kind of loss fails it and is
named in the report), then the whole audit and its bus subscriber on in-process moto (payments stored by the
real EventStore and published by the outbox relay's own code)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from moto import mock_aws

from localdev.zero_loss import BusSubscriber, audit, dlq_depths, evaluate, webhooks_of
from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable, serialize
from paystream.adapters.inbox import DynamoDBWebhookOutcomes
from paystream.adapters.publishers import EventBusPublisher, FraudStreamPublisher, RelayMarks
from paystream.models import PaymentRequest
from paystream.processing import Outcome
from paystream.relay import OutboxRelay
from paystream.states import apply, created_event, next_event
from paystream.store import EventStore, event_item, projection_item
from paystream_ops.replay import as_stream_record
from paystream_ops.table import snapshot

REGION = "us-east-1"
TABLE, BUS, STREAM = "zl-transactions", "zl-payments", "zl-fraud"
EMPTY_DLQS = {"process-payment": {"visible": 0, "not_visible": 0}, "notifications": {"visible": 0, "not_visible": 0}}


def _events(txn: str, final: str = "payment.succeeded"):
    """A payment's events as the platform stores them: created, its outcome, the fraud score."""
    request = PaymentRequest(amount=1250, currency="EUR", customer_id=f"cus_{txn}", payment_method_id="pm_card_visa",
                             order_id=f"order-{txn}")
    created = created_event(txn, request)
    projection = apply(None, created)
    events = [created]
    for event_type, detail, source in ((final, {"payment_intent_id": f"pi_{txn}"}, "paystream.payments"),
                                       ("fraud.scored", {"risk_score": 0, "risk_factors": []}, "paystream.fraud")):
        event = next_event(projection, event_type, detail, source=source)
        projection = apply(projection, event)
        events.append(event)
    return events, projection


def _stored(txn: str, final: str = "payment.succeeded") -> list[dict]:
    events, projection = _events(txn, final)
    return [{**event_item(e), "relayed_at": "2026-11-22T12:00:00.000Z"} for e in events] + [projection_item(projection)]


def _webhook(txn: str, status: str | None = "no_change") -> dict:
    item = {"pk": f"STRIPE_EVENT#evt_{txn}", "sk": "INBOX", "item_type": "stripe_event", "event_id": f"evt_{txn}",
            "event_type": "payment_intent.succeeded", "object_id": f"pi_{txn}",
            "payload": json.dumps({"id": f"evt_{txn}", "type": "payment_intent.succeeded", "data": {"object": {
                "id": f"pi_{txn}", "object": "payment_intent", "metadata": {"transaction_id": txn}}}})}
    if status:
        item |= {"processing_status": status, "transaction_id": txn}
    return item


def _table(*txns: str, **finals: str) -> tuple[dict, list[dict]]:
    items = [item for txn in txns for item in _stored(txn, finals.get(txn, "payment.succeeded"))]
    payments = snapshot(items).payments
    return payments, [_webhook(txn) for txn in txns]


def _once(payments: dict, webhooks: list[dict]) -> dict[str, int]:
    ids = [e["event_id"] for p in payments.values() for e in p.events] + [w["event_id"] for w in webhooks]
    return {event_id: 1 for event_id in ids}


# ------------------------------------------------------------------------------------------------ the verdict


def test_a_clean_run_passes():
    payments, webhooks = _table("t1", "t2", "t3")
    report = evaluate(payments, webhooks, _once(payments, webhooks), EMPTY_DLQS)
    assert report.ok, report.summary()
    assert report.payments == report.terminal == 3 and report.statuses == {"succeeded": 3}
    assert report.stored_events == report.published_once == 3 * 3 + 3 and report.webhooks == 3
    assert report.summary().startswith("zero-loss audit OK: 3 payments terminal, 12 stored events")
    assert report.as_dict()["lost"] == report.as_dict()["duplicated"] == 0


def test_an_event_never_seen_on_the_bus_is_lost_and_named():
    payments, webhooks = _table("t1", "t2")
    deliveries = _once(payments, webhooks)
    missing = payments["t2"].events[2]["event_id"]  # t2's fraud.scored
    del deliveries[missing]
    report = evaluate(payments, webhooks, deliveries, EMPTY_DLQS)
    assert not report.ok
    assert report.lost == [{"transaction_id": "t2", "event_id": missing, "event_type": "fraud.scored", "relayed": True}]
    assert f"1 lost (e.g. event {missing} fraud.scored of t2)" in report.summary()
    assert report.as_dict()["lost"] == 1 and report.published_once == report.stored_events - 1


def test_a_stored_webhook_never_seen_is_lost_too():
    payments, webhooks = _table("t1")
    deliveries = _once(payments, webhooks)
    del deliveries["evt_t1"]
    report = evaluate(payments, webhooks, deliveries, EMPTY_DLQS)
    assert [(lost["event_id"], lost["event_type"]) for lost in report.lost] == [("evt_t1", "stripe.payment_intent.succeeded")]


def test_an_event_delivered_twice_is_duplicated_and_named():
    payments, webhooks = _table("t1", "t2")
    deliveries = _once(payments, webhooks)
    twice = payments["t1"].events[1]["event_id"]
    deliveries[twice] = 2
    report = evaluate(payments, webhooks, deliveries, EMPTY_DLQS)
    assert not report.ok and not report.lost
    assert report.duplicated == [{"transaction_id": "t1", "event_id": twice, "event_type": "payment.succeeded",
                                  "deliveries": 2}]
    assert f"1 duplicated (e.g. event {twice} payment.succeeded of t1 delivered 2 times)" in report.summary()


def test_a_sequence_gap_makes_the_payment_incomplete():
    items = [item for item in _stored("t1") if item.get("sequence") != 2] + _stored("t2")
    payments = snapshot(items).payments
    report = evaluate(payments, [], _once(payments, []), EMPTY_DLQS)
    assert not report.ok and list(report.incomplete) == ["t1"]
    assert "sequence not contiguous: [1, 3], missing [2]" in report.incomplete["t1"]
    assert "1 with incomplete events (e.g. t1: sequence not contiguous" in report.summary()


def test_a_repeated_sequence_number_is_not_contiguous_either():
    items = _stored("t1")
    items.insert(1, {**items[1], "event_id": str(uuid.uuid4())})
    payments = snapshot(items).payments
    report = evaluate(payments, [], _once(payments, []), EMPTY_DLQS)
    assert "repeated [2]" in report.incomplete["t1"]


def test_a_missing_lifecycle_event_or_a_projection_unlike_its_events_is_incomplete():
    no_score = [item for item in _stored("t1") if item.get("event_type") != "fraud.scored"]
    no_score[-1] = {**no_score[-1], "last_sequence": 2}  # the projection ends where the events do
    wrong = _stored("t2")
    wrong[-1] = {**wrong[-1], "risk_score": 55}  # the stored projection is not what the events fold to
    payments = snapshot(no_score + wrong).payments
    report = evaluate(payments, [], _once(payments, []), EMPTY_DLQS)
    assert report.incomplete["t1"] == "status succeeded but no fraud.scored stored"
    assert report.incomplete["t2"] == "projection different: risk_score stored 55 vs events 0"


def test_a_payment_not_in_a_terminal_state_fails_the_audit():
    payments, webhooks = _table("t1", "t2", t2="payment.processing")
    report = evaluate(payments, webhooks, _once(payments, webhooks), EMPTY_DLQS)
    assert not report.ok and report.not_terminal == {"t2": "processing"} and report.terminal == 1
    assert "1 not terminal (e.g. t2: processing)" in report.summary()
    # Waiting on the customer or on an operator is not an end either.
    for held in ("payment.requires_action", "payment.review"):
        payments, webhooks = _table("t3", t3=held)
        assert evaluate(payments, webhooks, _once(payments, webhooks), EMPTY_DLQS).not_terminal == {
            "t3": held.split(".")[1]}


def test_an_accepted_payment_with_nothing_stored_fails_the_audit():
    payments, webhooks = _table("t1")
    report = evaluate({**payments, "ghost": None}, webhooks, _once(payments, webhooks), EMPTY_DLQS)
    assert report.not_terminal == {"ghost": "missing"} and report.incomplete == {"ghost": "nothing stored"}


def test_a_webhook_not_processed_fails_the_audit():
    payments, _ = _table("t1")
    webhooks = [_webhook("t1", status=None)]
    report = evaluate(payments, webhooks, _once(payments, webhooks), EMPTY_DLQS)
    assert report.unprocessed_webhooks == {"evt_t1": "not processed"} and not report.ok


def test_a_message_in_a_dlq_fails_the_audit_unless_it_was_there_before():
    payments, webhooks = _table("t1")
    dlq = {**EMPTY_DLQS, "process-payment": {"visible": 1, "not_visible": 1}}
    report = evaluate(payments, webhooks, _once(payments, webhooks), dlq)
    assert not report.ok and report.dlq_holding == {"process-payment": 2}
    assert "DLQ process-payment holds 2" in report.summary()
    baseline = {**EMPTY_DLQS, "process-payment": {"visible": 2, "not_visible": 0}}
    assert evaluate(payments, webhooks, _once(payments, webhooks), dlq, baseline).ok
    grown = {**EMPTY_DLQS, "process-payment": {"visible": 1, "not_visible": 0}}
    assert evaluate(payments, webhooks, _once(payments, webhooks), dlq, grown).dlq_holding == {"process-payment": 1}


def test_webhooks_of_finds_a_payment_s_webhooks_by_transaction_or_payment_intent():
    inbox = [_webhook("t1"), _webhook("t2", status=None), _webhook("other")]
    assert [w["event_id"] for w in webhooks_of(inbox, ["t1"], ["pi_t2"])] == ["evt_t1", "evt_t2"]


# ------------------------------------------------------------------------------------------------ on moto


@pytest.fixture()
def platform(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        sqs, events, kinesis = (boto3.client(s, region_name=REGION) for s in ("sqs", "events", "kinesis"))
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        events.create_event_bus(Name=BUS)
        dlqs = {key: sqs.create_queue(QueueName=f"zl-{key}-dlq")["QueueUrl"] for key in ("process-payment", "notifications")}
        # Outputs without aws_endpoint_url: the audit's clients go to "AWS", which moto serves in process.
        outputs = {"region": REGION, "bus_name": BUS, "stream_name": STREAM, "table_names": {"transactions": TABLE},
                   "dlq_urls": dlqs}
        relay = OutboxRelay(EventBusPublisher(events, BUS), FraudStreamPublisher(kinesis, STREAM), RelayMarks(ddb, TABLE))
        yield {"ddb": ddb, "sqs": sqs, "events": events, "outputs": outputs, "relay": relay, "dlqs": dlqs,
               "store": EventStore(DynamoDBTransactionsTable(ddb, TABLE))}


def _pay(platform, txn: str) -> list:
    """A succeeded, scored payment written through the EventStore as the functions write it."""
    events, _ = _events(txn)
    store, projection = platform["store"], apply(None, events[0])
    store.create(projection, events[0])
    for event in events[1:]:
        store.append(txn, projection.last_sequence, [event], apply(projection, event))
        projection = apply(projection, event)
    return events


def _relay(platform, events: list, *, webhook: dict | None = None) -> None:
    """Publish stored events with the outbox relay's own code, as its stream records would bring them."""
    records = [as_stream_record(event_item(e), i) for i, e in enumerate(events)]
    if webhook:
        records.append(as_stream_record(webhook, len(records)))
    outcome = platform["relay"].relay(records)
    assert not outcome.failures, outcome.failures


def _store_webhook(platform, txn: str) -> dict:
    item = _webhook(txn, status=None)
    platform["ddb"].put_item(TableName=TABLE, Item=serialize(item))
    assert DynamoDBWebhookOutcomes(platform["ddb"], TABLE).record_all([Outcome(
        "no_change", item["event_id"], item["event_type"], "already succeeded", transaction_id=txn)]) == {}
    return item


def test_the_audit_passes_when_every_event_went_out_once_and_the_subscriber_cleans_up(platform):
    with BusSubscriber(platform["outputs"]) as subscriber:
        name = subscriber.name
        for txn in ("t1", "t2"):
            events = _pay(platform, txn)
            _relay(platform, events, webhook=_store_webhook(platform, txn))
        report = audit(platform["outputs"], ["t1", "t2"], subscriber, settle_timeout_s=10, quiet_s=0.5, poll_s=0.1)
        deliveries = subscriber.deliveries()
    assert report.ok, report.summary()
    assert report.stored_events == 2 * 4 and report.webhooks == 2 and report.published_once == 8
    assert deliveries[("t1", "evt_t1")] == 1  # a webhook's payment comes from its object's metadata, else None
    assert sum(1 for (tid, _) in deliveries if tid == "t1") == 4
    # Removed on exit: no rule, no queue left behind.
    assert not [r for r in platform["events"].list_rules(EventBusName=BUS)["Rules"] if r["Name"] == name]
    assert not [u for u in platform["sqs"].list_queues().get("QueueUrls", []) if name in u]


def test_the_audit_names_what_was_lost_duplicated_left_unfinished_and_dead_lettered(platform):
    with BusSubscriber(platform["outputs"]) as subscriber:
        twice = _pay(platform, "twice")
        _relay(platform, twice)
        _relay(platform, twice[1:2])  # payment.succeeded published a second time
        half = _pay(platform, "half")
        _relay(platform, half[:2])  # its fraud.scored never goes out
        stuck_request = PaymentRequest(amount=900, currency="usd", customer_id="cus_stuck",
                                       payment_method_id="pm_card_visa", order_id="order-stuck")
        created = created_event("stuck", stuck_request)
        platform["store"].create(apply(None, created), created)
        _relay(platform, [created])
        platform["sqs"].send_message(QueueUrl=platform["dlqs"]["notifications"], MessageBody="{}")
        # An archive replay's delivery carries replay-name: counted apart, never as a duplicate.
        replayed = {"detail-type": "payment.created", "source": "paystream.payments", "replay-name": "r1",
                    "detail": {"event_id": twice[0].event_id, "transaction_id": "twice"}}
        platform["sqs"].send_message(QueueUrl=subscriber.queue_url, MessageBody=json.dumps(replayed))
        report = audit(platform["outputs"], ["twice", "half", "stuck"], subscriber, settle_timeout_s=1,
                       quiet_s=0.5, poll_s=0.1)
    assert not report.ok
    assert [(d["transaction_id"], d["event_type"], d["deliveries"]) for d in report.duplicated] == [
        ("twice", "payment.succeeded", 2)]
    assert [(lost["transaction_id"], lost["event_type"], lost["relayed"]) for lost in report.lost] == [
        ("half", "fraud.scored", False)]
    assert report.not_terminal == {"stuck": "created"}
    assert report.incomplete["stuck"].startswith("status created but no fraud.scored")
    assert report.dlq_holding == {"notifications": 1} and report.replayed_deliveries == 1
    assert report.dlq_samples == {"notifications": ["{}"]}
    summary = report.summary()
    for name in ("1 lost", "1 duplicated", "not terminal (e.g. stuck: created)", "DLQ notifications holds 1"):
        assert name in summary


def test_dlq_depths_reads_every_listed_queue_once(platform):
    platform["sqs"].send_message(QueueUrl=platform["dlqs"]["process-payment"], MessageBody="{}")
    outputs = {**platform["outputs"], "dlq_urls": {**platform["dlqs"], "alias": platform["dlqs"]["process-payment"]}}
    assert dlq_depths(outputs) == {"alias": {"visible": 1, "not_visible": 0}, "notifications": {"visible": 0, "not_visible": 0},
                                   "process-payment": {"visible": 1, "not_visible": 0}}
