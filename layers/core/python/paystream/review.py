"""What a fraud score does to a payment: hold it for review, block it, capture it, or let an operator decide.

Pure logic over injected parts (event store, Stripe gateway), no AWS or Stripe call of its own
(docs/fraud.md, "Review and risk-gated capture"):

- `FraudReviewService.flagged` — a `fraud.scored` event at or above the review threshold (the bus rule
  matches `risk_score >= 70`): a payment not yet captured moves to `review`; at or above the block
  threshold its PaymentIntent is canceled (`cancellation_reason=fraudulent`) and the payment recorded
  `canceled`. A payment already captured stays as it is. The caller alerts with `alert(...)`.
- `FraudReviewService.capture_if_cleared` — risk-gated capture: a payment whose PaymentIntent was only
  authorized (manual capture) is captured once both facts are known, in either order: its score is below
  the review threshold, and Stripe says `requires_capture`. Each fact's event triggers a check.
- `FraudReviewService.approve` / `decline` — an operator's decision on a payment held in review, recorded as
  `payment.reviewed` (operator, reason) before Stripe is called, then capture or cancel, recorded as
  `payment.succeeded` / `payment.canceled`. Both can be run again after a failure: every Stripe call is keyed.
- `FraudReviewService.held` — payments in review with their authorization's expiry (Stripe cancels an
  uncaptured authorization after 7 days by default; `capture_before` when Stripe reports it).

Every write goes through `payments.append_event` (the state machine), so duplicate deliveries and races
with webhooks never record a fact twice or move a payment backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Protocol

from paystream.models import Projection, Status
from paystream.payments import append_event, stored_intent
from paystream.states import PAYMENT_REVIEWED
from paystream.store import EventStore

FRAUD_SOURCE = "paystream.fraud"
# Stripe cancels an uncaptured card authorization after 7 days unless it reports another `capture_before`.
AUTHORIZATION_VALIDITY = timedelta(days=7)
# PaymentIntent statuses Stripe lets you cancel (`processing` only in rare cases: left out).
CANCELABLE = frozenset({"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"})
CAPTURED = frozenset({Status.SUCCEEDED, Status.PARTIALLY_REFUNDED, Status.REFUNDED, Status.DISPUTED})
CLOSED = frozenset({Status.CANCELED, Status.FAILED})


class ReviewGateway(Protocol):
    def retrieve_payment_intent(self, payment_intent_id: str) -> dict: ...
    def capture_payment_intent(self, payment_intent_id: str, *, idempotency_key: str) -> dict: ...
    def cancel_payment_intent(self, payment_intent_id: str, *, idempotency_key: str,
                              cancellation_reason: str | None = None) -> dict: ...


class InvalidFraudEvent(ValueError):
    """The message is not a usable fraud.scored event (it will end in the DLQ); the message says why."""


class NotChargedYet(Exception):
    """The payment has no PaymentIntent yet (being created, or parked while Stripe is unavailable): the
    hold or block cannot apply yet, so the message is retried later."""


class ReviewRefused(Exception):
    """An operator's decision that cannot apply; the message says why, in one line."""


@dataclass(frozen=True)
class Thresholds:
    review: int = 70
    block: int = 90


@dataclass(frozen=True)
class FraudFlag:
    """The parts of a `fraud.scored` bus event the review needs."""

    event_id: str
    transaction_id: str
    risk_score: int
    risk_factors: tuple[dict, ...]

    @classmethod
    def from_bus_event(cls, event: Mapping[str, Any]) -> "FraudFlag":
        if event.get("detail-type") != "fraud.scored" or event.get("source") != FRAUD_SOURCE:
            raise InvalidFraudEvent(f"expected a fraud.scored event from {FRAUD_SOURCE}, got "
                                    f"{event.get('detail-type')!r} from {event.get('source')!r}")
        detail = event.get("detail")
        if not isinstance(detail, Mapping):
            raise InvalidFraudEvent("the event has no detail object")
        missing = [name for name in ("event_id", "transaction_id", "risk_score") if detail.get(name) in (None, "")]
        if missing:
            raise InvalidFraudEvent(f"fraud.scored detail lacks {', '.join(missing)}")
        score = detail["risk_score"]
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
            raise InvalidFraudEvent(f"risk_score must be an integer 0-100, got {score!r}")
        factors = detail.get("risk_factors") or []
        if not isinstance(factors, list) or not all(isinstance(f, Mapping) for f in factors):
            raise InvalidFraudEvent("risk_factors must be a list of objects")
        return cls(str(detail["event_id"]), str(detail["transaction_id"]), score,
                   tuple(dict(f) for f in factors))


@dataclass(frozen=True)
class ReviewOutcome:
    """What the review did: `held` (moved to review), `blocked` (canceled), `already_captured` (nothing
    stops the money any more: refund if needed), `already_closed` (canceled or failed before)."""

    action: str
    projection: Projection


@dataclass(frozen=True)
class CaptureOutcome:
    """`captured`, or why not: `not_risk_gated`, `awaiting_score`, `held_for_review`,
    `awaiting_authorization`, `nothing_to_capture`."""

    action: str
    projection: Projection


