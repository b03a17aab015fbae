"""The relay's marks (`relayed_at`, `bus_event_id`, `fraud_stream_sequence_number`) in as few DynamoDB requests as
is safe (paystream.adapters.publishers.RelayMarks): events put again whole, 25 per BatchWriteItem, with what
BatchWriteItem leaves unprocessed retried and, when it stays unprocessed, the relay's usual failure path; webhook
inbox items are published but never marked: no DynamoDB request at all (process_payment's outcome shows them
processed)."""

from __future__ import annotations

import math
from collections import Counter

from botocore.exceptions import ClientError

from paystream.adapters.inbox import DynamoDBWebhookInbox
from paystream.adapters.publishers import RelayMarks
from paystream.relay import Mark
from paystream.webhooks import parse_event
from test_outbox_relay import REGION, TABLE, CountingEvents, platform, sequence_numbers  # noqa: F401 - a fixture

MARK_ATTRIBUTES = {"relayed_at", "bus_event_id", "fraud_stream_sequence_number"}


class CountingDynamoDB:
    """Wraps the DynamoDB client: records the writes; `leave(key, attempt)` True leaves that put unprocessed
    (not written, returned in UnprocessedItems, as DynamoDB does under throttling); `fail` raises on every call."""

    def __init__(self, real, leave=lambda key, attempt: False, fail: ClientError | None = None):
        self.real, self.leave, self.fail = real, leave, fail
        self.batch_writes: list[list[tuple[str, str]]] = []
        self.updates: list[tuple[str, str]] = []

    def batch_write_item(self, RequestItems):
        [(table, requests)] = RequestItems.items()
        keys = [(r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]) for r in requests]
        self.batch_writes.append(keys)
        if self.fail:
            raise self.fail
        attempt = len(self.batch_writes)
        left = [r for r, key in zip(requests, keys) if self.leave(key, attempt)]
        written = [r for r in requests if r not in left]
        if written:
            self.real.batch_write_item(RequestItems={table: written})
        return {"UnprocessedItems": {table: left} if left else {}}

    def update_item(self, **request):
        self.updates.append((request["Key"]["pk"]["S"], request["Key"]["sk"]["S"]))
        return self.real.update_item(**request)


def _key(item: dict) -> tuple[str, str]:
    return item["pk"], item["sk"]


def _inbox_item(platform, event_id: str) -> dict:
    raw = ('{"id": "%s", "type": "payment_intent.succeeded", "created": 1763800000, "livemode": false, '
           '"data": {"object": {"id": "pi_%s", "amount": 1250}}}' % (event_id, event_id))
    DynamoDBWebhookInbox(platform.table, ttl_days=90).put_if_absent(parse_event(raw))
    return platform.stored({"pk": f"STRIPE_EVENT#{event_id}", "sk": "INBOX"})


def test_a_batch_of_events_is_marked_with_one_batch_write_per_25_and_nothing_else_changes(platform):
    items = [platform.store_event(f"t{i}", 1, event_type="payment.created" if i % 2 else "payment.succeeded")
             for i in range(60)]
    records = [platform.record(item) for item in items]
    ddb = CountingDynamoDB(platform.ddb)
    outcome = platform.relay(ddb=ddb).relay(records)
    assert outcome.failures == [] and sorted(outcome.published) == sorted(sequence_numbers(records))
    assert len(ddb.batch_writes) == math.ceil(len(items) / 25) and ddb.updates == []
    assert Counter(key for call in ddb.batch_writes for key in call) == Counter(_key(item) for item in items)
    by_id = {d["detail"]["event_id"]: d["id"] for d in platform.bus_deliveries()}
    for item in items:
        stored = platform.stored(item)
        # The item as inserted plus the marks: the put lost and changed nothing else.
        assert {k: v for k, v in stored.items() if k not in MARK_ATTRIBUTES} == item
        assert stored["relayed_at"] and stored["bus_event_id"] == by_id[item["event_id"]]
        assert ("fraud_stream_sequence_number" in stored) == (item["event_type"] == "payment.created")


def test_inbox_items_are_published_without_any_dynamodb_request(platform):
    events = [platform.store_event(f"t{i}", 1) for i in range(3)]
    inbox = [_inbox_item(platform, f"evt_{i}") for i in range(2)]
    records = [platform.record(item) for item in [*events, *inbox]]
    ddb = CountingDynamoDB(platform.ddb)
    outcome = platform.relay(ddb=ddb).relay(records)
    assert outcome.failures == [] and sorted(outcome.published) == sorted(sequence_numbers(records))
    assert ddb.batch_writes == [[_key(item) for item in events]] and ddb.updates == []
    assert {d["detail"]["event_id"] for d in platform.bus_deliveries()} >= {"evt_0", "evt_1"}
    assert all(platform.stored(item)["relayed_at"] for item in events)
    assert [platform.stored(item) for item in inbox] == inbox  # untouched: no mark
    # A batch of webhooks only: published, and not one DynamoDB request (not even an empty batch write).
    more = [_inbox_item(platform, f"evt_{i}") for i in range(2, 5)]
    ddb = CountingDynamoDB(platform.ddb)
    outcome = platform.relay(ddb=ddb).relay([platform.record(item) for item in more])
    assert outcome.failures == [] and len(outcome.published) == 3
    assert (ddb.batch_writes, ddb.updates) == ([], [])


