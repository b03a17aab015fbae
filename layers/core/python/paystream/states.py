"""The payment state machine (DESIGN.md §2): which event moves which status where, monotonically.

Event types and the status they lead to:

    payment.created          → created            (only as a payment's first event)
    payment.queued           → queued             (parked while the payment provider is unavailable)
    payment.processing       → processing
    payment.requires_action  → requires_action
    payment.review           → review             (held by fraud review)
    payment.failed           → failed             (detail: retryable, failure_code, failure_message,
                                                   attempt: 1 for the first charge, 2, 3, … for retries)
    payment.succeeded        → succeeded
    payment.canceled         → canceled
    payment.refunded         → partially_refunded or refunded, from detail `amount_refunded`: the
                               cumulative amount refunded so far (Stripe's charge.amount_refunded);
                               absent means a full refund
    payment.disputed         → disputed           (detail: dispute_id, dispute_reason)
    payment.dispute_closed   → no status change; records detail `dispute_status` (won, lost, …) on
                               a disputed payment, once
    fraud.scored             → no status change; records detail `risk_score` (the first score wins)
    payment.reviewed         → no status change; records an operator's decision on a payment held in
                               review (detail: decision approved|declined, operator, reason), once

A status can only be entered from these statuses; anything else is a late, duplicate or
out-of-order delivery and is ignored (no event is appended):

    to                  from
    queued              created
    processing          created, queued
    requires_action     created, queued, processing
    review              created, queued, processing, requires_action
    failed              created, queued, processing, requires_action, review,
                        failed (only a later retry: detail `attempt` above the recorded one)
    succeeded           created, queued, processing, requires_action, review, failed
    canceled            created, queued, processing, requires_action, review, failed
    partially_refunded  succeeded, partially_refunded (only when amount_refunded grows)
    refunded            succeeded, partially_refunded
    disputed            succeeded, partially_refunded, refunded

Every allowed move goes up in RANK, so no sequence of deliveries can move a payment backwards or
loop. Choices worth knowing: a failed payment can still succeed (Stripe lets a failed
PaymentIntent be retried with another payment method) or be canceled; succeeded, canceled and
failed never become each other otherwise; a payment in review leaves it only with an outcome
(succeeded, failed, canceled), so a late `processing` cannot release the hold; a payment that
already succeeded does not move to review (the fraud alert still goes out); refunded is terminal
except for a dispute; disputed is terminal.

A PaymentIntent id is never lost: an event that brings the payment's first `payment_intent_id` is
appended even when its status move is refused (e.g. a payment moved to review while Stripe was being
called), recording the id without changing the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from paystream.models import PaymentEvent, PaymentRequest, Projection, Status, new_event_id, utc_now

PAYMENT_CREATED = "payment.created"
PAYMENT_FAILED = "payment.failed"
PAYMENT_REFUNDED = "payment.refunded"
PAYMENT_DISPUTE_CLOSED = "payment.dispute_closed"
PAYMENT_REVIEWED = "payment.reviewed"
FRAUD_SCORED = "fraud.scored"
REVIEW_DECISIONS = frozenset({"approved", "declined"})
CAPTURE_METHODS = frozenset({"automatic", "manual"})

EVENT_STATUS: dict[str, Status] = {
    PAYMENT_CREATED: Status.CREATED,
    "payment.queued": Status.QUEUED,
    "payment.processing": Status.PROCESSING,
    "payment.requires_action": Status.REQUIRES_ACTION,
    "payment.review": Status.REVIEW,
    PAYMENT_FAILED: Status.FAILED,
    "payment.succeeded": Status.SUCCEEDED,
    "payment.canceled": Status.CANCELED,
    "payment.disputed": Status.DISPUTED,
}
EVENT_TYPES = frozenset({*EVENT_STATUS, PAYMENT_REFUNDED, PAYMENT_DISPUTE_CLOSED, PAYMENT_REVIEWED, FRAUD_SCORED})

_S = Status
_BEFORE_OUTCOME = {_S.CREATED, _S.QUEUED, _S.PROCESSING, _S.REQUIRES_ACTION, _S.REVIEW}
ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    _S.QUEUED: frozenset({_S.CREATED}),
    _S.PROCESSING: frozenset({_S.CREATED, _S.QUEUED}),
    _S.REQUIRES_ACTION: frozenset({_S.CREATED, _S.QUEUED, _S.PROCESSING}),
    _S.REVIEW: frozenset({_S.CREATED, _S.QUEUED, _S.PROCESSING, _S.REQUIRES_ACTION}),
    _S.FAILED: frozenset(_BEFORE_OUTCOME),
    _S.SUCCEEDED: frozenset({*_BEFORE_OUTCOME, _S.FAILED}),
    _S.CANCELED: frozenset({*_BEFORE_OUTCOME, _S.FAILED}),
    _S.PARTIALLY_REFUNDED: frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED}),
    _S.REFUNDED: frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED}),
    _S.DISPUTED: frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED, _S.REFUNDED}),
}

RANK: dict[Status, int] = {
    _S.CREATED: 0,
    _S.QUEUED: 1,
    _S.PROCESSING: 2,
    _S.REQUIRES_ACTION: 3,
    _S.REVIEW: 4,
    _S.FAILED: 5,
    _S.SUCCEEDED: 6,
    _S.CANCELED: 6,
    _S.PARTIALLY_REFUNDED: 7,
    _S.REFUNDED: 8,
    _S.DISPUTED: 9,
}

# Still waiting for an outcome (what an ops check lists as stuck when it stays too long).
PENDING: frozenset[Status] = frozenset(_BEFORE_OUTCOME)


class UnknownEventType(ValueError):
    pass


@dataclass(frozen=True)
class Decision:
    append: bool
    new_status: Status
    reason: str
    # The event is appended only to record the payment's first PaymentIntent id: its status move was refused.
    intent_only: bool = False


def refund_total(projection: Projection, detail: Mapping[str, Any]) -> int:
    """The cumulative amount refunded that a payment.refunded detail reports (absent: all of it)."""
    total = detail.get("amount_refunded")
    return projection.amount if total is None else min(int(total), projection.amount)


def failure_attempt(detail: Mapping[str, Any]) -> int:
    """Which charge attempt a payment.failed reports: 1 unless a retry says otherwise."""
    return int(detail.get("attempt") or 1)


def decide(projection: Projection | None, event_type: str, detail: Mapping[str, Any] | None = None) -> Decision:
    """Whether `event_type` is a new fact for this payment (append it) or a late/duplicate delivery (ignore it)."""
    detail = detail or {}
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown payment event type {event_type!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    if projection is None:
        if event_type != PAYMENT_CREATED:
            raise ValueError(f"{event_type} for a payment that does not exist: its first event must be {PAYMENT_CREATED}")
        return Decision(True, Status.CREATED, "new payment")
    current = projection.status
    if event_type == PAYMENT_CREATED:
        return Decision(False, current, "payment already created")
    if event_type == FRAUD_SCORED:
        if projection.risk_score is not None:
            return Decision(False, current, "payment already scored")
        return Decision(True, current, "risk score recorded")
    if event_type == PAYMENT_DISPUTE_CLOSED:
        if current != Status.DISPUTED:
            return Decision(False, current, f"no open dispute on a {current} payment")
        if projection.dispute_status is not None:
            return Decision(False, current, "dispute already closed")
        return Decision(True, current, "dispute outcome recorded")
    if event_type == PAYMENT_REVIEWED:
        decision = detail.get("decision")
        if decision not in REVIEW_DECISIONS:
            raise ValueError(f"{PAYMENT_REVIEWED} needs detail decision in {sorted(REVIEW_DECISIONS)}, got {decision!r}")
        if projection.review_decision is not None:
            return Decision(False, current, f"review decision already recorded: {projection.review_decision}")
        if current != Status.REVIEW:
            return Decision(False, current, f"a {current} payment is not held in review")
        return Decision(True, current, f"review decision recorded: {decision}")
    decision = _status_decision(projection, event_type, detail)
    if not decision.append and projection.payment_intent_id is None and detail.get("payment_intent_id"):
        return Decision(True, current, f"PaymentIntent recorded ({decision.reason})", intent_only=True)
    return decision


def _status_decision(projection: Projection, event_type: str, detail: Mapping[str, Any]) -> Decision:
    current = projection.status
    if event_type == PAYMENT_FAILED and current == Status.FAILED:
        if failure_attempt(detail) > projection.attempt:
            return Decision(True, current, f"retry attempt {failure_attempt(detail)} failed")
        return Decision(False, current, "failure already recorded")
    if event_type == PAYMENT_REFUNDED:
        total = refund_total(projection, detail)
        if total <= projection.amount_refunded:
            return Decision(False, current, "refund already recorded")
        target = Status.REFUNDED if total >= projection.amount else Status.PARTIALLY_REFUNDED
    else:
        target = EVENT_STATUS[event_type]
    if current == target and target != Status.PARTIALLY_REFUNDED:
        return Decision(False, current, f"already {current}")
    if current not in ALLOWED_FROM[target]:
        return Decision(False, current, f"{current} never moves to {target}")
    return Decision(True, target, f"{current} → {target}")


def apply(projection: Projection | None, event: PaymentEvent) -> Projection:
    """Fold one event into the projection (pure). Status moves only as `decide` allows, so a rebuild
    under corrected rules fixes a projection even if an event was appended under buggy ones."""
    decision = decide(projection, event.event_type, event.detail)
    detail = event.detail
    if projection is None:
        if event.sequence != 1:
            raise ValueError(f"{event.transaction_id}: first event has sequence {event.sequence}, expected 1")
        return Projection(
            transaction_id=event.transaction_id,
            status=Status.CREATED,
            amount=event.amount,
            currency=event.currency,
            customer_id=event.customer_id,
            order_id=detail["order_id"],
            payment_method_id=detail["payment_method_id"],
            payment_intent_id=detail.get("payment_intent_id"),
            description=detail.get("description"),
            metadata=detail.get("metadata") or {},
            device_id=detail.get("device_id"),
            ip_address=detail.get("ip_address"),
            country=detail.get("country"),
            capture_method=detail.get("capture_method") or "automatic",
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
            based_on_event_id=event.event_id,
            last_sequence=1,
        )
    if event.transaction_id != projection.transaction_id:
        raise ValueError(f"event {event.event_id} belongs to {event.transaction_id}, not {projection.transaction_id}")
    if event.sequence != projection.last_sequence + 1:
        raise ValueError(
            f"{projection.transaction_id}: event sequence {event.sequence} after {projection.last_sequence} (events must be contiguous)"
        )
    changes: dict[str, Any] = {
        "last_sequence": event.sequence,
        "based_on_event_id": event.event_id,
        "updated_at": event.occurred_at,
    }
    if projection.payment_intent_id is None and detail.get("payment_intent_id"):
        changes["payment_intent_id"] = detail["payment_intent_id"]
    if decision.append and not decision.intent_only:
        changes["status"] = decision.new_status
        if event.event_type == FRAUD_SCORED:
            changes["risk_score"] = int(detail["risk_score"])
        elif event.event_type == PAYMENT_DISPUTE_CLOSED:
            changes["dispute_status"] = str(detail.get("dispute_status") or "closed")
        elif event.event_type == PAYMENT_REVIEWED:
            changes["review_decision"] = detail["decision"]
        elif decision.new_status == Status.FAILED:
            changes["failure_code"] = detail.get("failure_code")
            changes["failure_message"] = detail.get("failure_message")
            changes["retryable"] = detail.get("retryable")
            changes["attempt"] = max(projection.attempt, failure_attempt(detail))
        elif decision.new_status == Status.SUCCEEDED:
            changes.update(failure_code=None, failure_message=None, retryable=None)
        elif event.event_type == PAYMENT_REFUNDED:
            changes["amount_refunded"] = refund_total(projection, detail)
    return projection.model_copy(update=changes)


def rebuild(events: Iterable[PaymentEvent]) -> Projection:
    """The projection folded from scratch out of a payment's events, in sequence order."""
    projection: Projection | None = None
    for event in events:
        projection = apply(projection, event)
    if projection is None:
        raise ValueError("cannot rebuild a payment from no events")
    return projection


