"""Payment initiation: store first, call Stripe once, record what Stripe answered.

Pure logic over injected parts (event store, Stripe gateway, circuit breaker, parked queue), so it
makes no AWS or Stripe call of its own. Round trips on the hot path: one TransactWriteItems to
create the payment, one Stripe call, one TransactWriteItems to record the outcome.

Exactly once: the transaction id is derived from the caller's identity and Idempotency-Key, and
the PaymentIntent is created with a Stripe idempotency key derived from the transaction id. A retry
after a crash at any point finds the stored payment and, if it has no PaymentIntent recorded yet,
repeats the Stripe call with the same key, which gives back the same PaymentIntent.

The request's idempotency record (store.RequestRecord) rides in those two transactions: the first puts it
in progress, the second completes it with the answer. So a repeated request costs nothing extra until it
conflicts: then one GetItem says replay (200), in flight (409), another body (422), or a dead attempt to
take over (docs/payments-core.md, "Idempotency").
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from paystream.models import PaymentRequest, Projection, Status
from paystream.states import apply, created_event, decide, next_event
from paystream.store import (REQUEST_COMPLETED, ConcurrentAppendError, EventStore, PaymentExistsError,
                             PaymentNotFound, RequestRecord)

TRANSACTION_NAMESPACE = uuid.UUID("6f1d8f3e-3c8a-4f57-9a43-0b8d6c1f2e90")
MAX_APPEND_ATTEMPTS = 3
# How long a key is remembered (the record's TTL), as Powertools idempotency did for POST /payments.
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600

logger = logging.getLogger(__name__)

# What a confirmed PaymentIntent's status means for the payment.
INTENT_STATUS_EVENT = {
    "succeeded": "payment.succeeded",
    "processing": "payment.processing",
    "requires_action": "payment.requires_action",
    "requires_confirmation": "payment.requires_action",
    "requires_capture": "payment.processing",
    "canceled": "payment.canceled",
    "requires_payment_method": "payment.failed",
}


class Gateway(Protocol):
    def create_and_confirm_payment_intent(self, **kwargs: Any) -> dict: ...
    def retrieve_payment_intent(self, payment_intent_id: str) -> dict: ...


class Breaker(Protocol):
    def allow(self) -> Any: ...
    def record_success(self, permit: Any) -> None: ...
    def record_failure(self, permit: Any) -> None: ...


class Parker(Protocol):
    def park(self, transaction_id: str) -> None:
        """Hand a queued payment to the parked-payments queue, to be resumed when Stripe is back."""


class ProviderUnavailable(Exception):
    """Stripe cannot be called now (breaker open, or unreachable): try the parked payment later."""


class RequestInProgress(Exception):
    """Another attempt with the same Idempotency-Key is still running (409)."""


class RequestMismatch(Exception):
    """The Idempotency-Key was used with another request body (422)."""


@dataclass(frozen=True)
class InitiateResult:
    status_code: int  # 201 created (whatever Stripe answered), 202 parked
    body: dict[str, Any]
    replayed: bool = False  # the stored answer of an earlier attempt with the same key


def request_hash(request: PaymentRequest) -> str:
    """The validated request, hashed: what a repeated key must match (so `EUR` and `eur` are the same body)."""
    canonical = json.dumps(request.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def transaction_id_for(caller: str, idempotency_key: str) -> str:
    """The same caller and Idempotency-Key always name the same payment."""
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{caller}\x1f{idempotency_key}"))


def stripe_idempotency_key(transaction_id: str) -> str:
    return f"paystream:{transaction_id}:create"


def create_payment_intent(gateway: Gateway, projection: Projection) -> dict:
    """The payment's one PaymentIntent create: always the same parameters and idempotency key, so any
    repeat of it (a retry after a crash, a retry of a rate-limited create) gets the original answer."""
    return gateway.create_and_confirm_payment_intent(
        transaction_id=projection.transaction_id,
        amount=projection.amount,
        currency=projection.currency,
        customer_id=projection.customer_id,
        payment_method_id=projection.payment_method_id,
        description=projection.description,
        metadata={"order_id": projection.order_id},
        idempotency_key=stripe_idempotency_key(projection.transaction_id),
        capture_method=projection.capture_method,
    )


def stored_intent(intent: dict) -> str:
    """The raw PaymentIntent as stored in the event: everything but the client secret."""
    return json.dumps({k: v for k, v in intent.items() if k != "client_secret"}, sort_keys=True, default=str)


def _response(projection: Projection, client_secret: str | None) -> dict[str, Any]:
    return {
        "transaction_id": projection.transaction_id,
        "status": projection.status.value,
        "payment_intent_id": projection.payment_intent_id,
        "client_secret": client_secret,
        "amount": projection.amount,
        "currency": projection.currency,
        "created_at": projection.created_at,
    }


class PaymentService:
    def __init__(self, store: EventStore, gateway: Gateway, breaker: Breaker, parker: Parker,
                 fault_point: Callable[[str], None] | None = None, capture_method: str = "automatic",
                 clock: Callable[[], float] = time.time):
        """`capture_method` for new payments: `manual` under risk-gated capture (the fraud score decides)."""
        self._store = store
        self._clock = clock
        self._capture_method = capture_method
        self._gateway = gateway
        self._breaker = breaker
        self._parker = parker
        # Called at named points of the flow; local fault drills use it to crash there on purpose.
        self._fault_point = fault_point or (lambda point: None)

    def initiate(self, transaction_id: str, request: PaymentRequest, *, in_progress_ms: int = 60_000) -> InitiateResult:
        """POST /payments: new (201, or 202 parked), or the answer to a repeated key (replayed 200 body,
        RequestInProgress, RequestMismatch). `in_progress_ms`: how long this attempt may still run (the
        function's remaining time); a record older than that belongs to a dead attempt."""
        now = self._clock()
        record = RequestRecord(transaction_id, request_hash(request), expires_at=int(now) + IDEMPOTENCY_EXPIRY_SECONDS,
                               in_progress_until=int(now * 1000) + in_progress_ms)
        permit = self._breaker.allow()
        first = created_event(transaction_id, request, capture_method=self._capture_method)
        projection = apply(None, first)
        if permit is None:
            return self._park_new(projection, first, "payment provider unavailable: circuit breaker open", record)
        try:
            self._store.create(projection, first, request=record, now=now)
        except PaymentExistsError:
            # A repeated key: answered from its record, or (a dead attempt's, or none left) finished here.
            found = self._repeated(record)
            if isinstance(found, InitiateResult):
                return found
            projection = found
            if projection.payment_intent_id or projection.status != Status.CREATED:
                return self._holding(record, lambda: self._existing(projection, record))
        return self._holding(record, lambda: self._charge(projection, permit, park_when_unavailable=True, record=record))

    def resume(self, transaction_id: str) -> InitiateResult:
        """Take a parked payment to Stripe once the breaker lets a call through.

        Raises ProviderUnavailable while the breaker is open or Stripe is still unreachable (the
        parked message is retried later); a payment no longer queued is left as it is.
        """
        projection = self._store.get_projection(transaction_id)
        if projection is None:
            raise PaymentNotFound(f"no payment {transaction_id}")
        if projection.status != Status.QUEUED:
            return InitiateResult(200, _response(projection, None))  # resumed already (a duplicate message)
        permit = self._breaker.allow()
        if permit is None:
            raise ProviderUnavailable("circuit breaker open")
        return self._charge(projection, permit, park_when_unavailable=False)

    def _charge(self, projection: Projection, permit: Any, *, park_when_unavailable: bool,
                record: RequestRecord | None = None) -> InitiateResult:
        """The one Stripe call (keyed by the transaction id), then the event that records its answer."""
        from paystream.adapters.stripe_gateway import PaymentProviderError

        try:
            intent = create_payment_intent(self._gateway, projection)
        except PaymentProviderError as error:
            if error.unavailable:
                self._breaker.record_failure(permit)
                if not park_when_unavailable:
                    raise ProviderUnavailable(error.message) from error
                return self._park(projection, f"payment provider unavailable: {error.message}", record)
            self._breaker.record_success(permit)  # Stripe answered: the provider is up
            return self._record_failure(projection, error, record)
        self._breaker.record_success(permit)
        self._fault_point("after_stripe_call")
        event_type = INTENT_STATUS_EVENT.get(intent.get("status"), "payment.processing")
        detail = {
            "payment_intent_id": intent["id"],
            "stripe_status": intent.get("status"),
            "stripe_payment_intent": stored_intent(intent),
        }
        if event_type == "payment.failed":
            detail |= {"retryable": False, "failure_code": "requires_payment_method",
                       "failure_message": "the payment method was not accepted"}
        return self._append(projection, event_type, detail, record, intent.get("client_secret"))

    # ------------------------------------------------------------------ paths

    def _repeated(self, record: RequestRecord) -> InitiateResult | Projection:
        """The first transaction found the payment stored. Its live record answers (replay, 409, 422); a
        dead attempt's in-progress record is taken over; then (or with no live record) the stored payment
        is returned to be finished like a retry after a crash."""
        now = self._clock()
        stored = self._store.get_request(record.transaction_id)
        if stored is not None and not stored.expired(now):
            if stored.request_hash != record.request_hash:
                raise RequestMismatch(record.transaction_id)
            if stored.status == REQUEST_COMPLETED:
                return InitiateResult(stored.status_code or 201, stored.response or {}, replayed=True)
            if stored.in_progress_until > now * 1000 or not self._store.take_over_request(stored, record):
                raise RequestInProgress(record.transaction_id)
            logger.warning("took over the request of an attempt that ended without an answer")
        try:
            return self._store.require_projection(record.transaction_id)
        except PaymentNotFound:
            # Cancelled by a concurrent transaction (TransactionConflict) of the same key not yet committed.
            raise RequestInProgress(record.transaction_id) from None

    def _holding(self, record: RequestRecord, step: Callable[[], InitiateResult]) -> InitiateResult:
        """Run `step` while this attempt holds the record; if it fails, release the record so the same key
        can retry at once (as Powertools removed its in-progress record). A crash cannot release it: the
        retry then waits out `in_progress_until` (409 until then)."""
        try:
            return step()
        except Exception:
            try:
                self._store.release_request(record)
            except Exception as exc:  # the original failure is what the caller must see
                logger.warning("could not release the idempotency record: %s", exc)
            raise

    def _existing(self, projection: Projection, record: RequestRecord | None = None) -> InitiateResult:
        client_secret = None
        if projection.payment_intent_id:
            client_secret = self._gateway.retrieve_payment_intent(projection.payment_intent_id).get("client_secret")
        status_code = 202 if projection.status == Status.QUEUED else 201
        result = InitiateResult(status_code, _response(projection, client_secret))
        if record is not None:
            self._store.complete_request(record.completed(result.status_code, result.body), self._clock())
        return result

    def _park_new(self, projection: Projection, first, reason: str, record: RequestRecord) -> InitiateResult:
        queued = next_event(projection, "payment.queued", {"reason": reason})
        parked = apply(projection, queued)
        result = InitiateResult(202, _response(parked, None))
        try:
            # Parked in one write: the record is completed at once with the 202 (a replay answers it).
            self._store.create(parked, first, queued, request=record.completed(202, result.body), now=self._clock())
        except PaymentExistsError:
            found = self._repeated(record)
            if isinstance(found, InitiateResult):
                return found
            if found.status == Status.CREATED and not found.payment_intent_id:
                # a retry after a crash, while Stripe is down
                return self._holding(record, lambda: self._park(found, reason, record))
            return self._holding(record, lambda: self._existing(found, record))
        self._parker.park(projection.transaction_id)
        return result

    def _park(self, projection: Projection, reason: str, record: RequestRecord | None = None) -> InitiateResult:
        result = self._append(projection, "payment.queued", {"reason": reason}, record, None, status_code=202)
        self._parker.park(projection.transaction_id)
        return result

    def _record_failure(self, projection: Projection, error, record: RequestRecord | None = None) -> InitiateResult:
        intent = error.payment_intent or {}
        detail = {
            "retryable": bool(error.retryable),
            "failure_code": error.decline_code or error.code or error.kind,
            "failure_message": error.message,
        }
        if intent.get("id"):
            detail |= {"payment_intent_id": intent["id"], "stripe_status": intent.get("status"),
                       "stripe_payment_intent": stored_intent(intent)}
        return self._append(projection, "payment.failed", detail, record, intent.get("client_secret"))

    def _append(self, projection: Projection, event_type: str, detail: dict[str, Any], record: RequestRecord | None,
                client_secret: str | None, *, status_code: int = 201) -> InitiateResult:
        """Append the outcome event; the same transaction completes the request's record with the answer.
        Where the state machine appends nothing (a webhook recorded the fact first), the record is completed
        on its own (one more write, on that rare path only)."""
        written: list[Projection] = []

        def completion(updated: Projection) -> RequestRecord | None:
            written.append(updated)
            return None if record is None else record.completed(status_code, _response(updated, client_secret))

        projection = append_event(self._store, projection, event_type, detail, request=completion, now=self._clock())
        result = InitiateResult(status_code, _response(projection, client_secret))
        if record is not None and not (written and written[-1] is projection):
            self._store.complete_request(record.completed(status_code, result.body), self._clock())
        return result


def append_event(store: EventStore, projection: Projection, event_type: str, detail: dict[str, Any],
                 *, source: str = "paystream.payments",
                 request: Callable[[Projection], RequestRecord | None] | None = None, now: float = 0.0) -> Projection:
    """Append one event through the state machine; on a concurrent append, re-read and decide again.

    Returns the projection after the append, or the (re-read) projection unchanged when the state
    machine says the fact is already known (a webhook got there first with the same or a later fact).
    `request`: given the projection an append would write, POST /payments' record to complete in the same transaction.
    """
    for _ in range(MAX_APPEND_ATTEMPTS):
        decision = decide(projection, event_type, detail)
        if not decision.append:
            return projection
        event = next_event(projection, event_type, detail, source=source)
        updated = apply(projection, event)
        # A PaymentIntent recorded for the first time gets its link to the payment in the same write.
        link = updated.payment_intent_id if updated.payment_intent_id != projection.payment_intent_id else None
        try:
            store.append(projection.transaction_id, projection.last_sequence, [event], updated,
                         link_payment_intent=link, request=request(updated) if request else None, now=now)
            return updated
        except ConcurrentAppendError:
            # Only the projection is needed to decide again: one GetItem, not the payment's whole history.
            projection = store.require_projection(projection.transaction_id)
    raise ConcurrentAppendError(f"payment {projection.transaction_id}: gave up after {MAX_APPEND_ATTEMPTS} concurrent appends")
