"""Scoring a whole batch of fraud-stream records: batched reads, one conditional write per record.

    result = score_batch(records, store, config, now, ip_countries=lookup)
    result.outcomes            # one per record, in input order: scored / duplicate / recorded / failed
    result.failed_record_ids() # for the Kinesis partial batch response (`batchItemFailures`)

Budget: the profiles every record needs (CUSTOMER#, DEVICE#, IP#) are read up front in calls of at most
100 keys (`ProfileStore.get_many`, one BatchGetItem each), so a 100-record batch costs
ceil(distinct keys / 100) reads; then each record costs exactly one `ProfileStore.put` (one
TransactWriteItems of its 1–3 profiles, each conditional on the version read). Only a version conflict
(another invocation wrote a shared device or IP profile meanwhile) costs more: one re-read of that
record's keys and one more write, at most `max_conflict_retries` times.

Writing the result in the same transaction: `related_keys(payment)` names further items to read in the
same batched reads (e.g. `TXN#<transaction_id>`, the payment's projection — BatchGetItem spans tables);
they reach `store.put` in `ProfileWrite.related`, so an adapter can append `fraud.scored` (expected
`last_sequence` from the projection) in the record's one TransactWriteItems. Budget for a 100-record
batch: ceil((profiles + projections) / 100) reads, ≤ 4, and still one write per record.

Order: records are applied in input order (Kinesis's order within a shard) to in-memory profiles, so
records of one customer (device, IP) later in the batch see the earlier ones' effects — exactly as if
each record were scored and written alone, one after the other.

Failures are per record and never stop the others:
- malformed (not JSON, missing or invalid fields): `failed`, `retryable=False` — it will never score; the
  caller reports it and the mapping's retry limit sends it to the on-failure destination;
- a version conflict that outlasts the retries, or a store error on the write: `failed`, `retryable=True`;
  later records of the same customer in the batch are then not applied either (`failed`, retryable,
  "deferred") so a customer's records are never applied out of order; Kinesis redelivers them.
A failure of the up-front read raises `ProfileStoreError`: nothing was applied, the whole batch is retried.

Redelivery: Kinesis delivers at least once (a retried batch repeats records that did succeed). A record
whose `event_id` is among its customer profile's remembered results is not applied again: it comes back
as `duplicate` with the score it got the first time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Literal, Mapping, Protocol, Sequence

from paystream.fraud.config import FraudConfig
from paystream.fraud.errors import ProfileStoreError, VersionConflict
from paystream.fraud.inputs import FraudPayment, MalformedRecord, parse_payment
from paystream.fraud.profiles import (
    RememberedResult,
    RiskProfile,
    customer_key,
    profile_keys,
    scoring_time_ms,
    updated_profile,
)
from paystream.fraud.rules import (
    NO_IP_COUNTRIES,
    FraudScore,
    IpCountryLookup,
    PaymentProfiles,
    RiskFactor,
    epoch_ms,
    score,
)

MAX_KEYS_PER_READ = 100  # BatchGetItem's limit
DEFAULT_MAX_CONFLICT_RETRIES = 2


@dataclass(frozen=True)
class ProfileUpdate:
    profile: RiskProfile  # the new profile; its version is expected_version + 1
    expected_version: int  # 0: the profile must not exist yet


@dataclass(frozen=True)
class ProfileWrite:
    """Everything one record changes, written atomically (one TransactWriteItems): all or nothing."""

    payment: FraudPayment
    updates: tuple[ProfileUpdate, ...]
    score: FraudScore | None  # None for a decline; there so an adapter can write the result in the same transaction
    # The items read for the record's related keys (None where absent): e.g. the payment's projection, whose
    # `last_sequence` an adapter needs to append `fraud.scored` in the same transaction.
    related: Mapping[str, Any] = field(default_factory=dict)


class ProfileStore(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The stored profiles (RiskProfile) among at most 100 keys — and the items of any related keys the
        caller asked for (see score_batch) — in one BatchGetItem, whose unprocessed keys are the adapter's to
        retry. Keys without an item are absent from the answer. Raises ProfileStoreError."""

    def put(self, write: ProfileWrite) -> None:
        """Write every update or none, each on condition that the stored version is `expected_version`
        (absent for 0). Raises VersionConflict when a condition fails (then the record's profiles and related
        items are read again and the record scored again), ProfileStoreError otherwise."""


@dataclass(frozen=True)
class FraudRecord:
    """One stream record: the caller's id for it (the Kinesis sequence number) and its decoded data."""

    record_id: str
    data: Mapping[str, Any] | str | bytes


