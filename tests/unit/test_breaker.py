"""The circuit breaker: pure logic with a fake store and clock, then the DynamoDB store (in-process moto)."""

from __future__ import annotations

import dataclasses
import threading

import boto3
import pytest
from moto import mock_aws

from paystream.adapters.breaker_store import DynamoDBBreakerStore, breaker_key
from paystream.breaker import CLOSED, HALF_OPEN, OPEN, BreakerState, CircuitBreaker


class FakeStore:
    """Versioned in-memory store with the same compare-and-set contract as the DynamoDB one."""

    def __init__(self):
        self.items: dict[str, BreakerState] = {}
        self.loads = 0
        self.saves = 0
        self._lock = threading.Lock()

    def load(self, name):
        with self._lock:
            self.loads += 1
            return self.items.get(name, BreakerState())

    def save(self, name, state, expected_version):
        with self._lock:
            if self.items.get(name, BreakerState()).version != expected_version:
                return False
            self.saves += 1
            self.items[name] = dataclasses.replace(state, version=expected_version + 1)
            return True


class Clock:
    def __init__(self, now=1_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture()
def store():
    return FakeStore()


@pytest.fixture()
def clock():
    return Clock()


@pytest.fixture()
def transitions():
    return []


def make(store, clock, transitions, **kwargs):
    options = dict(failure_threshold=3, window_seconds=60, cooldown_seconds=30)
    options.update(kwargs)
    return CircuitBreaker("stripe", store, clock=clock, on_transition=lambda *t: transitions.append(t), **options)


def fail(breaker, times=1):
    for _ in range(times):
        permit = breaker.allow()
        assert permit is not None
        breaker.record_failure(permit)


def trip(breaker, clock):
    fail(breaker, 3)
    assert breaker.current().state == OPEN
    clock.now += 30


def test_opens_after_threshold_consecutive_failures_and_reports_once(store, clock, transitions):
    breaker = make(store, clock, transitions)
    fail(breaker, 2)
    assert breaker.current().state == CLOSED and breaker.current().failures == 2
    assert transitions == []
    fail(breaker)
    assert breaker.current().state == OPEN
    assert breaker.allow() is None
    assert [t[:2] for t in transitions] == [(CLOSED, OPEN)]
    assert "3 consecutive" in transitions[0][2]


def test_a_success_resets_the_streak(store, clock, transitions):
    breaker = make(store, clock, transitions)
    fail(breaker, 2)
    breaker.record_success(breaker.allow())
    fail(breaker, 2)
    assert breaker.current().state == CLOSED and breaker.current().failures == 2


def test_failures_outside_the_window_start_a_new_streak(store, clock, transitions):
    breaker = make(store, clock, transitions)
    fail(breaker, 2)
    clock.now += 61
    fail(breaker)
    assert breaker.current().state == CLOSED and breaker.current().failures == 1
    clock.now += 59  # the new streak's window started at its first failure
    fail(breaker, 2)
    assert breaker.current().state == OPEN


def test_stays_open_during_cooldown_then_lets_exactly_one_probe_through(store, clock, transitions):
    breaker = make(store, clock, transitions)
    fail(breaker, 3)
    clock.now += 29.9
    assert breaker.allow() is None
    clock.now += 0.1
    probe = breaker.allow()
    assert probe is not None and probe.is_probe
    assert breaker.allow() is None, "a second caller got a probe while one is in flight"
    assert breaker.current().state == HALF_OPEN
    assert [t[:2] for t in transitions] == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_probe_success_closes_and_resets(store, clock, transitions):
    breaker = make(store, clock, transitions)
    trip(breaker, clock)
    breaker.record_success(breaker.allow())
    assert breaker.current() == dataclasses.replace(BreakerState(), version=breaker.current().version)
    assert transitions[-1][:2] == (HALF_OPEN, CLOSED)
    fail(breaker, 2)  # a fresh streak: two failures do not reopen it
    assert breaker.current().state == CLOSED


def test_probe_failure_reopens_for_a_new_cooldown(store, clock, transitions):
    breaker = make(store, clock, transitions)
    trip(breaker, clock)
    breaker.record_failure(breaker.allow())
    assert breaker.current().state == OPEN
    assert transitions[-1][:2] == (HALF_OPEN, OPEN)
    clock.now += 29
    assert breaker.allow() is None
    clock.now += 1
    assert breaker.allow().is_probe


def test_a_probe_that_never_reports_can_be_claimed_again(store, clock, transitions):
    breaker = make(store, clock, transitions, probe_timeout_seconds=10)
    trip(breaker, clock)
    lost = breaker.allow()
    clock.now += 10
    second = breaker.allow()
    assert second is not None and second.is_probe and second.probe_id != lost.probe_id
    breaker.record_success(lost)  # the stale probe no longer decides anything
    assert breaker.current().state == HALF_OPEN
    breaker.record_success(second)
    assert breaker.current().state == CLOSED
    assert [t[:2] for t in transitions].count((OPEN, HALF_OPEN)) == 1


def test_concurrent_callers_get_a_single_probe_and_one_report(store, clock, transitions):
    trip(make(store, clock, transitions), clock)
    callers = 8
    barrier = threading.Barrier(callers)
    first_load = threading.local()
    real_load = store.load

    def load_together(name):
        # Every caller reads the same expired-open state before anyone writes: a real race for the probe.
        state = real_load(name)
        if not getattr(first_load, "done", False):
            first_load.done = True
            barrier.wait(timeout=10)
        return state

    store.load = load_together
    breakers = [make(store, clock, transitions) for _ in range(callers)]
    permits = [None] * callers

    def run(i):
        permits[i] = breakers[i].allow()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sum(p is not None for p in permits) == 1
    assert [t[:2] for t in transitions].count((OPEN, HALF_OPEN)) == 1


def test_transitions_race_reports_open_once(store, clock, transitions):
    a, b = make(store, clock, transitions), make(store, clock, transitions)
    fail(a, 2)
    pa, pb = a.allow(), b.allow()
    a.record_failure(pa)
    b.record_failure(pb)  # arrives after a opened the breaker: no second trip, no second report
    assert [t[:2] for t in transitions] == [(CLOSED, OPEN)]


def test_closed_fast_path_reads_at_most_once_and_never_writes(store, clock, transitions):
    breaker = make(store, clock, transitions)
    permit = breaker.allow()
    breaker.record_success(permit)
    assert (store.loads, store.saves) == (1, 0)


def test_closed_state_cache_spares_reads_until_it_expires(store, clock, transitions):
    breaker = make(store, clock, transitions, closed_cache_seconds=2)
    for _ in range(5):
        breaker.record_success(breaker.allow())
    assert (store.loads, store.saves) == (1, 0)
    clock.now += 2
    breaker.allow()
    assert store.loads == 2


def test_cached_instance_learns_the_breaker_opened_on_its_next_failure(store, clock, transitions):
    cached = make(store, clock, transitions, closed_cache_seconds=60)
    cached.allow()
    fail(make(store, clock, transitions), 3)  # another instance trips it
    permit = cached.allow()  # still trusted from the cache
    cached.record_failure(permit)
    assert cached.allow() is None
    assert [t[:2] for t in transitions] == [(CLOSED, OPEN)]


def test_failing_alert_does_not_fail_the_caller(store, clock, caplog):
    def broken(*_):
        raise RuntimeError("sns down")

    breaker = CircuitBreaker("stripe", store, failure_threshold=1, clock=clock, on_transition=broken)
    breaker.record_failure(breaker.allow())
    assert breaker.current().state == OPEN
    assert "reporting closed -> open failed" in caplog.text


# --- DynamoDB store (in-process moto) -------------------------------------------------------------


@pytest.fixture()
def table():
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        yield dynamodb.create_table(
            TableName="transactions",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )


def test_dynamodb_store_round_trips_and_compares_versions(table):
    store = DynamoDBBreakerStore(boto3.client("dynamodb", region_name="us-east-1"), "transactions")
    assert store.load("stripe") == BreakerState()
    state = BreakerState(state=HALF_OPEN, failures=0, open_until=1030.5, probe_id="p1", probe_expires_at=1060.25)
    assert store.save("stripe", state, 0)
    assert not store.save("stripe", state, 0), "a second create of the same breaker succeeded"
    assert store.load("stripe") == dataclasses.replace(state, version=1)
    assert not store.save("stripe", BreakerState(), 2)
    assert store.save("stripe", BreakerState(failures=2, window_started_at=1000.0), 1)
    assert store.load("stripe") == BreakerState(failures=2, window_started_at=1000.0, version=2)
    assert table.get_item(Key=breaker_key("stripe"))["Item"]["item_type"] == "breaker"


def test_two_instances_race_for_the_probe_exactly_one_wins(table, clock):
    transitions = []
    store_b = DynamoDBBreakerStore(boto3.client("dynamodb", region_name="us-east-1"), "transactions")
    b = make(store_b, clock, transitions)
    trip(b, clock)
    won = {}

    class InterleavingStore(DynamoDBBreakerStore):
        """A reads the expired-open state, then B runs its whole allow() before A writes."""

        def load(self, name):
            state = super().load(name)
            if "b" not in won:
                won["b"] = b.allow()
            return state

    a = make(InterleavingStore(boto3.client("dynamodb", region_name="us-east-1"), "transactions"), clock, transitions)
    won["a"] = a.allow()
    assert won["b"] is not None and won["b"].is_probe
    assert won["a"] is None
    assert [t[:2] for t in transitions] == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    b.record_success(won["b"])
    assert a.current().state == CLOSED
