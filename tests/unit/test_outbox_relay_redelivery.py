"""The outbox relay resumes a re-delivered record instead of publishing it again (paystream.relay, "Re-delivered
records resume"): a PutEvents partial failure, a fraud stream rejection or a failed mark make Lambda send records
again that the bus already has; the relay process that published them must not put them on the bus twice."""

from __future__ import annotations

from collections import Counter

from botocore.exceptions import ClientError

from paystream import relay as relay_module
from test_outbox_relay import CountingEvents, CountingKinesis, platform, sequence_numbers  # noqa: F401 - a fixture


def test_a_partial_failure_s_retry_publishes_only_what_the_bus_does_not_have(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(4)]
    records = [platform.record(item) for item in items]
    doomed = items[1]["event_id"]
    bus_down_for = {"attempts": 3}  # the relay's own three attempts at the doomed entry all fail
    events = CountingEvents(platform.events, reject=lambda detail, attempt: detail["event_id"] == doomed
                            and attempt <= bus_down_for["attempts"])
    relay = platform.relay(events)
    first = relay.relay(records)
    assert first.batch_item_failures() == [{"itemIdentifier": s} for s in sequence_numbers(records[1:])]
    assert "sent again after it" in first.failures[1].reason
    # Lambda sends the batch again from the first failed record, to the same warm relay.
    calls_before = len(events.calls)
    second = relay.relay(records[1:])
    assert second.failures == [] and sorted(second.published) == sorted(sequence_numbers(records[1:]))
    assert [[d["event_id"] for d in call] for call in events.calls[calls_before:]] == [[doomed]]
    assert Counter(platform.delivered_ids()) == Counter({item["event_id"]: 1 for item in items})
    assert all(platform.stored(item)["relayed_at"] for item in items)


def test_a_record_sent_again_behind_a_new_failure_is_still_not_published_twice(platform):
    items = [platform.store_event(f"t{i}", 1) for i in range(3)]
    records = [platform.record(item) for item in items]
    doomed = items[0]["event_id"]
    failing = {"on": True}
    events = CountingEvents(platform.events, reject=lambda detail, attempt: failing["on"] and detail["event_id"] == doomed)
    relay = platform.relay(events)
    relay.relay(records)
    relay.relay(records)  # the first record fails again: the others are reported again, still not re-sent
    failing["on"] = False
    assert relay.relay(records).failures == []
    assert Counter(platform.delivered_ids()) == Counter({item["event_id"]: 1 for item in items})


def test_a_failed_mark_is_redone_without_publishing_again(platform):
    item = platform.store_event("t1", 1)
    records = [platform.record(item)]
    relay = platform.relay()
    real_mark, failures = relay._marks.mark, {"left": 1}

    def mark(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "UpdateItem")
        return real_mark(*args, **kwargs)

    relay._marks.mark = mark
    first = relay.relay(records)
    assert "could not mark it" in first.failures[0].reason and "relayed_at" not in platform.stored(item)
    assert relay.relay(records).failures == []
    stored = platform.stored(item)
    assert stored["relayed_at"] and stored["bus_event_id"]
    assert platform.delivered_ids() == [item["event_id"]]


def test_a_stream_rejection_s_retry_sends_the_stream_record_only(platform):
    item = platform.store_event("t1", 1)  # payment.created: bus and fraud stream
    records = [platform.record(item)]
    stream_down = {"on": True}
    kinesis = CountingKinesis(platform.kinesis, reject=lambda data, attempt: stream_down["on"])
    events = CountingEvents(platform.events)
    relay = platform.relay(events, kinesis)
    assert "PutRecords rejected" in relay.relay(records).failures[0].reason
    stream_down["on"] = False
    assert relay.relay(records).failures == []
    assert len(events.calls) == 1 and len(kinesis.calls) == 4  # 3 rejected attempts, then the retry's one
    assert platform.delivered_ids() == [item["event_id"]] and len(platform.stream_records()) == 1
    assert platform.stored(item)["fraud_stream_sequence_number"]


def test_what_is_remembered_is_bounded_oldest_forgotten_first(platform, monkeypatch):
    monkeypatch.setattr(relay_module, "MAX_REMEMBERED", 1)
    items = [platform.store_event(f"t{i}", 1) for i in range(3)]
    records = [platform.record(item) for item in items]
    doomed = items[0]["event_id"]
    failing = {"on": True}
    events = CountingEvents(platform.events, reject=lambda detail, attempt: failing["on"] and detail["event_id"] == doomed)
    relay = platform.relay(events)
    relay.relay(records)  # items 1 and 2 published ahead of the failure; only item 2 is remembered
    failing["on"] = False
    relay.relay(records)
    assert Counter(platform.delivered_ids()) == Counter({doomed: 1, items[1]["event_id"]: 2, items[2]["event_id"]: 1})
