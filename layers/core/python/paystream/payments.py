"""Payment initiation: store first, call Stripe once, record what Stripe answered.

Pure logic over injected parts (event store, Stripe gateway, circuit breaker, parked queue), so it
makes no AWS or Stripe call of its own. Round trips on the hot path: one TransactWriteItems to
create the payment, one Stripe call, one TransactWriteItems to record the outcome.

Exactly once: the transaction id is derived from the caller's identity and Idempotency-Key, and
the PaymentIntent is created with a Stripe idempotency key derived from the transaction id. A retry
after a crash at any point finds the stored payment and, if it has no PaymentIntent recorded yet,
repeats the Stripe call with the same key, which gives back the same PaymentIntent.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from paystream.models import PaymentRequest, Projection, Status
from paystream.states import apply, created_event, decide, next_event
from paystream.store import ConcurrentAppendError, EventStore, PaymentExistsError, PaymentNotFound

TRANSACTION_NAMESPACE = uuid.UUID("6f1d8f3e-3c8a-4f57-9a43-0b8d6c1f2e90")
MAX_APPEND_ATTEMPTS = 3

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


@dataclass(frozen=True)
class InitiateResult:
    status_code: int  # 201 created (whatever Stripe answered), 202 parked
    body: dict[str, Any]


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
                 fault_point: Callable[[str], None] | None = None, capture_method: str = "automatic"):
        """`capture_method` for new payments: `manual` under risk-gated capture (the fraud score decides)."""
        self._store = store
        self._capture_method = capture_method
        self._gateway = gateway
        self._breaker = breaker
        self._parker = parker
        # Called at named points of the flow; local fault drills use it to crash there on purpose.
        self._fault_point = fault_point or (lambda point: None)

    def initiate(self, transaction_id: str, request: PaymentRequest) -> InitiateResult:
        permit = self._breaker.allow()
        first = created_event(transaction_id, request, capture_method=self._capture_method)
        projection = apply(None, first)
        if permit is None:
            return self._park_new(projection, first, "payment provider unavailable: circuit breaker open")
        try:
            self._store.create(projection, first)
        except PaymentExistsError:
            # A retry after a crash (or a concurrent duplicate that slipped past the idempotency layer).
            projection = self._store.require_projection(transaction_id)
            if projection.payment_intent_id or projection.status != Status.CREATED:
                return self._existing(projection)
        return self._charge(projection, permit, park_when_unavailable=True)

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

    def _charge(self, projection: Projection, permit: Any, *, park_when_unavailable: bool) -> InitiateResult:
        """The one Stripe call (keyed by the transaction id), then the event that records its answer."""
        from paystream.adapters.stripe_gateway import PaymentProviderError

        try:
            intent = create_payment_intent(self._gateway, projection)
        except PaymentProviderError as error:
            if error.unavailable:
                self._breaker.record_failure(permit)
                if not park_when_unavailable:
                    raise ProviderUnavailable(error.message) from error
                return self._park(projection, f"payment provider unavailable: {error.message}")
            self._breaker.record_success(permit)  # Stripe answered: the provider is up
            return self._record_failure(projection, error)
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
        projection = self._append(projection, event_type, detail)
        return InitiateResult(201, _response(projection, intent.get("client_secret")))

    # ------------------------------------------------------------------ paths

    def _existing(self, projection: Projection) -> InitiateResult:
        client_secret = None
        if projection.payment_intent_id:
            client_secret = self._gateway.retrieve_payment_intent(projection.payment_intent_id).get("client_secret")
        status_code = 202 if projection.status == Status.QUEUED else 201
        return InitiateResult(status_code, _response(projection, client_secret))

    def _park_new(self, projection: Projection, first, reason: str) -> InitiateResult:
        queued = next_event(projection, "payment.queued", {"reason": reason})
        parked = apply(projection, queued)
        try:
            self._store.create(parked, first, queued)
        except PaymentExistsError:
            existing = self._store.require_projection(projection.transaction_id)
            if existing.status == Status.CREATED and not existing.payment_intent_id:
                return self._park(existing, reason)  # a retry after a crash, while Stripe is down
            return self._existing(existing)
        self._parker.park(projection.transaction_id)
        return InitiateResult(202, _response(parked, None))

    def _park(self, projection: Projection, reason: str) -> InitiateResult:
        projection = self._append(projection, "payment.queued", {"reason": reason})
        self._parker.park(projection.transaction_id)
        return InitiateResult(202, _response(projection, None))

    def _record_failure(self, projection: Projection, error) -> InitiateResult:
        intent = error.payment_intent or {}
        detail = {
            "retryable": bool(error.retryable),
            "failure_code": error.decline_code or error.code or error.kind,
            "failure_message": error.message,
        }
        if intent.get("id"):
            detail |= {"payment_intent_id": intent["id"], "stripe_status": intent.get("status"),
                       "stripe_payment_intent": stored_intent(intent)}
        projection = self._append(projection, "payment.failed", detail)
        return InitiateResult(201, _response(projection, intent.get("client_secret")))

    def _append(self, projection: Projection, event_type: str, detail: dict[str, Any]) -> Projection:
        return append_event(self._store, projection, event_type, detail)


def append_event(store: EventStore, projection: Projection, event_type: str, detail: dict[str, Any],
                 *, source: str = "paystream.payments") -> Projection:
    """Append one event through the state machine; on a concurrent append, re-read and decide again.

    Returns the projection after the append, or the (re-read) projection unchanged when the state
    machine says the fact is already known (a webhook got there first with the same or a later fact).
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
                         link_payment_intent=link)
            return updated
        except ConcurrentAppendError:
            # Only the projection is needed to decide again: one GetItem, not the payment's whole history.
            projection = store.require_projection(projection.transaction_id)
    raise ConcurrentAppendError(f"payment {projection.transaction_id}: gave up after {MAX_APPEND_ATTEMPTS} concurrent appends")
