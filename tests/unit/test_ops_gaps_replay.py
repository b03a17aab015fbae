"""`paystream-ops gaps` and `paystream-ops replay` (paystream_ops.gaps / .replay): the gap report over a table
snapshot, both commands on in-process moto (the table written by the real EventStore, a bus rule feeding an
observer queue, the fraud stream), and the archive replay's calls against a scripted EventBridge client
(moto's own replay ignores the window and FilterArns; the emulator patches that, see test_emulator_patches)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.inbox import DynamoDBWebhookInbox, DynamoDBWebhookOutcomes
from paystream.models import PaymentRequest
from paystream.processing import Outcome
from paystream.states import apply, created_event, next_event
from paystream.store import EventStore, event_sort_key, partition_key
from paystream.webhooks import parse_event
from paystream_ops import cli, replay
from paystream_ops.common import Context, OperationFailed, iso
from paystream_ops.environment import Environment
from paystream_ops.gaps import find_gaps, percentile
from paystream_ops.table import snapshot

REGION = "us-east-1"
TABLE, BUS, STREAM = "ps-transactions", "ps-payments", "ps-fraud"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def _at(seconds_ago: float) -> str:
    return iso(NOW - timedelta(seconds=seconds_ago))


# ------------------------------------------------------------------------------------------------ find_gaps


def _event(txn: str, sequence: int, stored_ago: float, relayed_after: float | None = None) -> dict:
    item = {"pk": f"TXN#{txn}", "sk": event_sort_key(sequence), "item_type": "event", "transaction_id": txn,
            "event_id": f"{txn}-{sequence}", "event_type": "payment.created" if sequence == 1 else "payment.succeeded",
            "sequence": sequence, "occurred_at": _at(stored_ago)}
    if relayed_after is not None:
        item["relayed_at"] = _at(stored_ago - relayed_after)
    return item


def _projection(txn: str, last_sequence: int, status: str, updated_ago: float) -> dict:
    return {"pk": f"TXN#{txn}", "sk": "PROJECTION", "item_type": "projection", "transaction_id": txn,
            "last_sequence": last_sequence, "status": status, "updated_at": _at(updated_ago)}


def test_find_gaps_lists_unrelayed_behind_and_stuck_and_measures_relay_latency():
    items = [
        # relayed within 0.2 s and 1.0 s: latency only
        _event("ok", 1, 600, relayed_after=0.2), _event("ok", 2, 500, relayed_after=1.0),
        _projection("ok", 2, "succeeded", 500),
        # never relayed: one past the grace period (a gap), one younger (in flight)
        _event("lost", 1, 300), _event("lost", 2, 30), _projection("lost", 2, "processing", 30),
        # projection behind its events, and events without a projection at all
        _event("behind", 1, 900, 0.5), _event("behind", 2, 800, 0.5), _event("behind", 3, 700, 0.5),
        _projection("behind", 1, "processing", 1000),
        _event("orphan", 1, 900, 0.5),
        # stuck: non-terminal and untouched for longer than stuck-after; terminal or recent ones are not
        _event("stuck", 1, 7200, 0.1), _projection("stuck", 1, "review", 7200),
        _event("waiting", 1, 60, 0.1), _projection("waiting", 1, "requires_action", 60),
        _event("old", 1, 9000, 0.1), _projection("old", 1, "failed", 9000),
        # a webhook inbox item never relayed: received_at is epoch seconds
        {"pk": "STRIPE_EVENT#evt_1", "sk": "INBOX", "item_type": "stripe_event", "event_id": "evt_1",
         "event_type": "charge.refunded", "received_at": int((NOW - timedelta(minutes=10)).timestamp())},
    ]
    report = find_gaps(snapshot(items), NOW, grace=timedelta(minutes=2), stuck_after=timedelta(minutes=15),
                       latency_window=timedelta(hours=1))
    assert [(gap.kind, gap.event_id) for gap in report.unrelayed] == [("stripe_event", "evt_1"), ("event", "lost-1")]
    assert {(gap.transaction_id, gap.projection_sequence, gap.missing_events) for gap in report.behind} == {
        ("behind", 1, 2), ("orphan", None, 1)}
    # "behind" is processing and 1000 s old too: stuck as well
    assert sorted((gap.transaction_id, gap.status) for gap in report.stuck) == [("behind", "processing"),
                                                                                  ("stuck", "review")]
    latency = report.relay_latency_ms
    assert latency["count"] == 8 - 1  # every relayed item stored within the hour (not the 7200 s/9000 s ones)
    assert latency["max"] == 1000.0 and latency["p50"] == 500.0
    assert report.has_gaps and report.payments == 7 and report.stripe_events == 1
    clean = find_gaps(snapshot([_event("ok", 1, 600, 0.2), _projection("ok", 1, "succeeded", 600)]), NOW,
                      timedelta(minutes=2), timedelta(minutes=15), timedelta(hours=1))
    assert not clean.has_gaps and clean.relay_latency_ms["p99"] == 200.0


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)) == (50.0, 95.0, 99.0)
    assert percentile([], 0.5) is None and percentile([7.0], 0.99) == 7.0


# ------------------------------------------------------------------------------------------------ on moto


@pytest.fixture()
def platform(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        observer = sqs.create_queue(QueueName="observer")["QueueUrl"]
        observer_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.create_event_bus(Name=BUS)
        events.put_rule(Name="everything", EventBusName=BUS,
                        EventPattern=json.dumps({"source": ["paystream.payments", "paystream.stripe"]}))
        events.put_targets(Rule="everything", EventBusName=BUS, Targets=[{"Id": "sqs", "Arn": observer_arn}])
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps({"region": REGION, "bus_name": BUS, "stream_name": STREAM,
                                       "table_names": {"transactions": TABLE}}))
        yield {"ddb": ddb, "sqs": sqs, "events": events, "kinesis": kinesis, "observer": observer,
               "outputs": str(outputs), "store": EventStore(DynamoDBTransactionsTable(ddb, TABLE))}


def _pay(store: EventStore, txn: str, occurred_at: str | None = None) -> list:
    """A payment created and succeeded, stored as initiate_payment stores it (never relayed: no stream here)."""
    request = PaymentRequest(amount=1250, currency="EUR", customer_id=f"cus_{txn}", payment_method_id="pm_card_visa",
                             order_id=f"order-{txn}")
    created = created_event(txn, request, occurred_at=occurred_at)
    projection = apply(None, created)
    store.create(projection, created)
    succeeded = next_event(projection, "payment.succeeded", {"payment_intent_id": f"pi_{txn}"}, occurred_at=occurred_at)
    store.append(txn, 1, [succeeded], apply(projection, succeeded))
    return [created, succeeded]


def _delivered(sqs, url: str) -> list[dict]:
    bodies = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                        for i, m in enumerate(batch)])
    return bodies


def _ops(platform, *args: str) -> int:
    return cli.main(["--outputs", platform["outputs"], *args])


def test_gaps_exits_3_listing_unrelayed_events_then_0_once_replay_from_the_table_published_them(platform, capsys):
    store, sqs = platform["store"], platform["sqs"]
    stored = {txn: _pay(store, txn) for txn in ("t1", "t2", "t3")}
    assert _ops(platform, "gaps", "--grace", "0s", "--json") == 3
    report = json.loads(capsys.readouterr().out)
    assert sorted(gap["event_id"] for gap in report["unrelayed"]) == sorted(
        e.event_id for events in stored.values() for e in events)

    assert _ops(platform, "replay", "--source", "table", "--from", "1h", "--dry-run") == 0
    assert _delivered(sqs, platform["observer"]) == []  # a dry run sends nothing

    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h") == 0
    delivered = _delivered(sqs, platform["observer"])
    assert sorted(body["detail"]["event_id"] for body in delivered) == sorted(
        e.event_id for events in stored.values() for e in events)
    for txn, events in stored.items():  # per payment, in sequence order, with the relay's detail
        mine = [body for body in delivered if body["detail"]["transaction_id"] == txn]
        assert [body["detail-type"] for body in mine] == ["payment.created", "payment.succeeded"]
        assert mine[0]["detail"]["amount"] == 1250 and mine[0]["detail"]["currency"] == "eur"
    shard = platform["kinesis"].describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = platform["kinesis"].get_shard_iterator(StreamName=STREAM, ShardId=shard,
                                                      ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = platform["kinesis"].get_records(ShardIterator=iterator)["Records"]
    assert sorted(json.loads(r["Data"])["transaction_id"] for r in records) == ["t1", "t2", "t3"]  # payment.created
    item = platform["ddb"].get_item(TableName=TABLE, Key={"pk": {"S": partition_key("t1")},
                                                          "sk": {"S": event_sort_key(1)}})["Item"]
    assert "relayed_at" in item and "bus_event_id" in item and "fraud_stream_sequence_number" in item

    capsys.readouterr()
    assert _ops(platform, "gaps", "--grace", "0s", "--json") == 0
    assert json.loads(capsys.readouterr().out)["relay_latency_ms"]["count"] == 6
    # Run again: nothing is left to publish, nothing is sent twice.
    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h") == 0
    assert _delivered(sqs, platform["observer"]) == []


def test_replay_from_the_table_keeps_to_the_window_and_the_pattern_and_all_resends_relayed_ones(platform):
    store, sqs = platform["store"], platform["sqs"]
    _pay(store, "old", occurred_at=iso(datetime.now(timezone.utc) - timedelta(hours=3)))
    recent = _pay(store, "new")
    pattern = json.dumps({"detail-type": ["payment.succeeded"]})
    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h", "--pattern", pattern) == 0
    assert [b["detail"]["event_id"] for b in _delivered(sqs, platform["observer"])] == [recent[1].event_id]
    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h", "--all") == 0
    assert sorted(b["detail"]["event_id"] for b in _delivered(sqs, platform["observer"])) == sorted(
        e.event_id for e in recent)


def _webhook(platform, event_id: str, processed: bool) -> None:
    """A webhook stored as stripe_webhook stores it; `processed`: process_payment recorded its outcome on it."""
    raw = json.dumps({"id": event_id, "type": "payment_intent.succeeded", "created": 1763800000, "livemode": False,
                      "data": {"object": {"id": f"pi_{event_id}", "metadata": {"transaction_id": "t1"}}}})
    DynamoDBWebhookInbox(boto3.resource("dynamodb", region_name=REGION).Table(TABLE), ttl_days=90).put_if_absent(
        parse_event(raw))
    if processed:
        assert DynamoDBWebhookOutcomes(platform["ddb"], TABLE).record_all([Outcome(
            "no_change", event_id, "payment_intent.succeeded", "already succeeded", transaction_id="t1")]) == {}


def test_webhooks_are_gaps_and_replayed_from_the_table_only_while_never_processed(platform, capsys):
    # The relay does not mark inbox items: an unprocessed one never got through, a processed one did.
    _webhook(platform, "evt_unprocessed", processed=False)
    _webhook(platform, "evt_processed", processed=True)
    assert _ops(platform, "gaps", "--grace", "0s", "--json") == 3
    assert [(gap["kind"], gap["event_id"]) for gap in json.loads(capsys.readouterr().out)["unrelayed"]] == [
        ("stripe_event", "evt_unprocessed")]
    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h") == 0
    [delivered] = _delivered(platform["sqs"], platform["observer"])
    assert (delivered["detail-type"], delivered["detail"]["event_id"]) == (
        "stripe.payment_intent.succeeded", "evt_unprocessed")
    item = platform["ddb"].get_item(TableName=TABLE, Key={"pk": {"S": "STRIPE_EVENT#evt_unprocessed"},
                                                          "sk": {"S": "INBOX"}})["Item"]
    assert "relayed_at" not in item  # still not through until process_payment records its outcome
    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h", "--all") == 0
    assert sorted(b["detail"]["event_id"] for b in _delivered(platform["sqs"], platform["observer"])) == [
        "evt_processed", "evt_unprocessed"]


def test_replay_from_the_table_stops_at_a_rejected_publication_and_marks_nothing_unsent(platform, tmp_path, capsys):
    _pay(platform["store"], "t1")
    broken = tmp_path / "broken.json"  # a bus that does not exist: PutEvents fails every entry
    broken.write_text(json.dumps({"region": REGION, "bus_name": "no-such-bus", "stream_name": STREAM,
                                  "table_names": {"transactions": TABLE}}))
    assert cli.main(["--outputs", str(broken), "--yes", "replay", "--source", "table", "--from", "1h"]) == 1
    assert "0 of 2 published" in capsys.readouterr().err
    assert _ops(platform, "gaps", "--grace", "0s") == 3  # both events still listed as never relayed


def test_replay_refuses_a_bad_pattern_and_an_empty_window_with_exit_2(platform, capsys):
    assert _ops(platform, "replay", "--from", "1h", "--pattern", "{not json") == 2
    assert _ops(platform, "replay", "--from", "1h", "--pattern", json.dumps({"source": "not-a-list"})) == 2
    assert _ops(platform, "replay", "--from", "now", "--to", "1h") == 2
    assert "must be before" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ archive replay


class ScriptedEvents:
    """EventBridge as replay_from_archive uses it; DescribeReplay walks through `states`."""

    def __init__(self, states: list[str], rules: list[dict]):
        self.states, self.rules, self.calls = list(states), rules, []

    def describe_event_bus(self, Name):
        return {"Arn": f"arn:aws:events:{REGION}:000000000000:event-bus/{Name}"}

    def describe_archive(self, ArchiveName):
        return {"ArchiveArn": f"arn:aws:events:{REGION}:000000000000:archive/{ArchiveName}", "EventCount": 9}

    def list_rules(self, EventBusName, NextToken=None):
        return {"Rules": self.rules}

    def start_replay(self, **kwargs):
        self.calls.append(("start_replay", kwargs))
        return {"State": "STARTING"}

    def describe_replay(self, ReplayName):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state == "INTERRUPT":
            raise KeyboardInterrupt
        return {"State": state, "StateReason": "archive gone" if state == "FAILED" else None}

    def cancel_replay(self, ReplayName):
        self.calls.append(("cancel_replay", ReplayName))


RULES = [
    {"Name": "process", "Arn": "arn:rule/process", "EventPattern": json.dumps({"source": ["paystream.stripe"]})},
    {"Name": "notify", "Arn": "arn:rule/notify",
     "EventPattern": json.dumps({"detail-type": ["payment.succeeded", "payment.failed"]})},
    {"Name": "review", "Arn": "arn:rule/review",
     "EventPattern": json.dumps({"detail-type": ["fraud.scored"], "detail": {"risk_score": [{"numeric": [">=", 70]}]}})},
    {"Name": "Events-Archive-all", "Arn": "arn:rule/archive", "ManagedBy": "prod.vhs.events.aws.internal",
     "EventPattern": "{}"},
]


def _context(platform, events: ScriptedEvents, dry_run: bool = False) -> Context:
    environment = Environment.load(platform["outputs"])
    real_client = environment.client

    class Scripted(Environment):
        def client(self, service):
            return events if service == "events" else real_client(service)

    from rich.console import Console

    return Context(Scripted(environment.outputs | {"archive_name": "ps-all"}), Console(width=200), yes=True,
                   dry_run=dry_run, now=datetime.now(timezone.utc))


def test_archive_replay_with_a_pattern_goes_only_to_the_rules_its_events_reach_and_polls_until_done(platform):
    store = platform["store"]
    for txn in ("t1", "t2"):
        _pay(store, txn)
    assert _ops(platform, "--yes", "replay", "--source", "table", "--from", "1h") == 0  # relayed: now archived
    events = ScriptedEvents(["STARTING", "RUNNING", "COMPLETED"], RULES)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    end = datetime.now(timezone.utc)
    pattern = replay.compile_pattern(json.dumps({"detail-type": ["payment.succeeded"]}))
    slept = []
    assert replay.replay_from_archive(_context(platform, events), start, end, pattern, "r1", timedelta(minutes=5),
                                      sleep=slept.append) == 0
    [(call, kwargs)] = events.calls
    assert call == "start_replay" and kwargs["Destination"]["FilterArns"] == ["arn:rule/notify"]
    assert kwargs["EventStartTime"] == start and kwargs["EventEndTime"] == end and kwargs["ReplayName"] == "r1"
    assert len(slept) == 2  # polled through STARTING and RUNNING

    # Without a pattern every rule gets the window (no FilterArns); a failed replay exits 1 with its reason.
    failing = ScriptedEvents(["RUNNING", "FAILED"], RULES)
    with pytest.raises(OperationFailed, match="ended FAILED: archive gone"):
        replay.replay_from_archive(_context(platform, failing), start, end, None, "r2", timedelta(minutes=5),
                                   sleep=lambda s: None)
    assert "FilterArns" not in failing.calls[0][1]["Destination"]


def test_archive_replay_interrupted_is_cancelled_and_one_that_outlasts_the_timeout_is_reported(platform):
    start, end = datetime.now(timezone.utc) - timedelta(hours=1), datetime.now(timezone.utc)
    interrupted = ScriptedEvents(["RUNNING", "INTERRUPT"], RULES)
    with pytest.raises(OperationFailed, match="cancelled"):
        replay.replay_from_archive(_context(platform, interrupted), start, end, None, "r3", timedelta(minutes=5),
                                   sleep=lambda s: None)
    assert ("cancel_replay", "r3") in interrupted.calls
    clock = iter(range(0, 10_000, 100))
    slow = ScriptedEvents(["RUNNING"], RULES)
    with pytest.raises(OperationFailed, match="still RUNNING"):
        replay.replay_from_archive(_context(platform, slow), start, end, None, "r4", timedelta(seconds=250),
                                   sleep=lambda s: None, clock=lambda: next(clock))
    # A dry run starts nothing; a pattern no stored event of the window matches replays nothing.
    idle = ScriptedEvents(["COMPLETED"], RULES)
    assert replay.replay_from_archive(_context(platform, idle, dry_run=True), start, end, None, None,
                                      timedelta(minutes=5)) == 0
    assert replay.replay_from_archive(_context(platform, idle), start, end,
                                      replay.compile_pattern(json.dumps({"detail-type": ["payment.disputed"]})), None,
                                      timedelta(minutes=5)) == 0
    assert idle.calls == []