def created_event(
    transaction_id: str, request: PaymentRequest, *, event_id: str | None = None, occurred_at: str | None = None,
    capture_method: str = "automatic",
) -> PaymentEvent:
    """The first event of a new payment; its detail carries everything the projection needs from the request,
    and `capture_method` when it is `manual` (risk-gated capture: fixed for the payment's life, so every
    repeat of its PaymentIntent create sends the same parameters)."""
    if capture_method not in CAPTURE_METHODS:
        raise ValueError(f"capture_method must be one of {sorted(CAPTURE_METHODS)}, got {capture_method!r}")
    detail = request.model_dump(exclude={"amount", "currency", "customer_id"}, exclude_none=True)
    if capture_method != "automatic":
        detail["capture_method"] = capture_method
    return PaymentEvent(
        event_id=event_id or new_event_id(),
        event_type=PAYMENT_CREATED,
        source="paystream.payments",
        sequence=1,
        occurred_at=occurred_at or utc_now(),
        transaction_id=transaction_id,
        amount=request.amount,
        currency=request.currency,
        customer_id=request.customer_id,
        detail=detail,
    )


def next_event(
    projection: Projection,
    event_type: str,
    detail: Mapping[str, Any] | None = None,
    *,
    source: str = "paystream.payments",
    sequence: int | None = None,
    event_id: str | None = None,
    occurred_at: str | None = None,
) -> PaymentEvent:
    """A new event for this payment, numbered after its last one (or `sequence` when several are appended at once)."""
    return PaymentEvent(
        event_id=event_id or new_event_id(),
        event_type=event_type,
        source=source,
        sequence=sequence or projection.last_sequence + 1,
        occurred_at=occurred_at or utc_now(),
        transaction_id=projection.transaction_id,
        amount=projection.amount,
        currency=projection.currency,
        customer_id=projection.customer_id,
        detail=dict(detail or {}),
    )