OutcomeStatus = Literal["scored", "duplicate", "recorded", "failed"]


@dataclass(frozen=True)
class RecordOutcome:
    record_id: str
    status: OutcomeStatus  # recorded: a decline, applied to the profiles but not scored
    payment: FraudPayment | None = None
    score: FraudScore | None = None  # scored, and duplicate of a scored payment: the (first) score
    error: str | None = None
    retryable: bool = False  # failed only: True when a later delivery can succeed

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class BatchResult:
    outcomes: list[RecordOutcome] = field(default_factory=list)

    def failed_record_ids(self) -> list[str]:
        return [outcome.record_id for outcome in self.outcomes if outcome.failed]

    def by_status(self, status: OutcomeStatus) -> list[RecordOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == status]


def read_profiles(store: ProfileStore, keys: Iterable[str]) -> dict[str, Any]:
    """The stored profiles (and related items) for the keys, in reads of at most MAX_KEYS_PER_READ keys."""
    ordered = list(dict.fromkeys(keys))
    found: dict[str, Any] = {}
    for start in range(0, len(ordered), MAX_KEYS_PER_READ):
        found.update(store.get_many(ordered[start:start + MAX_KEYS_PER_READ]))
    return found


def _profiles_for(payment: FraudPayment, known: Mapping[str, RiskProfile]) -> list[RiskProfile]:
    return [known.get(key) or RiskProfile.new(key) for key in profile_keys(payment)]


def _as_payment_profiles(payment: FraudPayment, profiles: list[RiskProfile]) -> PaymentProfiles:
    by_kind = {profile.kind: profile for profile in profiles}
    return PaymentProfiles(by_kind["CUSTOMER"], by_kind.get("DEVICE"), by_kind.get("IP"))


REDELIVERED_REASON = "as when this payment was first scored (redelivered record; the first fraud.scored has the details)"


def _remembered_score(result: RememberedResult) -> FraudScore | None:
    if result.risk_score is None:
        return None
    factors = []
    for entry in result.factors:
        code, _, weight = entry.rpartition(":")
        factors.append(RiskFactor(code, REDELIVERED_REASON, int(weight)))
    return FraudScore(result.risk_score, tuple(factors))


def score_record(payment: FraudPayment, known: Mapping[str, Any], config: FraudConfig, now_ms: int,
                 ip_countries: IpCountryLookup, related: Sequence[str] = ()
                 ) -> tuple[FraudScore | None, ProfileWrite | None, RememberedResult | None]:
    """Score one payment against the known profiles: (score, the write to make, or the earlier result if the
    record was already applied). Pure."""
    current = _profiles_for(payment, known)
    earlier = current[0].remembered(payment.event_id)
    if earlier is not None:
        return _remembered_score(earlier), None, earlier
    result = None if payment.is_decline else score(payment, _as_payment_profiles(payment, current), config, now_ms,
                                                    ip_countries=ip_countries)
    remembered = RememberedResult(
        event_id=payment.event_id,
        risk_score=result.risk_score if result else None,
        factors=tuple(f"{factor.code}:{factor.weight}" for factor in result.risk_factors) if result else (),
    )
    at_ms = scoring_time_ms(payment, now_ms)
    updates = tuple(
        ProfileUpdate(updated_profile(profile, payment, config, at_ms=at_ms,
                                      result=remembered if profile.kind == "CUSTOMER" else None), profile.version)
        for profile in current
    )
    return result, ProfileWrite(payment, updates, result, {key: known.get(key) for key in related}), None


def score_batch(records: Sequence[FraudRecord], store: ProfileStore, config: FraudConfig, now: datetime | int, *,
                ip_countries: IpCountryLookup = NO_IP_COUNTRIES,
                max_conflict_retries: int = DEFAULT_MAX_CONFLICT_RETRIES,
                related_keys: Callable[[FraudPayment], Sequence[str]] | None = None) -> BatchResult:
    """Score, in order, every record of a batch (see the module docstring for reads, writes and failures).

    `related_keys(payment)`: further keys to read in the same batched reads and hand to `store.put` in
    `ProfileWrite.related` (read once per batch, again after a conflict; the core does not interpret them)."""
    now_ms = epoch_ms(now)
    parsed: list[FraudPayment | MalformedRecord] = []
    for record in records:
        try:
            parsed.append(parse_payment(record.data))
        except MalformedRecord as exc:
            parsed.append(exc)
    related_of = related_keys or (lambda payment: ())
    known = read_profiles(store, (key for payment in parsed if isinstance(payment, FraudPayment)
                                  for key in (*profile_keys(payment), *related_of(payment))))

    result = BatchResult()
    failed_customers: set[str] = set()
    for record, payment in zip(records, parsed):
        if isinstance(payment, MalformedRecord):
            result.outcomes.append(RecordOutcome(record.record_id, "failed", error=str(payment), retryable=False))
            continue
        customer = customer_key(payment.customer_id)
        if customer in failed_customers:
            result.outcomes.append(RecordOutcome(
                record.record_id, "failed", payment, error=f"deferred: an earlier record of {customer} in this batch "
                "failed, and a customer's records are applied in order", retryable=True))
            continue
        outcome = _apply_record(record, payment, tuple(related_of(payment)), known, store, config, now_ms,
                                ip_countries, max_conflict_retries)
        if outcome.failed:
            failed_customers.add(customer)
        result.outcomes.append(outcome)
    return result