@dataclass(frozen=True)
class HeldPayment:
    projection: Projection
    intent_status: str | None
    authorized_at: datetime | None
    expires_at: datetime | None


def capture_idempotency_key(transaction_id: str) -> str:
    return f"paystream:{transaction_id}:capture"


def cancel_idempotency_key(transaction_id: str) -> str:
    return f"paystream:{transaction_id}:cancel"


def alert(flag: FraudFlag, outcome: ReviewOutcome, thresholds: Thresholds) -> dict[str, Any]:
    """The fraud-alerts message: the score, its reasons and what was done."""
    projection = outcome.projection
    return {
        "transaction_id": flag.transaction_id,
        "fraud_event_id": flag.event_id,
        "risk_score": flag.risk_score,
        "decision": "block" if flag.risk_score >= thresholds.block else "review",
        "action": outcome.action,
        "risk_factors": [{"code": f.get("code"), "reason": f.get("reason"), "weight": f.get("weight")}
                         for f in flag.risk_factors],
        "status": projection.status.value,
        "payment_intent_id": projection.payment_intent_id,
        "amount": projection.amount,
        "currency": projection.currency,
        "customer_id": projection.customer_id,
    }


def _epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), timezone.utc) if isinstance(value, (int, float)) and value else None


def authorization_window(intent: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """When the PaymentIntent's authorization was made and when it lapses: Stripe's
    `latest_charge.payment_method_details.card.capture_before` when reported, otherwise the charge's
    (or the PaymentIntent's) creation + 7 days."""
    charge = intent.get("latest_charge")
    charge = charge if isinstance(charge, Mapping) else {}
    authorized = _epoch(charge.get("created")) or _epoch(intent.get("created"))
    card = ((charge.get("payment_method_details") or {}).get("card") or {})
    expires = _epoch(card.get("capture_before")) or (authorized + AUTHORIZATION_VALIDITY if authorized else None)
    return authorized, expires


class FraudReviewService:
    def __init__(self, store: EventStore, gateway: ReviewGateway, thresholds: Thresholds):
        self._store = store
        self._gateway = gateway
        self._thresholds = thresholds

    @property
    def thresholds(self) -> Thresholds:
        return self._thresholds

    def _projection(self, transaction_id: str) -> Projection:
        return self._store.require_projection(transaction_id)

    # ------------------------------------------------------------------ fraud_review

    def flagged(self, flag: FraudFlag) -> ReviewOutcome:
        """Hold (or block) a flagged payment that has not been captured."""
        projection = self._projection(flag.transaction_id)
        if projection.status in CAPTURED:
            return ReviewOutcome("already_captured", projection)
        if projection.status in CLOSED:
            return ReviewOutcome("already_closed", projection)
        if projection.payment_intent_id is None:
            raise NotChargedYet(f"payment {flag.transaction_id} is {projection.status.value} without a "
                                "PaymentIntent yet: the hold applies once it has one")
        blocked = flag.risk_score >= self._thresholds.block
        if not blocked:
            projection = append_event(self._store, projection, "payment.review",
                                      {"risk_score": flag.risk_score, "fraud_event_id": flag.event_id})
            return ReviewOutcome(self._review_action(projection), projection)
        intent = self._gateway.retrieve_payment_intent(projection.payment_intent_id)
        if intent.get("status") in CANCELABLE:
            intent = self._gateway.cancel_payment_intent(projection.payment_intent_id,
                                                         idempotency_key=cancel_idempotency_key(flag.transaction_id),
                                                         cancellation_reason="fraudulent")
        projection = self._record_intent(projection, intent, {"cancellation_reason": "fraudulent",
                                                              "risk_score": flag.risk_score,
                                                              "fraud_event_id": flag.event_id})
        if projection.status == Status.CANCELED:
            return ReviewOutcome("blocked", projection)
        if projection.status in CAPTURED:
            return ReviewOutcome("already_captured", projection)
        # Not cancelable and not captured (e.g. Stripe still `processing`): hold it for an operator.
        projection = append_event(self._store, projection, "payment.review",
                                  {"risk_score": flag.risk_score, "fraud_event_id": flag.event_id})
        return ReviewOutcome(self._review_action(projection), projection)

    @staticmethod
    def _review_action(projection: Projection) -> str:
        if projection.status == Status.REVIEW:
            return "held"
        return "already_captured" if projection.status in CAPTURED else "already_closed"

    # ------------------------------------------------------------------ capture_payment

    def capture_if_cleared(self, transaction_id: str) -> CaptureOutcome:
        """Capture a risk-gated payment once its score is below review and Stripe holds the authorization."""
        projection = self._projection(transaction_id)
        if projection.capture_method != "manual":
            return CaptureOutcome("not_risk_gated", projection)
        if projection.status in CAPTURED or projection.status in CLOSED:
            return CaptureOutcome("nothing_to_capture", projection)
        if projection.risk_score is None:
            return CaptureOutcome("awaiting_score", projection)
        if projection.risk_score >= self._thresholds.review or projection.status == Status.REVIEW:
            return CaptureOutcome("held_for_review", projection)
        if projection.payment_intent_id is None:
            return CaptureOutcome("awaiting_authorization", projection)
        intent = self._gateway.retrieve_payment_intent(projection.payment_intent_id)
        if intent.get("status") != "requires_capture":
            projection = self._record_intent(projection, intent, {})
            action = "nothing_to_capture" if projection.status in CAPTURED | CLOSED else "awaiting_authorization"
            return CaptureOutcome(action, projection)
        intent = self._gateway.capture_payment_intent(projection.payment_intent_id,
                                                      idempotency_key=capture_idempotency_key(transaction_id))
        projection = self._record_intent(projection, intent, {"captured_by": "risk_gated_capture",
                                                              "risk_score": projection.risk_score})
        return CaptureOutcome("captured" if projection.status in CAPTURED else "awaiting_authorization", projection)

    # ------------------------------------------------------------------ operators (scripts/review.py)

    def approve(self, transaction_id: str, *, operator: str, reason: str) -> Projection:
        """Record the approval, then capture the authorization (a payment whose PaymentIntent captures by
        itself is only recorded)."""
        projection = self._decide(transaction_id, "approved", operator, reason)
        intent = self._gateway.retrieve_payment_intent(projection.payment_intent_id)
        if intent.get("status") == "requires_capture":
            intent = self._gateway.capture_payment_intent(projection.payment_intent_id,
                                                          idempotency_key=capture_idempotency_key(transaction_id))
        elif intent.get("status") != "succeeded":
            raise ReviewRefused(f"payment {transaction_id}: approval recorded, but its PaymentIntent is "
                                f"{intent.get('status')}, not capturable yet; run approve again once it is "
                                "requires_capture")
        return self._record_intent(projection, intent, {"approved_by": operator, "review_reason": reason})

    def decline(self, transaction_id: str, *, operator: str, reason: str) -> Projection:
        """Record the decline, then cancel the PaymentIntent (refused if the money was already captured)."""
        projection = self._decide(transaction_id, "declined", operator, reason)
        intent = self._gateway.retrieve_payment_intent(projection.payment_intent_id)
        if intent.get("status") in CANCELABLE:
            intent = self._gateway.cancel_payment_intent(projection.payment_intent_id,
                                                         idempotency_key=cancel_idempotency_key(transaction_id),
                                                         cancellation_reason="fraudulent")
        elif intent.get("status") == "succeeded":
            self._record_intent(projection, intent, {})
            raise ReviewRefused(f"payment {transaction_id}: decline recorded, but Stripe already captured it; "
                                f"refund it with POST /payments/{transaction_id}/refunds")
        elif intent.get("status") != "canceled":
            raise ReviewRefused(f"payment {transaction_id}: decline recorded, but its PaymentIntent is "
                                f"{intent.get('status')} and cannot be canceled now; run decline again later")
        return self._record_intent(projection, intent, {"cancellation_reason": "fraudulent",
                                                        "declined_by": operator, "review_reason": reason})

    def _decide(self, transaction_id: str, decision: str, operator: str, reason: str) -> Projection:
        if not operator.strip() or not reason.strip():
            raise ReviewRefused("an operator name and a reason are required: they are recorded with the decision")
        projection = self._projection(transaction_id)
        if projection.review_decision not in (None, decision):
            raise ReviewRefused(f"payment {transaction_id} was already {projection.review_decision} in review")
        if projection.review_decision is None:
            if projection.status != Status.REVIEW:
                raise ReviewRefused(f"payment {transaction_id} is {projection.status.value}, not held in review")
            if projection.payment_intent_id is None:
                raise ReviewRefused(f"payment {transaction_id} has no PaymentIntent to {decision[:-1]}")
            projection = append_event(self._store, projection, PAYMENT_REVIEWED,
                                      {"decision": decision, "operator": operator, "reason": reason})
        return projection

    def held(self) -> list[HeldPayment]:
        """Payments in review, soonest-expiring authorization first."""
        held = []
        for projection in self._store.projections_in_status(Status.REVIEW):
            intent = (self._gateway.retrieve_payment_intent(projection.payment_intent_id)
                      if projection.payment_intent_id else {})
            authorized, expires = authorization_window(intent) if intent.get("status") == "requires_capture" else (None, None)
            held.append(HeldPayment(projection, intent.get("status"), authorized, expires))
        far = datetime.max.replace(tzinfo=timezone.utc)
        return sorted(held, key=lambda h: (h.expires_at or far, h.projection.created_at))

    # ------------------------------------------------------------------ recording Stripe's answer

    def _record_intent(self, projection: Projection, intent: Mapping[str, Any], extra: dict[str, Any]) -> Projection:
        """Record what the PaymentIntent's status means for the payment (nothing when it means nothing new)."""
        event_type = {"succeeded": "payment.succeeded", "canceled": "payment.canceled"}.get(intent.get("status"))
        if event_type is None:
            return projection
        detail = {"payment_intent_id": intent.get("id"), "stripe_status": intent.get("status"),
                  "stripe_payment_intent": stored_intent(dict(intent)), **extra}
        return append_event(self._store, projection, event_type, detail)
