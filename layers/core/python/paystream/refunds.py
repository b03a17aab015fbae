"""Refunds: POST /payments/{transaction_id}/refunds, full or partial (DESIGN.md §2).

Pure logic over injected parts (event store, Stripe gateway, circuit breaker), so it makes no AWS or
Stripe call of its own. Round trips: one Query to load the payment, two Stripe calls (create the
refund, read the charge's cumulative `amount_refunded`), one TransactWriteItems to append
`payment.refunded`.

Exactly once: the Stripe refund is created with an idempotency key derived from the transaction id
and the caller's request identity (API key id + Idempotency-Key), so a retry after a crash gets
Stripe's original refund back instead of a second one; and each `payment.refunded` event records
that identity (`request_key`), so a retry after the append answers from the stored event.

The cumulative amount refunded is read from Stripe (the charge's `amount_refunded`) rather than
added up locally: two concurrent partial refunds then both record a total that includes the other,
and the state machine keeps the larger one. The local check of what is left to refund spares Stripe
a call that would fail; Stripe's own refusal (two refunds racing past the local check) gets the
same 422.

Refunds are never parked: with Stripe unreachable or the breaker open the caller gets a 503 with
Retry-After and retries with the same Idempotency-Key.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from paystream.api import ApiError
from paystream.models import PaymentEvent, Projection, RefundRequest, Status
from paystream.payments import Breaker, append_event
from paystream.states import PAYMENT_REFUNDED
from paystream.store import EventStore, PaymentNotFound

# A payment can be refunded once it succeeded; a fully refunded one has nothing left (422, not 409).
REFUNDABLE_STATUSES = frozenset({Status.SUCCEEDED, Status.PARTIALLY_REFUNDED, Status.REFUNDED})


class RefundGateway(Protocol):
    def create_refund(self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None,
                      reason: str | None = None) -> dict: ...
    def retrieve_charge(self, charge_id: str) -> dict: ...


class RefundRefused(Exception):
    """A refund the platform or Stripe refused; `error` is the API's answer (status, code, message,
    headers). A plain exception, so it passes through any context manager (ApiError is frozen)."""

    def __init__(self, error: ApiError):
        super().__init__(f"{error.status_code} {error.error}: {error.message}")
        self.error = error


def _refusal(status_code: int, error: str, message: str, **kwargs: Any) -> RefundRefused:
    return RefundRefused(ApiError(status_code, error, message, **kwargs))


@dataclass(frozen=True)
class RefundResult:
    status_code: int  # 201: Stripe created (or, for a retry, had created) the refund
    body: dict[str, Any]


def refund_request_key(caller: str, idempotency_key: str) -> str:
    """A short, stable name for one refund request (Idempotency-Keys can be 255 characters long)."""
    return hashlib.sha256(f"{caller}\x1f{idempotency_key}".encode()).hexdigest()[:32]


def stripe_refund_idempotency_key(transaction_id: str, request_key: str) -> str:
    return f"paystream:{transaction_id}:refund:{request_key}"


def _response(projection: Projection, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "refund_id": detail["refund_id"],
        "transaction_id": projection.transaction_id,
        "amount": detail["refund_amount"],
        "status": detail["refund_status"],
        "amount_refunded": detail["amount_refunded"],
        "payment_status": projection.status.value,
    }


def _recorded_refund(events: list[PaymentEvent], request_key: str) -> dict[str, Any] | None:
    """The detail of the refund this request already recorded (a retry after the append), if any."""
    for event in events:
        if event.event_type == PAYMENT_REFUNDED and event.detail.get("request_key") == request_key:
            return event.detail
    return None


class RefundService:
    def __init__(self, store: EventStore, gateway: RefundGateway, breaker: Breaker, *, retry_after_seconds: float):
        self._store = store
        self._gateway = gateway
        self._breaker = breaker
        # What a 503 tells the caller to wait: the breaker's cooldown, after which a probe goes through.
        self._retry_after = str(max(1, math.ceil(retry_after_seconds)))

    def refund(self, transaction_id: str, request: RefundRequest, request_key: str) -> RefundResult:
        """Refund `request.amount` (all that is left when None). Raises RefundRefused for every refusal:
        404 not_found, 409 payment_not_refundable, 422 amount_exceeds_refundable / idempotency_key_reused,
        503 provider_unavailable (with Retry-After), 502 provider_error."""
        from paystream.adapters.stripe_gateway import PaymentProviderError

        try:
            projection, events = self._store.load(transaction_id)
        except PaymentNotFound:
            raise _refusal(404, "not_found", f"no payment {transaction_id}") from None
        recorded = _recorded_refund(events, request_key)
        if recorded is not None:
            return RefundResult(201, _response(projection, recorded))
        self._check_refundable(projection, request.amount)

        permit = self._breaker.allow()
        if permit is None:
            raise self._unavailable("circuit breaker open")
        try:
            refund = self._gateway.create_refund(
                projection.payment_intent_id,
                idempotency_key=stripe_refund_idempotency_key(transaction_id, request_key),
                amount=request.amount,
                reason=request.reason,
            )
            charge = self._gateway.retrieve_charge(refund["charge"])
        except PaymentProviderError as error:
            if error.unavailable:
                self._breaker.record_failure(permit)
                # The refund may exist at Stripe already: the retry with the same key gets it back.
                raise self._unavailable(error.message) from error
            self._breaker.record_success(permit)  # Stripe answered: the provider is up
            raise self._refused(projection, error) from error
        self._breaker.record_success(permit)

        detail = {
            "amount_refunded": int(charge["amount_refunded"]),
            "refund_id": refund["id"],
            "refund_amount": int(refund["amount"]),
            "refund_status": refund.get("status"),
            "reason": request.reason,
            "request_key": request_key,
            "stripe_refund": json.dumps(refund, sort_keys=True, default=str),
        }
        # No append when a concurrent refund (or the charge.refunded webhook) already recorded this total.
        projection = append_event(self._store, projection, PAYMENT_REFUNDED, detail)
        return RefundResult(201, _response(projection, detail))

    def _check_refundable(self, projection: Projection, amount: int | None) -> None:
        if projection.status not in REFUNDABLE_STATUSES or not projection.payment_intent_id:
            raise _refusal(409, "payment_not_refundable",
                           f"payment {projection.transaction_id} is {projection.status.value}: only a succeeded "
                           "payment can be refunded")
        remaining = projection.amount - projection.amount_refunded
        if remaining <= 0:
            raise _refusal(422, "amount_exceeds_refundable",
                           f"payment {projection.transaction_id} is fully refunded: nothing is left to refund "
                           f"(remaining amount 0 {projection.currency})")
        if amount is not None and amount > remaining:
            raise _refusal(422, "amount_exceeds_refundable",
                           f"amount {amount} is more than what is left to refund: the remaining amount is "
                           f"{remaining} {projection.currency} (of {projection.amount}; {projection.amount_refunded} "
                           "refunded)")

    def _unavailable(self, reason: str) -> RefundRefused:
        return _refusal(503, "provider_unavailable",
                        f"the payment provider is unavailable ({reason}): retry with the same Idempotency-Key "
                        f"after {self._retry_after} s", headers={"Retry-After": self._retry_after})

    def _refused(self, projection: Projection, error: Any) -> RefundRefused:
        from paystream.adapters.stripe_gateway import REFUND_EXCEEDS_REMAINING

        if error.kind == REFUND_EXCEEDS_REMAINING:
            # A concurrent refund took what this one asked for after the local check passed.
            return _refusal(422, "amount_exceeds_refundable",
                            f"more than what is left to refund on payment {projection.transaction_id} "
                            f"(Stripe: {error.message})")
        if error.code == "charge_disputed":
            return _refusal(409, "payment_not_refundable",
                            f"payment {projection.transaction_id} is disputed: Stripe refuses refunds of a disputed charge")
        if error.kind == "idempotency_conflict":
            return _refusal(422, "idempotency_key_reused",
                            "this Idempotency-Key was used with a different request body: use a new key")
        if error.retryable:
            return self._unavailable(error.message)
        return _refusal(502, "provider_error", f"Stripe refused the refund: {error.message}")
