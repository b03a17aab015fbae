"""The event store over the transactions table (layout: docs/payments-core.md).

Pure logic over an injected table (paystream.adapters.dynamodb_store in Lambda, a fake in tests).
Each write is one all-or-nothing transaction: the new event items, each only if absent, plus the
projection, only if its `last_sequence` is the one the writer read. So two writers can never both
append sequence N: DynamoDB cancels one of the transactions and that writer gets ConcurrentAppendError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Protocol, Sequence

from paystream.models import PaymentEvent, Projection, Status

PROJECTION_SK = "PROJECTION"
# The sparse GSI of projections by status (terraform/modules/data), sort key created_at.
STATUS_INDEX = "by-status"
PAYMENT_INTENT_LINK_SK = "LINK"
# POST /payments' idempotency record, under the payment's partition (docs/payments-core.md, "Idempotency").
# Its item_type is neither event nor projection: the relay's stream filter, rebuild, reconcile, the
# zero-loss audit and GET /payments all select items by item_type or by sk, so they never see it.
REQUEST_SK = "IDEMPOTENCY"
REQUEST_IN_PROGRESS = "INPROGRESS"
REQUEST_COMPLETED = "COMPLETED"
_CONFLICT_REASONS = {"ConditionalCheckFailed", "TransactionConflict"}


def partition_key(transaction_id: str) -> str:
    return f"TXN#{transaction_id}"


def event_sort_key(sequence: int) -> str:
    return f"EVENT#{sequence:010d}"


@dataclass(frozen=True)
class ConditionalPut:
    item: dict[str, Any]
    condition: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """What POST /payments remembers of a request, keyed like the payment (caller + Idempotency-Key).

    In progress until `in_progress_until` (epoch ms: the function's deadline, after which the attempt is surely
    dead); completed with the answer to replay. `expires_at` (epoch s) is the table's TTL attribute: after it
    the key is forgotten, as Powertools' records were."""

    transaction_id: str
    request_hash: str
    expires_at: int
    in_progress_until: int
    status: str = REQUEST_IN_PROGRESS
    status_code: int | None = None
    response: dict[str, Any] | None = None

    def completed(self, status_code: int, response: dict[str, Any]) -> "RequestRecord":
        return replace(self, status=REQUEST_COMPLETED, status_code=status_code, response=response)

    def expired(self, now: float) -> bool:
        return self.expires_at <= now


def request_item(record: RequestRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": partition_key(record.transaction_id),
        "sk": REQUEST_SK,
        "item_type": "idempotency",
        "idempotency_status": record.status,
        "request_hash": record.request_hash,
        "expires_at": record.expires_at,
        "in_progress_until": record.in_progress_until,
    }
    if record.response is not None:
        # One JSON string: replayed byte for byte (nulls and numbers as they were), never indexed.
        item |= {"status_code": record.status_code, "response": json.dumps(record.response, sort_keys=True)}
    return item


def request_record(item: dict[str, Any]) -> RequestRecord:
    response = item.get("response")
    return RequestRecord(
        transaction_id=str(item["pk"]).removeprefix("TXN#"),
        request_hash=item["request_hash"],
        expires_at=int(item["expires_at"]),
        in_progress_until=int(item["in_progress_until"]),
        status=item["idempotency_status"],
        status_code=None if item.get("status_code") is None else int(item["status_code"]),
        response=None if response is None else json.loads(response),
    )


def _request_put(record: RequestRecord, now: float) -> ConditionalPut:
    """The record written over no record, an expired one or one of the same request (never another body's)."""
    return ConditionalPut(request_item(record), "attribute_not_exists(pk) OR request_hash = :request_hash OR "
                          "expires_at <= :now", {":request_hash": record.request_hash, ":now": int(now)})


class TransactionCancelled(Exception):
    """The table cancelled a transaction; `reasons` has one code per item ("None" for items that were fine)."""

    def __init__(self, reasons: list[str]):
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