def test_a_webhook_sent_again_behind_a_failure_is_not_published_twice_and_still_not_marked(platform):
    event = platform.store_event("t-fail", 1)
    webhook = _inbox_item(platform, "evt_again")
    records = [platform.record(event), platform.record(webhook)]
    # The event's mark stays unprocessed through the 5 attempts: it and the webhook behind it are reported.
    ddb = CountingDynamoDB(platform.ddb, leave=lambda key, attempt: attempt <= 5)
    relay = platform.relay(ddb=ddb)
    first = relay.relay(records)
    assert [f.sequence_number for f in first.failures] == sequence_numbers(records)
    again = relay.relay(records)  # Lambda sends both again: the event is only marked, the webhook nothing
    assert again.failures == [] and sorted(again.published) == sorted(sequence_numbers(records))
    assert len(ddb.batch_writes) == 6 and ddb.updates == []
    assert platform.stored(event)["relayed_at"]
    assert [d["detail"]["event_id"] for d in platform.bus_deliveries()].count("evt_again") == 1
    assert platform.stored(webhook) == webhook


def test_unprocessed_items_are_sent_again_alone_after_a_backoff(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(10)]
    throttled = {_key(item) for item in items[3:8]}
    ddb = CountingDynamoDB(platform.ddb, leave=lambda key, attempt: key in throttled and attempt <= 2)
    outcome = platform.relay(ddb=ddb).relay([platform.record(item) for item in items])
    assert outcome.failures == []
    assert [len(call) for call in ddb.batch_writes] == [10, 5, 5]
    assert set(ddb.batch_writes[1]) == set(ddb.batch_writes[2]) == throttled
    assert len(platform.sleeps) == 2 and 0 < platform.sleeps[0] < platform.sleeps[1]
    assert all(platform.stored(item)["relayed_at"] for item in items)


def test_a_mark_left_unprocessed_fails_from_its_record_on_and_a_redelivery_only_marks(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(6)]
    records = [platform.record(item) for item in items]
    stuck, throttling = _key(items[2]), {"on": True}
    ddb = CountingDynamoDB(platform.ddb, leave=lambda key, attempt: throttling["on"] and key == stuck)
    events = CountingEvents(platform.events)
    relay = platform.relay(events, ddb=ddb)
    first = relay.relay(records)
    assert first.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records[2:])]
    assert "could not mark it" in first.failures[0].reason and "unprocessed" in first.failures[0].reason
    assert "relayed_at" not in platform.stored(items[2])
    assert all(platform.stored(item)["relayed_at"] for item in items if _key(item) != stuck)
    # Lambda sends the batch again from the failed record: the same warm relay only writes the missing mark.
    throttling["on"], puts_before, writes_before = False, len(events.calls), len(ddb.batch_writes)
    second = relay.relay(records[2:])
    assert second.failures == [] and sorted(second.published) == sorted(sequence_numbers(records[2:]))
    assert len(events.calls) == puts_before
    assert ddb.batch_writes[writes_before:] == [[stuck]]
    assert platform.stored(items[2])["relayed_at"]
    assert Counter(platform.delivered_ids()) == Counter({item["event_id"]: 1 for item in items})


def test_a_failed_batch_write_call_fails_the_marks_of_its_request(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(3)]
    records = [platform.record(item) for item in items]
    error = ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "BatchWriteItem")
    outcome = platform.relay(ddb=CountingDynamoDB(platform.ddb, fail=error)).relay(records)
    assert outcome.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records)]
    assert all("could not mark it" in f.reason and "ThrottlingException" in f.reason for f in outcome.failures)
    assert not any("relayed_at" in platform.stored(item) for item in items)


def test_one_key_marked_twice_goes_into_two_requests(platform):
    item = platform.store_event("t1", 1)
    image = platform.record(item)["dynamodb"]["NewImage"]
    ddb = CountingDynamoDB(platform.ddb)
    marks = [Mark(dict(zip(("pk", "sk"), _key(item))), "2026-11-22T10:00:00.000Z", f"bus-{n}", image=image)
             for n in (1, 2)]
    assert RelayMarks(ddb, TABLE).mark(marks) == [True, True]  # one request naming a key twice is refused
    assert ddb.batch_writes == [[_key(item)], [_key(item)]]
    assert platform.stored(item)["bus_event_id"] == "bus-2"


def test_the_put_of_a_mark_is_a_modify_the_relay_ignores(platform):
    # moto's in-process DynamoDB Streams API answers DescribeStream "Not yet implemented": read its shard directly.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    platform.ddb.update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": True,
                                                                    "StreamViewType": "NEW_AND_OLD_IMAGES"})
    item = platform.store_event("t1", 1)
    assert platform.relay().relay([platform.record(item)]).failures == []
    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[TABLE].stream_shard
    records = [record.to_json() for record in shard.items]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    modify = records[1]
    new, old = modify["dynamodb"]["NewImage"], modify["dynamodb"]["OldImage"]
    assert {k: v for k, v in new.items() if k not in MARK_ATTRIBUTES} == old and set(new) - set(old) == MARK_ATTRIBUTES
    delivered = len(platform.bus_deliveries())
    outcome = platform.relay().relay([modify])
    assert outcome.ignored == 1 and outcome.published == [] and len(platform.bus_deliveries()) == delivered
