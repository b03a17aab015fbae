"""Scoring a whole batch of fraud-stream records: batched reads, then one conditional write per batch.

    result = score_batch(records, store, config, now, ip_countries=lookup)
    result.outcomes            # one per record, in input order: scored / duplicate / recorded / failed
    result.failed_record_ids() # for the Kinesis partial batch response (`batchItemFailures`)

Budget: the profiles every record needs (CUSTOMER#, DEVICE#, IP#) are read up front in calls of at most
100 keys (`ProfileStore.get_many`, one BatchGetItem each), so a 100-record batch costs
ceil(distinct keys / 100) reads; then every record is scored in memory, in order, and the whole batch is
written with `ProfileStore.put_many` — ONE TransactWriteItems for up to MAX_ACTIONS_PER_WRITE (100)
actions, split into several only at record boundaries. A profile several records of the batch touch
(one customer's, a shared device or IP) is written once, with its final state, on condition that its
stored version is still the one the first of those records read (`merged_updates`); in a later
transaction of the same batch, on the version the earlier one wrote.

Writing the result in the same transaction: `related_keys(payment)` names further items to read in the
same batched reads (e.g. `TXN#<transaction_id>`, the payment's projection — BatchGetItem spans tables);
they reach the store in `ProfileWrite.related`, so an adapter can append `fraud.scored` (expected
`last_sequence` from the projection) in the same TransactWriteItems. Each related key is counted as
RELATED_ITEM_ACTIONS (2: the projection and the appended event) towards the 100 actions. Budget for a
100-record batch: ceil((profiles + projections) / 100) reads, ≤ 4, and ceil(actions / 100) writes, ≤ 5.

Order: records are applied in input order (Kinesis's order within a shard) to in-memory profiles, so
records of one customer (device, IP) later in the batch see the earlier ones' effects — exactly as if
each record were scored and written alone, one after the other.

A cancelled batch transaction (a version condition failed because another invocation wrote a shared
profile or the payment meanwhile, a transaction conflict, a store error) falls back, for its records and
every later one, to the per-record path: the transaction wrote nothing, so the profiles are taken back to
what the earlier transactions wrote, read again (one batched read, after a conflict), and each record is
scored and written alone (`ProfileStore.put`, one TransactWriteItems) — with the same outcomes as if
there had never been a batch write. Only a version conflict of that record costs more there: one re-read
of that record's keys and one more write, at most `max_conflict_retries` times.

Failures are per record and never stop the others:
- malformed (not JSON, missing or invalid fields): `failed`, `retryable=False` — it will never score; the
  caller reports it and the mapping's retry limit sends it to the on-failure destination;
- (per-record path) a version conflict that outlasts the retries, or a store error on the write: `failed`,
  `retryable=True`; later records of the same customer in the batch are then not applied either (`failed`,
  retryable, "deferred") so a customer's records are never applied out of order; Kinesis redelivers them.
A failure of the up-front read raises `ProfileStoreError`: nothing was applied, the whole batch is retried.

Redelivery: Kinesis delivers at least once (a retried batch repeats records that did succeed). A record
whose `event_id` is among its customer profile's remembered results is not applied again: it comes back
as `duplicate` with the score it got the first time (the same record twice in one batch: the second one).
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
MAX_ACTIONS_PER_WRITE = 100  # TransactWriteItems' limit
# What a related key may add to a write: its item and one new item (the projection and the appended event).
RELATED_ITEM_ACTIONS = 2
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

    def put_many(self, writes: Sequence[ProfileWrite]) -> None:
        """Several records' writes, in input order, all or none (one TransactWriteItems of at most
        `write_actions(writes)` ≤ 100 actions): each profile once, as `merged_updates(writes)` says; each
        related item written at most once (a later write of the same payment sees the earlier one's result).
        Raises VersionConflict or ProfileStoreError as `put` does; nothing is written then."""


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


def merged_updates(writes: Iterable[ProfileWrite]) -> tuple[ProfileUpdate, ...]:
    """The profile updates of several writes made in order, each profile once: its last state, on condition
    of the version the first write expected (a transaction cannot hold two actions on one item)."""
    merged: dict[str, ProfileUpdate] = {}
    for write in writes:
        for update in write.updates:
            first = merged.get(update.profile.key)
            merged[update.profile.key] = update if first is None else ProfileUpdate(update.profile,
                                                                                    first.expected_version)
    return tuple(merged.values())


def write_actions(writes: Iterable[ProfileWrite]) -> int:
    """The most actions `put_many(writes)` can take: each distinct profile once, RELATED_ITEM_ACTIONS per
    distinct related key."""
    profiles: set[str] = set()
    related: set[str] = set()
    for write in writes:
        profiles.update(update.profile.key for update in write.updates)
        related.update(write.related)
    return len(profiles) + RELATED_ITEM_ACTIONS * len(related)


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

    `related_keys(payment)`: further keys to read in the same batched reads and hand to the store in
    `ProfileWrite.related` (read once per batch, again after a conflict; the core does not interpret them)."""
    now_ms = epoch_ms(now)
    parsed: list[FraudPayment | MalformedRecord] = []
    for record in records:
        try:
            parsed.append(parse_payment(record.data))
        except MalformedRecord as exc:
            parsed.append(exc)
    related_of = related_keys or (lambda payment: ())
    related = [tuple(related_of(payment)) if isinstance(payment, FraudPayment) else () for payment in parsed]
    known = read_profiles(store, (key for payment, keys in zip(parsed, related) if isinstance(payment, FraudPayment)
                                  for key in (*profile_keys(payment), *keys)))
    stored = dict(known)  # what the store holds as far as this batch knows: the read, then each written chunk

    # Every record scored in memory, in order, as if each were written alone right after the one before.
    planned: list[tuple[RecordOutcome, ProfileWrite | None]] = []
    for record, payment, keys in zip(records, parsed, related):
        if isinstance(payment, MalformedRecord):
            planned.append((_malformed(record, payment), None))
            continue
        fraud_score, write, earlier = score_record(payment, known, config, now_ms, ip_countries, keys)
        if earlier is not None:
            planned.append((RecordOutcome(record.record_id, "duplicate", payment, fraud_score), None))
            continue
        for update in write.updates:
            known[update.profile.key] = update.profile
        planned.append((RecordOutcome(record.record_id, "recorded" if payment.is_decline else "scored", payment,
                                      fraud_score), write))

    result = BatchResult()
    for chunk in _write_chunks([write for _, write in planned]):
        writes = [write for _, write in planned[chunk] if write is not None]
        if writes:
            try:
                store.put_many(writes)
            except ProfileStoreError as exc:
                # Nothing of this chunk was written: from its first record on, the per-record path, on top
                # of what the earlier chunks wrote (read again after a conflict: someone else wrote too).
                if isinstance(exc, VersionConflict):
                    _refresh_or_keep(store, stored, (key for payment, keys in zip(parsed[chunk.start:],
                                                                                   related[chunk.start:])
                                                     if isinstance(payment, FraudPayment)
                                                     for key in (*profile_keys(payment), *keys)))
                result.outcomes.extend(_apply_one_by_one(records[chunk.start:], parsed[chunk.start:],
                                                         related[chunk.start:], stored, store, config, now_ms,
                                                         ip_countries, max_conflict_retries))
                return result
            for update in merged_updates(writes):
                stored[update.profile.key] = update.profile
        result.outcomes.extend(outcome for outcome, _ in planned[chunk])
    return result


def _malformed(record: FraudRecord, error: MalformedRecord) -> RecordOutcome:
    return RecordOutcome(record.record_id, "failed", error=str(error), retryable=False)


def _write_chunks(writes: Sequence[ProfileWrite | None]) -> list[slice]:
    """Consecutive slices of the batch's records whose writes fit one transaction each (a record without a
    write — malformed, duplicate — joins the slice it falls in); a record's write is never split."""
    chunks: list[slice] = []
    start, in_chunk = 0, []
    for index, write in enumerate(writes):
        if write is None:
            continue
        if in_chunk and write_actions([*in_chunk, write]) > MAX_ACTIONS_PER_WRITE:
            chunks.append(slice(start, index))
            start, in_chunk = index, []
        in_chunk.append(write)
    chunks.append(slice(start, len(writes)))
    return chunks


def _refresh(store: ProfileStore, known: dict[str, Any], keys: Iterable[str]) -> None:
    """Read the keys again into `known` (absent ones dropped). Raises ProfileStoreError."""
    ordered = list(dict.fromkeys(keys))
    fresh = read_profiles(store, ordered)
    for key in ordered:
        if key in fresh:
            known[key] = fresh[key]
        else:
            known.pop(key, None)


def _refresh_or_keep(store: ProfileStore, known: dict[str, Any], keys: Iterable[str]) -> None:
    try:
        _refresh(store, known, keys)
    except ProfileStoreError:
        pass  # each record's own conflict re-read (per-record path) reads what it needs


def _apply_one_by_one(records: Sequence[FraudRecord], parsed: Sequence[FraudPayment | MalformedRecord],
                      related: Sequence[tuple[str, ...]], known: dict[str, Any], store: ProfileStore,
                      config: FraudConfig, now_ms: int, ip_countries: IpCountryLookup,
                      max_conflict_retries: int) -> list[RecordOutcome]:
    """The per-record path: each record scored on `known` and written alone (`store.put`)."""
    outcomes: list[RecordOutcome] = []
    failed_customers: set[str] = set()
    for record, payment, keys in zip(records, parsed, related):
        if isinstance(payment, MalformedRecord):
            outcomes.append(_malformed(record, payment))
            continue
        customer = customer_key(payment.customer_id)
        if customer in failed_customers:
            outcomes.append(RecordOutcome(
                record.record_id, "failed", payment, error=f"deferred: an earlier record of {customer} in this batch "
                "failed, and a customer's records are applied in order", retryable=True))
            continue
        outcome = _apply_record(record, payment, keys, known, store, config, now_ms, ip_countries,
                                max_conflict_retries)
        if outcome.failed:
            failed_customers.add(customer)
        outcomes.append(outcome)
    return outcomes


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
            try:
                _refresh(store, known, (*profile_keys(payment), *related))
            except ProfileStoreError as read_error:
                return RecordOutcome(record.record_id, "failed", payment, retryable=True,
                                     error=f"re-reading the profiles after a conflict failed: {read_error}")
            continue
        except ProfileStoreError as exc:
            return RecordOutcome(record.record_id, "failed", payment, retryable=True,
                                 error=f"writing the profiles failed: {exc}")
        for update in write.updates:
            known[update.profile.key] = update.profile
        return RecordOutcome(record.record_id, "recorded" if payment.is_decline else "scored", payment, fraud_score)


class InMemoryProfileStore:
    """The store port in memory, with the semantics of the DynamoDB adapter (conditional, all-or-nothing writes)
    and call counters for the read/write budget. `before_put` (optional) runs before the condition check, once
    per record's write in the call (re-read between them: a hook may remove itself), so a test can play a
    concurrent writer; `fail_puts` makes the next N write calls raise ProfileStoreError."""

    def __init__(self, profiles: Iterable[RiskProfile] = (), related: Mapping[str, Any] | None = None):
        self.profiles: dict[str, RiskProfile] = {profile.key: profile for profile in profiles}
        self.related: dict[str, Any] = dict(related or {})  # other items get_many can return (read-only here)
        self.read_calls = 0
        self.keys_read = 0
        self.max_keys_per_read = 0
        self.write_calls = 0  # put and put_many calls: one TransactWriteItems each in the DynamoDB adapter
        self.writes: list[ProfileWrite] = []  # every record's write that was applied, in order
        self.write_sizes: list[int] = []  # records per applied write call
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
        self.put_many([write])

    def put_many(self, writes: Sequence[ProfileWrite]) -> None:
        if write_actions(writes) > MAX_ACTIONS_PER_WRITE:
            raise ProfileStoreError(f"{write_actions(writes)} actions in one write: TransactWriteItems takes at "
                                    f"most {MAX_ACTIONS_PER_WRITE}")
        self.write_calls += 1
        for write in writes:
            if self.before_put is not None:
                self.before_put(self, write)
        if self.fail_puts:
            self.fail_puts -= 1
            raise ProfileStoreError("ProvisionedThroughputExceededException (simulated)")
        updates = merged_updates(writes)
        for update in updates:
            stored = self.profiles.get(update.profile.key)
            stored_version = stored.version if stored else 0
            if stored_version != update.expected_version:
                raise VersionConflict(f"{update.profile.key} is at version {stored_version}, "
                                      f"the write expected {update.expected_version}")
        for update in updates:
            self.profiles[update.profile.key] = update.profile
        self.writes.extend(writes)
        self.write_sizes.append(len(writes))

    def requests(self) -> int:
        return self.read_calls + self.write_calls

    @staticmethod
    def read_budget(key_count: int) -> int:
        return math.ceil(key_count / MAX_KEYS_PER_READ)