class TransactionsTable(Protocol):
    def transact_put(self, puts: Sequence[ConditionalPut], token: str | None = None) -> None:
        """Write all or none; raise TransactionCancelled when the table cancels, EventStoreError on other failures."""

    def query_partition(self, pk: str) -> list[dict[str, Any]]:
        """Every item under `pk`, sorted by sk, read consistently."""

    def query_index(self, index_name: str, key_attribute: str, value: str) -> list[dict[str, Any]]:
        """All items of one GSI partition (only ops tools call it)."""

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """One item, read consistently."""

    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The items stored under these (pk, sk) keys, read consistently, in no particular order (absent ones
        left out); EventStoreError if some could not be read."""


class EventStoreError(Exception):
    """The table failed for a reason other than a concurrent writer (throttling, validation, network…)."""


class ConcurrentAppendError(EventStoreError):
    """Another writer appended first: reload, decide again, and retry (or give up if nothing is left to do)."""


class PaymentExistsError(ConcurrentAppendError):
    """A payment with this transaction id is already stored."""


class RequestRecorded(PaymentExistsError):
    """A live idempotency record of this transaction id is stored: another attempt with the same key came first."""


class PaymentNotFound(EventStoreError, LookupError):
    pass


class PaymentIntentLinkConflict(EventStoreError):
    """The PaymentIntent is already linked to another payment: a bug or a forged id, never fixed by retrying."""


def event_item(event: PaymentEvent) -> dict[str, Any]:
    return {
        "pk": partition_key(event.transaction_id),
        "sk": event_sort_key(event.sequence),
        "item_type": "event",
        **event.model_dump(mode="json"),
    }


def payment_intent_link_key(payment_intent_id: str) -> str:
    return f"PAYMENT_INTENT#{payment_intent_id}"


def payment_intent_link_item(payment_intent_id: str, transaction_id: str) -> dict[str, Any]:
    # The relay's stream filter passes only item_type event|stripe_event: links are never published.
    return {"pk": payment_intent_link_key(payment_intent_id), "sk": PAYMENT_INTENT_LINK_SK,
            "item_type": "payment_intent_link", "transaction_id": transaction_id}


def projection_item(projection: Projection) -> dict[str, Any]:
    return {
        "pk": partition_key(projection.transaction_id),
        "sk": PROJECTION_SK,
        "item_type": "projection",
        **projection.model_dump(mode="json", exclude_none=True),
        # Keys of the sparse GSIs by-customer and by-status (sort key: created_at).
        "customer_pk": f"CUSTOMER#{projection.customer_id}",
        "status_pk": f"STATUS#{projection.status.value}",
    }


class EventStore:
    def __init__(self, table: TransactionsTable):
        self._table = table

    def create(self, projection: Projection, first_event: PaymentEvent, *later_events: PaymentEvent,
               request: RequestRecord | None = None, now: float = 0.0) -> None:
        """Store a new payment: its first event(s) and projection, in one round trip.

        `request`: the POST's idempotency record, put in the same transaction only if no live one is stored
        (expired at `now`, epoch s, counts as none); RequestRecorded if one is, PaymentExistsError if only
        the payment is (its record expired)."""
        events = [first_event, *later_events]
        _check_write(projection, 0, events)
        puts = [ConditionalPut(event_item(e), "attribute_not_exists(pk)") for e in events]
        puts.append(ConditionalPut(projection_item(projection), "attribute_not_exists(pk)"))
        if request is not None:
            puts.append(ConditionalPut(request_item(request), "attribute_not_exists(pk) OR expires_at <= :now",
                                       {":now": int(now)}))
        try:
            self._table.transact_put(puts, token=first_event.event_id)
        except TransactionCancelled as exc:
            if request is not None and exc.reasons[-1:] == ["ConditionalCheckFailed"]:
                raise RequestRecorded(f"payment {projection.transaction_id}: its request is recorded") from exc
            raise _cancelled(exc, PaymentExistsError(f"payment {projection.transaction_id} already exists")) from exc

    def append(
        self,
        transaction_id: str,
        expected_last_sequence: int,
        events: Sequence[PaymentEvent],
        new_projection: Projection,
        *,
        link_payment_intent: str | None = None,
        request: RequestRecord | None = None,
        now: float = 0.0,
    ) -> None:
        """Append events after `expected_last_sequence` and replace the projection, in one round trip.

        With no events it only replaces the projection, still guarded by `expected_last_sequence`
        and at that same sequence (a rebuild that catches a projection up uses `replace_projection`).
        `link_payment_intent`: a PaymentIntent id this write records for the first time; the same
        transaction stores its link to the payment, so a webhook that names only the PaymentIntent
        (charges, disputes) finds the payment.
        `request`: POST /payments' idempotency record, completed by the same transaction (see `complete_request`)."""
        if new_projection.transaction_id != transaction_id:
            raise ValueError(f"projection of {new_projection.transaction_id} passed for {transaction_id}")
        puts = append_puts(expected_last_sequence, events, new_projection)
        if request is not None:
            puts.append(_request_put(request, now))
        if link_payment_intent:
            # Written again by a retried append: only a link to ANOTHER payment is refused.
            puts.append(ConditionalPut(payment_intent_link_item(link_payment_intent, transaction_id),
                                       "attribute_not_exists(pk) OR transaction_id = :transaction_id",
                                       {":transaction_id": transaction_id}))
        try:
            self._table.transact_put(puts, token=events[0].event_id if events else None)
        except TransactionCancelled as exc:
            if link_payment_intent and exc.reasons[-1:] == ["ConditionalCheckFailed"]:
                raise PaymentIntentLinkConflict(
                    f"PaymentIntent {link_payment_intent} is already linked to another payment than {transaction_id}"
                ) from exc
            raise _cancelled(
                exc,
                ConcurrentAppendError(
                    f"payment {transaction_id} is no longer at sequence {expected_last_sequence} (or does not exist)"
                ),
            ) from exc

    def replace_projection(self, transaction_id: str, expected_last_sequence: int | None,
                           projection: Projection) -> None:
        """Write a projection rebuilt from the stored events (paystream-ops rebuild), no event.

        Guarded like `append`: only while the stored projection is still at `expected_last_sequence`
        (None: only while the payment has no projection), else ConcurrentAppendError, so a payment that
        got a new event since it was read is never overwritten with an older state. Unlike `append`,
        the projection may end after `expected_last_sequence`: a projection left behind its events
        catches up. It never ends before it (the events it would drop were read, or it is a bug)."""
        if projection.transaction_id != transaction_id:
            raise ValueError(f"projection of {projection.transaction_id} passed for {transaction_id}")
        if expected_last_sequence is None:
            put = ConditionalPut(projection_item(projection), "attribute_not_exists(pk)")
        elif projection.last_sequence < expected_last_sequence:
            raise ValueError(f"projection at last_sequence {projection.last_sequence} would replace one at "
                             f"{expected_last_sequence}: a rebuild never moves a payment back")
        else:
            put = ConditionalPut(projection_item(projection), "last_sequence = :expected",
                                 {":expected": expected_last_sequence})
        try:
            self._table.transact_put([put])
        except TransactionCancelled as exc:
            raise _cancelled(exc, ConcurrentAppendError(
                f"payment {transaction_id} changed since it was read (projection no longer at "
                f"{'none' if expected_last_sequence is None else expected_last_sequence})")) from exc

    def load(self, transaction_id: str) -> tuple[Projection, list[PaymentEvent]]:
        """The projection and all events (in sequence order) of a payment, with one consistent Query."""
        projection, events = None, []
        for item in self._table.query_partition(partition_key(transaction_id)):
            if item.get("item_type") == "event":
                events.append(PaymentEvent.model_validate(item))
            elif item.get("sk") == PROJECTION_SK:
                projection = Projection.model_validate(item)
        if projection is None:
            raise PaymentNotFound(f"no payment {transaction_id}")
        return projection, events

    def get_projection(self, transaction_id: str) -> Projection | None:
        item = self._table.get_item(partition_key(transaction_id), PROJECTION_SK)
        return None if item is None else Projection.model_validate(item)

    def get_projections(self, transaction_ids: Iterable[str]) -> dict[str, Projection]:
        """The projections of these payments by transaction id (payments not stored left out), read
        consistently together: one BatchGetItem per 100 (process_payment reads a whole SQS batch's at once)."""
        keys = [(partition_key(transaction_id), PROJECTION_SK) for transaction_id in dict.fromkeys(transaction_ids)]
        projections = (Projection.model_validate(item) for item in (self._table.batch_get(keys) if keys else []))
        return {projection.transaction_id: projection for projection in projections}

    def require_projection(self, transaction_id: str) -> Projection:
        """The projection of a payment that must exist (one consistent GetItem; PaymentNotFound if not)."""
        projection = self.get_projection(transaction_id)
        if projection is None:
            raise PaymentNotFound(f"no payment {transaction_id}")
        return projection

    def projections_in_status(self, status: Status) -> list[Projection]:
        """Every payment now in `status`, oldest first, from the sparse by-status index (ops tools: a
        GSI is eventually consistent, so a payment that just moved may still be listed or missing)."""
        items = self._table.query_index(STATUS_INDEX, "status_pk", f"STATUS#{Status(status).value}")
        return [Projection.model_validate(item) for item in items]

    def get_request(self, transaction_id: str) -> RequestRecord | None:
        """POST /payments' idempotency record of the payment (one consistent GetItem), if stored."""
        item = self._table.get_item(partition_key(transaction_id), REQUEST_SK)
        return None if item is None else request_record(item)

    def complete_request(self, record: RequestRecord, now: float) -> None:
        """Write `record` (completed) on its own: for an answer no event append carried. Refused
        (ConcurrentAppendError) only where a live record of another body is stored."""
        try:
            self._table.transact_put([_request_put(record, now)])
        except TransactionCancelled as exc:
            raise _cancelled(exc, ConcurrentAppendError(
                f"payment {record.transaction_id}: another request's record is stored")) from exc

    def take_over_request(self, seen: RequestRecord, record: RequestRecord) -> bool:
        """Replace an in-progress record whose attempt is over (`seen`, as read) with `record`; False when
        another attempt changed it first (took it over, or completed it)."""
        try:
            self._table.transact_put([ConditionalPut(
                request_item(record), "idempotency_status = :in_progress AND in_progress_until = :seen",
                {":in_progress": REQUEST_IN_PROGRESS, ":seen": seen.in_progress_until})])
        except TransactionCancelled as exc:
            if _CONFLICT_REASONS & set(exc.reasons):
                return False
            raise EventStoreError(f"the transactions table cancelled the write: {exc.reasons}") from exc
        return True

    def release_request(self, record: RequestRecord) -> bool:
        """Mark this attempt's in-progress record as over now (in_progress_until 0), so the same key may
        retry at once; False when it is no longer this attempt's (completed, or taken over)."""
        return self.take_over_request(record, replace(record, in_progress_until=0))

    def find_transaction_ids(self, payment_intent_ids: Iterable[str]) -> dict[str, str]:
        """The payments these PaymentIntents belong to, {payment intent id: transaction id}, from the links
        their first recordings wrote (PaymentIntents with no link left out): one BatchGetItem per 100."""
        by_key = {payment_intent_link_key(payment_intent_id): payment_intent_id
                  for payment_intent_id in payment_intent_ids}
        items = self._table.batch_get([(key, PAYMENT_INTENT_LINK_SK) for key in by_key]) if by_key else []
        return {by_key[item["pk"]]: item["transaction_id"] for item in items
                if item.get("pk") in by_key and item.get("transaction_id")}


