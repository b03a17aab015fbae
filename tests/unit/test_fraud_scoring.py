"""Batch scoring over the store port (in memory): in-order effects inside a batch, the read/write budget
(one batched read, one write per batch of at most 100 actions), the per-record fallback of a cancelled
batch write, per-record failures, version conflicts, redeliveries, and the scenarios of issue 5
(card-testing burst, ordinary customer)."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paystream.fraud import (
    FraudConfig,
    FraudRecord,
    InMemoryIpCountries,
    InMemoryProfileStore,
    ProfileStoreError,
    RiskProfile,
    score_batch,
)
from paystream.fraud.scoring import MAX_ACTIONS_PER_WRITE, REDELIVERED_REASON, merged_updates, write_actions

T0 = datetime(2026, 11, 22, 5, 0, tzinfo=timezone.utc)
T0_MS = int(T0.timestamp() * 1000)
NOW_MS = T0_MS + 365 * 86_400_000  # the scorer's clock: after every payment of these tests
CONFIG = FraudConfig()
GEO = InMemoryIpCountries({"192.0.2.0/24": "US", "198.51.100.0/24": "DE"})


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(n: int, at_ms: int, customer="cus_1", amount=2500, **fields) -> FraudRecord:
    data = {"event_id": f"evt-{n}", "transaction_id": f"txn-{n}", "customer_id": customer, "amount": amount,
            "currency": "usd", "occurred_at": iso(at_ms), "device_id": f"dev-{customer}", "ip_address": "192.0.2.10",
            "country": "US", **fields}
    return FraudRecord(f"seq-{n}", json.dumps({k: v for k, v in data.items() if v is not None}).encode())


def run(records, store=None, config=CONFIG, **kwargs):
    store = store if store is not None else InMemoryProfileStore()
    return score_batch(records, store, config, NOW_MS, ip_countries=GEO, **kwargs), store


def scores(result):
    return [outcome.score.risk_score if outcome.score else None for outcome in result.outcomes]


# --- the scenarios ----------------------------------------------------------------------------------

@pytest.mark.parametrize("with_device_and_ip", [True, False])
def test_a_card_testing_burst_is_flagged(with_device_and_ip):
    rng = random.Random(5)
    extra = {} if with_device_and_ip else {"device_id": None, "ip_address": None}
    burst = [record(i, T0_MS + i * 3000, amount=rng.choice([100, 150, 200]), **extra) for i in range(20)]
    result, _ = run(burst)
    assert [o.status for o in result.outcomes] == ["scored"] * 20
    assert all(s >= CONFIG.thresholds.review for s in scores(result)[5:]), scores(result)
    assert scores(result)[:2] == [0, 0]  # nothing is known about the first two
    later = result.outcomes[-1].score
    assert {"card_testing_customer", "velocity"} <= {f.code for f in later.risk_factors}


def test_an_ordinary_customers_history_stays_below_review():
    rng = random.Random(7)
    # Two months of shopping: every one to three days, 15 to 80 usd, same device, country and home IP.
    at, records = T0_MS, []
    for i in range(40):
        at += rng.randint(1, 3) * 86_400_000 + rng.randint(0, 36_000_000)
        records.append(record(i, at, amount=rng.randint(1500, 8000)))
    result, _ = run(records)
    assert all(s < CONFIG.thresholds.review for s in scores(result)), scores(result)
    assert scores(result).count(0) >= 38
    # One batch or one record at a time: the same scores.
    store = InMemoryProfileStore()
    assert [scores(run([r], store)[0])[0] for r in records] == scores(result)


# --- reads and writes ---------------------------------------------------------------------------------------

def test_a_100_record_batch_reads_in_chunks_of_100_keys_and_writes_in_transactions_split_at_records():
    records = [record(i, T0_MS + i, customer=f"cus_{i}", ip_address=f"192.0.2.{i}") for i in range(100)]
    result, store = run(records)
    assert [o.status for o in result.outcomes] == ["scored"] * 100
    keys = 300  # a customer, a device and an IP per record
    assert store.read_calls <= math.ceil(keys / 100) == 3
    assert store.max_keys_per_read <= 100 and store.keys_read == keys
    # 300 profile puts: 33 records (99 actions) per transaction, a record's 3 never split.
    assert store.write_sizes == [33, 33, 33, 1]
    assert [w.payment.event_id for w in store.writes] == [f"evt-{i}" for i in range(100)]
    assert store.requests() == 3 + 4


def test_shared_profiles_are_read_once():
    records = [record(i, T0_MS + i * 60_000, customer=f"cus_{i % 4}", ip_address="192.0.2.1") for i in range(100)]
    _, store = run(records)
    assert store.read_calls == 1 and store.keys_read == 4 + 4 + 1
    # ... and written once: 9 profiles in one transaction, each with all its records.
    assert store.write_calls == 1 and store.write_sizes == [100]
    assert store.profiles["IP#192.0.2.1"].version == store.profiles["IP#192.0.2.1"].payment_count == 100
    assert store.profiles["CUSTOMER#cus_3"].payment_count == 25


def test_records_of_one_customer_in_a_batch_see_each_other():
    records = [record(i, T0_MS + i * 10_000) for i in range(7)]
    result, store = run(records)
    assert ["velocity" in {f.code for f in o.score.risk_factors} for o in result.outcomes] == [False] * 5 + [True] * 2
    customer = store.profiles["CUSTOMER#cus_1"]
    assert customer.version == 7 and customer.payment_count == 7
    assert [w.updates[0].expected_version for w in store.writes] == list(range(7))


# --- failures -----------------------------------------------------------------------------------------------

def test_a_malformed_record_fails_alone():
    records = [record(1, T0_MS), FraudRecord("seq-bad-json", b"{nope"),
               FraudRecord("seq-no-amount", json.dumps({"event_id": "e", "transaction_id": "t", "customer_id": "cus_1",
                                                        "currency": "usd", "occurred_at": iso(T0_MS)})),
               record(2, T0_MS + 1000), record(3, T0_MS + 2000, customer="cus_2")]
    result, store = run(records)
    assert [o.status for o in result.outcomes] == ["scored", "failed", "failed", "scored", "scored"]
    assert result.failed_record_ids() == ["seq-bad-json", "seq-no-amount"]
    bad = result.outcomes[1]
    assert not bad.retryable and bad.error.startswith("record data is not JSON")
    assert "amount: Field required" in result.outcomes[2].error
    assert store.profiles["CUSTOMER#cus_1"].payment_count == 2
    assert store.write_calls == 1 and store.write_sizes == [3]


def test_a_concurrent_write_is_re_read_and_the_record_scored_on_top_of_it():
    store = InMemoryProfileStore()
    run([record(0, T0_MS - 5000, customer="cus_other", device_id="dev-shared", amount=100)], store)

    def another_shard_writes_the_device_first(store, write):
        store.before_put = None
        run([record(9, T0_MS - 4000, customer="cus_other", device_id="dev-shared", amount=100)], store)

    store.before_put = another_shard_writes_the_device_first
    reads_before = store.read_calls
    result, _ = run([record(1, T0_MS, device_id="dev-shared", amount=100)], store)
    assert [o.status for o in result.outcomes] == ["scored"]
    # The batch read, the other writer's own read, then one re-read of the record's keys after the conflict.
    assert store.read_calls == reads_before + 3
    device = store.profiles["DEVICE#dev-shared"]
    assert device.version == 3 and len(device.recent_probes_ms) == 3  # both writers' payments are there
    assert {f.code for f in result.outcomes[0].score.risk_factors} == {"card_testing_device", "card_testing_ip"}


def test_a_conflict_that_persists_fails_the_record_and_defers_that_customers_later_records():
    store = InMemoryProfileStore()

    def always_conflict(store, write):
        if write.payment.customer_id == "cus_1":
            key = write.updates[0].profile.key
            current = store.profiles.get(key)
            bumped = (current or RiskProfile.new(key)).model_copy(update={"version": 1000 + store.write_calls})
            store.profiles[key] = bumped

    store.before_put = always_conflict
    records = [record(1, T0_MS), record(2, T0_MS + 1000, customer="cus_2"), record(3, T0_MS + 2000)]
    result, _ = run(records, store, max_conflict_retries=2)
    first, other, later = result.outcomes
    assert first.status == "failed" and first.retryable and "gave up after 3 writes" in first.error
    assert other.status == "scored"
    assert later.status == "failed" and later.retryable and later.error.startswith("deferred: an earlier record of CUSTOMER#cus_1")
    assert result.failed_record_ids() == ["seq-1", "seq-3"]
    # The cancelled batch write, then one by one: three tries for the first record, one for cus_2, none for the
    # deferred one.
    assert store.write_calls == 1 + 3 + 1


def test_a_store_error_on_write_fails_that_record_only():
    store = InMemoryProfileStore()
    store.fail_puts = 2  # the batch write, then the first record's own write
    result, _ = run([record(1, T0_MS), record(2, T0_MS, customer="cus_2")], store)
    assert [(o.status, o.retryable) for o in result.outcomes] == [("failed", True), ("scored", False)]
    assert "ProvisionedThroughputExceededException" in result.outcomes[0].error
    assert "CUSTOMER#cus_1" not in store.profiles


def test_a_failed_batch_read_applies_nothing():
    class Unreadable(InMemoryProfileStore):
        def get_many(self, keys):
            raise ProfileStoreError("throttled")

    store = Unreadable()
    with pytest.raises(ProfileStoreError, match="throttled"):
        run([record(1, T0_MS)], store)
    assert store.write_calls == 0


# --- redelivery and declines --------------------------------------------------------------------------------

def test_a_redelivered_batch_changes_nothing_and_gives_the_first_scores():
    records = [record(i, T0_MS + i * 3000, amount=100) for i in range(8)]
    first, store = run(records)
    snapshot = dict(store.profiles)
    writes = store.write_calls
    again, _ = run(records[3:] + [record(8, T0_MS + 30_000, amount=100)], store)
    assert [o.status for o in again.outcomes] == ["duplicate"] * 5 + ["scored"]
    assert scores(again)[:5] == scores(first)[3:]
    assert [[f.code for f in o.score.risk_factors] for o in again.outcomes[:5]] == \
        [[f.code for f in o.score.risk_factors] for o in first.outcomes[3:]]
    assert all(f.reason == REDELIVERED_REASON for o in again.outcomes[:5] for f in o.score.risk_factors)
    assert store.write_calls == writes + 1
    assert {k: v for k, v in store.profiles.items() if k != "CUSTOMER#cus_1" and not k.startswith(("DEVICE", "IP"))} == \
        {k: v for k, v in snapshot.items() if k != "CUSTOMER#cus_1" and not k.startswith(("DEVICE", "IP"))}
    assert store.profiles["CUSTOMER#cus_1"].payment_count == 9


def test_the_same_record_twice_in_one_batch_is_applied_once():
    result, store = run([record(1, T0_MS), record(1, T0_MS)])
    assert [o.status for o in result.outcomes] == ["scored", "duplicate"]
    assert store.profiles["CUSTOMER#cus_1"].payment_count == 1


def test_declines_are_recorded_and_raise_the_next_payments_score():
    declines = [record(i, T0_MS + i * 1000, amount=5000, event_type="payment.failed", event_id=f"fail-{i}")
                for i in range(3)]
    result, store = run(declines + [record(10, T0_MS + 5000, amount=5000)])
    assert [o.status for o in result.outcomes] == ["recorded"] * 3 + ["scored"]
    assert result.outcomes[0].score is None
    assert store.profiles["CUSTOMER#cus_1"].decline_count == 3
    assert {f.code for f in result.outcomes[-1].score.risk_factors} == {
        "card_testing_customer", "card_testing_device", "card_testing_ip"}


# --- properties ---------------------------------------------------------------------------------------------

record_st = st.builds(
    lambda n, customer, device, ip, amount, at: (n, customer, device, ip, amount, at),
    st.integers(0, 10**6), st.sampled_from(["a", "b", "c"]), st.sampled_from(["d1", "d2", None]),
    st.sampled_from(["192.0.2.1", "198.51.100.1", None]), st.sampled_from([100, 150, 2500, 9000, 60_000]),
    st.integers(0, 900_000),
)


def build(specs):
    return [record(i, T0_MS + at, customer=c, amount=amount, device_id=d, ip_address=ip, event_id=f"evt-{i}-{n}")
            for i, (n, c, d, ip, amount, at) in enumerate(specs)]


def comparable(result):
    return [(o.record_id, o.status, o.score) for o in result.outcomes]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_st, max_size=25))
def test_a_batch_scores_exactly_as_its_records_one_by_one_in_order(specs):
    records = build(specs)
    batch, batch_store = run(records)
    alone_store = InMemoryProfileStore()
    alone = [run([r], alone_store)[0].outcomes[0] for r in records]
    assert comparable(batch) == [(o.record_id, o.status, o.score) for o in alone]
    assert batch_store.profiles == alone_store.profiles
    assert batch_store.write_calls == (1 if records else 0)
    assert batch_store.read_calls == (1 if records else 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_st, max_size=25), st.randoms(use_true_random=False))
def test_interleaving_customers_does_not_change_any_score(specs, rng):
    # Each customer on its own device and IP (nothing shared across customers), records in time order per
    # customer: any interleaving that keeps each customer's order scores every record the same.
    specs = sorted(specs, key=lambda s: s[5])
    own = {"a": ("192.0.2.1",), "b": ("192.0.2.2",), "c": ("198.51.100.3",)}
    records = [record(i, T0_MS + at, customer=c, amount=amount, device_id=f"dev-{c}", ip_address=own[c][0],
                      event_id=f"evt-{i}") for i, (n, c, d, ip, amount, at) in enumerate(specs)]
    queues = {c: [r for r in records if json.loads(r.data)["customer_id"] == c] for c in own}
    shuffled = []
    while any(queues.values()):
        customer = rng.choice([c for c, q in queues.items() if q])
        shuffled.append(queues[customer].pop(0))
    in_order, _ = run(records)
    interleaved, _ = run(shuffled)
    assert sorted(comparable(interleaved), key=lambda x: x[0]) == sorted(comparable(in_order), key=lambda x: x[0])


def test_related_items_are_read_in_the_same_reads_and_handed_to_the_write():
    # What the scorer Lambda needs to append fraud.scored in the profile write: the payment's projection.
    projections = {f"TXN#txn-{i}": {"last_sequence": 2 + i} for i in range(50)}
    store = InMemoryProfileStore(related=projections)
    records = [record(i, T0_MS + i, customer=f"cus_{i}", ip_address="192.0.2.1") for i in range(60)]
    result, _ = run(records, store, related_keys=lambda payment: [f"TXN#{payment.transaction_id}"])
    assert [o.status for o in result.outcomes] == ["scored"] * 60
    assert store.read_calls == math.ceil((60 + 60 + 1 + 60) / 100) == 2
    assert [w.related for w in store.writes[:2]] == [{"TXN#txn-0": {"last_sequence": 2}},
                                                     {"TXN#txn-1": {"last_sequence": 3}}]
    assert store.writes[-1].related == {"TXN#txn-59": None}  # not stored: None, for the adapter to decide
    # A related key counts 2 actions (projection + event): 5 for the first record, 4 for each next one (the IP
    # is shared): 24 records (97 actions) per transaction.
    assert store.write_sizes == [24, 24, 12]


def test_related_items_are_read_again_after_a_conflict():
    store = InMemoryProfileStore(related={"TXN#txn-1": {"last_sequence": 1}})

    def payment_moved_on_and_profile_written(store, write):
        store.before_put = None
        store.related["TXN#txn-1"] = {"last_sequence": 3}
        store.profiles["CUSTOMER#cus_1"] = RiskProfile.new("CUSTOMER#cus_1").model_copy(update={"version": 1})

    store.before_put = payment_moved_on_and_profile_written
    result, _ = run([record(1, T0_MS)], store, related_keys=lambda payment: [f"TXN#{payment.transaction_id}"])
    assert result.outcomes[0].status == "scored"
    assert store.writes[-1].related == {"TXN#txn-1": {"last_sequence": 3}}
    assert store.writes[-1].updates[0].expected_version == 1


# --- one write per batch ------------------------------------------------------------------------------------

def one_by_one(records, store, **kwargs):
    return [run([r], store, **kwargs)[0].outcomes[0] for r in records]


def test_a_customers_records_in_one_batch_write_the_profile_once_as_two_writes_in_a_row_would():
    records = [record(1, T0_MS), record(2, T0_MS + 60_000, amount=9000)]
    result, store = run(records)
    alone_store = InMemoryProfileStore()
    alone = one_by_one(records, alone_store)
    assert store.write_calls == 1 and alone_store.write_calls == 2
    assert [(o.status, o.score) for o in result.outcomes] == [(o.status, o.score) for o in alone]
    assert store.profiles == alone_store.profiles
    customer = store.profiles["CUSTOMER#cus_1"]
    assert customer.version == 2 and customer.payment_count == 2 and customer.amount_stats["usd"].sum == 11_500
    # Merged: each profile once, its final state, conditional on the version read before the first record.
    merged = merged_updates(store.writes)
    assert [(u.profile.key, u.profile.version, u.expected_version) for u in merged] == [
        ("CUSTOMER#cus_1", 2, 0), ("DEVICE#dev-cus_1", 2, 0), ("IP#192.0.2.10", 2, 0)]
    assert write_actions(store.writes) == 3


def concurrent_writer(when, other_records):
    """A before_put hook: another shard writes `other_records` (one by one) when `when(write)` first holds."""
    def hook(store, write):
        if when(write):
            store.before_put = None
            for other in other_records:
                run([other], store)
    return hook


def test_a_cancelled_batch_write_falls_back_to_the_per_record_path_with_the_same_results():
    # Two customers on one device; another shard writes a payment of that device between the batch's read and
    # its write: the batch transaction is cancelled, nothing of it is written, and the records are scored again
    # on top of the other shard's payment, exactly as one-by-one writes after it would be.
    records = [record(i, T0_MS + i * 2000, customer=f"cus_{i % 2}", device_id="dev-shared", amount=100)
               for i in range(6)]
    other = record(99, T0_MS - 1000, customer="cus_other", device_id="dev-shared", amount=100)
    store = InMemoryProfileStore()
    store.before_put = concurrent_writer(lambda write: True, [other])
    result, _ = run(records, store)

    expected_store = InMemoryProfileStore()
    run([other], expected_store)
    expected = one_by_one(records, expected_store)
    assert [(o.record_id, o.status, o.score) for o in result.outcomes] == \
        [(o.record_id, o.status, o.score) for o in expected]
    assert store.profiles == expected_store.profiles
    assert store.profiles["DEVICE#dev-shared"].payment_count == 7
    # the cancelled batch, the other shard's own write, then the 6 records one by one
    assert store.write_sizes == [1, 1, 1, 1, 1, 1, 1] and store.write_calls == 1 + 7
    # the batch read, the other shard's read, one batched re-read after the conflict; no per-record conflict
    assert store.read_calls == 3


def test_a_batch_over_100_actions_is_split_at_record_boundaries_and_a_later_cancelled_part_falls_back():
    # One customer and IP, a new device per record, its projection related: 5 actions for the first record,
    # 3 for each next one — 32 records (98 actions) in the first transaction, the customer written in both.
    related = lambda payment: [f"TXN#{payment.transaction_id}"]  # noqa: E731
    records = [record(i, T0_MS + i * 600_000, device_id=f"dev-{i}") for i in range(40)]
    result, store = run(records, related_keys=related)
    alone_store = InMemoryProfileStore()
    alone = one_by_one(records, alone_store, related_keys=related)
    assert store.write_sizes == [32, 8]
    assert all(write_actions(chunk) <= MAX_ACTIONS_PER_WRITE for chunk in (store.writes[:32], store.writes[32:]))
    assert [u.expected_version for u in merged_updates(store.writes[32:]) if u.profile.kind == "CUSTOMER"] == [32]
    assert [(o.status, o.score) for o in result.outcomes] == [(o.status, o.score) for o in alone]
    assert store.profiles == alone_store.profiles and store.profiles["CUSTOMER#cus_1"].version == 40

    # The same batch where another shard writes the IP just before the second transaction: the first stays
    # written, the second's records go one by one, and every outcome is as if each record had been written
    # alone, in order, with the other shard's payment before the 33rd.
    other = record(99, T0_MS + 32 * 600_000 - 1, customer="cus_other", device_id="dev-other")
    store = InMemoryProfileStore()
    store.before_put = concurrent_writer(lambda write: write.payment.event_id == "evt-32", [other])
    result, _ = run(records, store, related_keys=related)
    expected_store = InMemoryProfileStore()
    expected = one_by_one(records[:32], expected_store, related_keys=related)
    run([other], expected_store)
    expected += one_by_one(records[32:], expected_store, related_keys=related)
    assert store.write_sizes == [32, 1] + [1] * 8
    assert [(o.record_id, o.status, o.score) for o in result.outcomes] == \
        [(o.record_id, o.status, o.score) for o in expected]
    assert store.profiles == expected_store.profiles