def _apply_record(record: FraudRecord, payment: FraudPayment, related: tuple[str, ...], known: dict[str, Any],
                  store: ProfileStore, config: FraudConfig, now_ms: int, ip_countries: IpCountryLookup,
                  max_conflict_retries: int) -> RecordOutcome:
    attempt = 0
    while True:
        fraud_score, write, earlier = score_record(payment, known, config, now_ms, ip_countries, related)
        if earlier is not None:
            return RecordOutcome(record.record_id, "duplicate", payment, fraud_score)
        try:
            store.put(write)
        except VersionConflict as exc:
            if attempt >= max_conflict_retries:
                return RecordOutcome(record.record_id, "failed", payment, retryable=True,
                                     error=f"profiles kept changing under this record ({exc}); gave up after "
                                           f"{attempt + 1} writes")
            attempt += 1
            keys = (*profile_keys(payment), *related)
            try:
                fresh = store.get_many(list(keys))
            except ProfileStoreError as read_error:
                return RecordOutcome(record.record_id, "failed", payment, retryable=True,
                                     error=f"re-reading the profiles after a conflict failed: {read_error}")
            for key in keys:
                if key in fresh:
                    known[key] = fresh[key]
                else:
                    known.pop(key, None)
            continue
        except ProfileStoreError as exc:
            return RecordOutcome(record.record_id, "failed", payment, retryable=True,
                                 error=f"writing the profiles failed: {exc}")
        for update in write.updates:
            known[update.profile.key] = update.profile
        return RecordOutcome(record.record_id, "recorded" if payment.is_decline else "scored", payment, fraud_score)


class InMemoryProfileStore:
    """The store port in memory, with the semantics of the DynamoDB adapter (conditional, all-or-nothing writes)
    and call counters for the read/write budget. `before_put` (optional) runs before each write's condition
    check, so a test can play a concurrent writer; `fail_puts` makes the next N writes raise ProfileStoreError."""

    def __init__(self, profiles: Iterable[RiskProfile] = (), related: Mapping[str, Any] | None = None):
        self.profiles: dict[str, RiskProfile] = {profile.key: profile for profile in profiles}
        self.related: dict[str, Any] = dict(related or {})  # other items get_many can return (read-only here)
        self.read_calls = 0
        self.keys_read = 0
        self.max_keys_per_read = 0
        self.write_calls = 0
        self.writes: list[ProfileWrite] = []
        self.before_put = None
        self.fail_puts = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, RiskProfile]:
        if len(keys) > MAX_KEYS_PER_READ:
            raise ProfileStoreError(f"{len(keys)} keys in one read: BatchGetItem takes at most {MAX_KEYS_PER_READ}")
        self.read_calls += 1
        self.keys_read += len(keys)
        self.max_keys_per_read = max(self.max_keys_per_read, len(keys))
        return {key: self.profiles.get(key, self.related.get(key)) for key in keys
                if key in self.profiles or key in self.related}

    def put(self, write: ProfileWrite) -> None:
        self.write_calls += 1
        if self.before_put is not None:
            self.before_put(self, write)
        if self.fail_puts:
            self.fail_puts -= 1
            raise ProfileStoreError("ProvisionedThroughputExceededException (simulated)")
        for update in write.updates:
            stored = self.profiles.get(update.profile.key)
            stored_version = stored.version if stored else 0
            if stored_version != update.expected_version:
                raise VersionConflict(f"{update.profile.key} is at version {stored_version}, "
                                      f"the write expected {update.expected_version}")
        for update in write.updates:
            self.profiles[update.profile.key] = update.profile
        self.writes.append(write)

    def requests(self) -> int:
        return self.read_calls + self.write_calls

    @staticmethod
    def read_budget(key_count: int) -> int:
        return math.ceil(key_count / MAX_KEYS_PER_READ)