def append_puts(expected_last_sequence: int, events: Sequence[PaymentEvent],
                new_projection: Projection) -> list[ConditionalPut]:
    """The conditional puts of an append (`EventStore.append` without the link), checked like it: for a writer
    that appends events inside a transaction of its own (the fraud scorer writes `fraud.scored` together with
    its risk profiles). A cancelled put means another writer appended first, as in `EventStore.append`."""
    _check_write(new_projection, expected_last_sequence, events)
    puts = [ConditionalPut(event_item(e), "attribute_not_exists(pk)") for e in events]
    puts.append(
        ConditionalPut(
            projection_item(new_projection), "last_sequence = :expected", {":expected": expected_last_sequence}
        )
    )
    return puts


def _check_write(projection: Projection, expected_last_sequence: int, events: Sequence[PaymentEvent]) -> None:
    """Reject a write that would store a gap, a stray event or a projection that does not match its events."""
    for offset, event in enumerate(events, start=1):
        if event.transaction_id != projection.transaction_id:
            raise ValueError(f"event {event.event_id} belongs to {event.transaction_id}, not {projection.transaction_id}")
        if event.sequence != expected_last_sequence + offset:
            raise ValueError(
                f"event sequences must continue from {expected_last_sequence} without gaps; got {[e.sequence for e in events]}"
            )
    last_sequence = expected_last_sequence + len(events)
    if projection.last_sequence != last_sequence:
        raise ValueError(f"projection says last_sequence {projection.last_sequence}, the write ends at {last_sequence}")
    if events and projection.based_on_event_id != events[-1].event_id:
        raise ValueError("projection.based_on_event_id must be the id of the last event written")


def _cancelled(exc: TransactionCancelled, conflict: ConcurrentAppendError) -> EventStoreError:
    if _CONFLICT_REASONS & set(exc.reasons):
        return conflict
    return EventStoreError(f"the transactions table cancelled the write: {exc.reasons}")
