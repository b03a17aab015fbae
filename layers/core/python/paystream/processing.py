"""Stripe webhook processing: a stored Stripe event, relayed on the bus, becomes the payment's events.

Pure logic over injected parts (the event store, a recorder of each webhook's outcome on its inbox
item, the ops-alerts publisher), so it makes no AWS call of its own. Input: the EventBridge event the
outbox relay published for a stored webhook (source `paystream.stripe`, detail-type
`stripe.<type>`, detail `{event_id, stripe_event_id, stripe_event_type, object_id, event}`).

Stripe event → payment event (through `states.decide`, so duplicates and late deliveries append nothing):

    payment_intent.processing                  payment.processing
    payment_intent.requires_action             payment.requires_action
    payment_intent.succeeded                   payment.succeeded
    payment_intent.payment_failed              payment.failed (retryable, failure_code, failure_message,
                                               attempt = the payment's current attempt: a webhook never
                                               starts a new attempt, only the retry function does)
    payment_intent.canceled                    payment.canceled
    payment_intent.amount_capturable_updated   payment.processing (stripe_status=requires_capture)
    charge.refunded                            payment.refunded (amount_refunded: the charge's cumulative)
    charge.dispute.created                     payment.disputed (dispute_id, dispute_reason, dispute_amount)
                                               (both first append payment.succeeded, `implied_by` the
                                               event, when the payment has not succeeded yet: a paid
                                               charge was refunded or disputed, so it did succeed and
                                               the `payment_intent.succeeded` webhook is merely late)
    charge.dispute.closed                      payment.dispute_closed (dispute_status); on a payment not
                                               disputed yet (the `created` webhook is late) it first
                                               appends payment.disputed from the same dispute object,
                                               so the outcome is never lost to delivery order
    anything else                              acknowledged, nothing appended

Every appended event's detail carries `stripe_event_id`, `stripe_event_type`, `payment_intent_id`
and the raw Stripe object (`stripe_object`, JSON text: the platform keeps every provider payload).

Finding the payment: `metadata.transaction_id` (PaymentIntents the platform creates carry it), else
the PaymentIntent → payment link the event store writes when a payment first records its
PaymentIntent (charges and disputes name only the PaymentIntent). No payment found: the link may
not be written yet (the webhook raced the initiation's append), so the event is retried
(`PaymentNotYetKnown`) until it has been received `unmatched_retry_receives` times; then it is
recorded as unmatched on its inbox item and raised on ops-alerts, and acknowledged. Never dropped.

Per batch (`process_batch`, an SQS batch of deliveries): the links the batch needs are read together
(one BatchGetItem), then every projection (one BatchGetItem); each delivery is applied in order against
the projections as they stand, so two webhooks of one payment in a batch see each other's appends (an
append that meets a concurrent writer still re-reads that one projection, as `append_event` does); then
all outcomes are recorded together (one call: `WebhookOutcomes.record_all`), and only then are the
unmatched ones alerted. A delivery fails alone — its own exception in the result — and SQS delivers it
again; processing it again is harmless (the state machine appends nothing twice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from paystream.models import Projection
from paystream.payments import append_event
from paystream.states import PAYMENT_FAILED, decide
from paystream.store import EventStore
from paystream.stripe_failures import failure_is_retryable

STRIPE_SOURCE = "paystream.stripe"
# The payment events a webhook leads to are payment facts like any other: source paystream.payments
# (paystream.stripe is for the relayed webhooks themselves, detail-type stripe.<type>).
PAYMENTS_SOURCE = "paystream.payments"
DEFAULT_UNMATCHED_RETRY_RECEIVES = 3

# What each Stripe PaymentIntent event means for the payment.
PAYMENT_INTENT_EVENTS = {
    "payment_intent.processing": "payment.processing",
    "payment_intent.requires_action": "payment.requires_action",
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.payment_failed": PAYMENT_FAILED,
    "payment_intent.canceled": "payment.canceled",
    "payment_intent.amount_capturable_updated": "payment.processing",
}
CHARGE_REFUNDED = "charge.refunded"
DISPUTE_CREATED = "charge.dispute.created"
DISPUTE_CLOSED = "charge.dispute.closed"
HANDLED_TYPES = frozenset({*PAYMENT_INTENT_EVENTS, CHARGE_REFUNDED, DISPUTE_CREATED, DISPUTE_CLOSED})

# Outcomes, as recorded on the inbox item (`processing_status`) and counted by the handler.
APPLIED = "applied"  # at least one payment event appended
NO_CHANGE = "no_change"  # a duplicate or late delivery: the state machine appended nothing
IGNORED = "ignored"  # an event type the platform does not act on
UNMATCHED = "unmatched"  # no payment of this platform: recorded and raised on ops-alerts


class MalformedStripeEvent(ValueError):
    """The message is not a stored Stripe webhook as the relay publishes it; retrying cannot fix it."""


class PaymentNotYetKnown(Exception):
    """No payment matches the event yet: deliver it again later (the link may still be being written)."""


class WebhookOutcomes(Protocol):
    def record_all(self, outcomes: Sequence["Outcome"]) -> dict[str, Exception]:
        """Note on each webhook's inbox item what processing did with it (processing_status, processed_at),
        all together (one per Stripe event id); the errors of those that could not be recorded, by event id."""


class Alerts(Protocol):
    def publish(self, subject: str, message: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class StripeEvent:
    event_id: str
    event_type: str
    data_object: dict[str, Any]

    @property
    def object_id(self) -> str | None:
        object_id = self.data_object.get("id")
        return object_id if isinstance(object_id, str) else None


@dataclass(frozen=True)
class Plan:
    """The payment events one Stripe event asks for, in order, and how to find the payment."""

    steps: list[tuple[str, dict[str, Any]]]
    payment_intent_id: str | None
    transaction_id: str | None  # from metadata, when the object carries it


@dataclass(frozen=True)
class Outcome:
    status: str
    stripe_event_id: str
    stripe_event_type: str
    reason: str
    transaction_id: str | None = None
    payment_status: str | None = None
    appended: list[str] = field(default_factory=list)  # payment event types appended


@dataclass(frozen=True)
class Delivery:
    """One message of a batch: its id, the Stripe event it carries, and how many times it has been received
    (this delivery included)."""

    message_id: str
    event: StripeEvent
    receive_count: int


def parse_bus_event(body: str | Mapping[str, Any]) -> StripeEvent:
    """The Stripe event inside an SQS message body (the EventBridge event JSON); MalformedStripeEvent otherwise."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise MalformedStripeEvent(f"message body is not JSON ({exc})") from exc
    if not isinstance(body, Mapping):
        raise MalformedStripeEvent("message body is not a JSON object (expected an EventBridge event)")
    if body.get("source") != STRIPE_SOURCE:
        raise MalformedStripeEvent(f"event source is {body.get('source')!r}, expected {STRIPE_SOURCE!r}")
    detail_type = body.get("detail-type")
    if not isinstance(detail_type, str) or not detail_type.startswith("stripe."):
        # e.g. a payment event this function appended (source paystream.stripe too): the rule must not route it here.
        raise MalformedStripeEvent(f"detail-type {detail_type!r} is not a stored webhook's stripe.<type>")
    detail = body.get("detail")
    event = detail.get("event") if isinstance(detail, Mapping) else None
    if not isinstance(event, Mapping) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise MalformedStripeEvent("detail.event is not a Stripe event (needs string `id` and `type`)")
    data_object = (event.get("data") or {}).get("object") if isinstance(event.get("data"), Mapping) else None
    if not isinstance(data_object, Mapping):
        raise MalformedStripeEvent(f"Stripe event {event['id']} has no data.object")
    return StripeEvent(event_id=event["id"], event_type=event["type"], data_object=dict(data_object))


def _id(value: Any) -> str | None:
    """An id from a field that Stripe sends as an id or, when expanded, as the object itself."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _metadata_transaction_id(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get("transaction_id") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) and value else None


def plan_for(event: StripeEvent) -> Plan | None:
    """What the event means for its payment; None for event types the platform does not act on."""
    obj = event.data_object
    if event.event_type not in HANDLED_TYPES:
        return None
    if event.event_type in PAYMENT_INTENT_EVENTS:
        payment_intent_id = event.object_id
    elif event.event_type == CHARGE_REFUNDED:
        payment_intent_id = _id(obj.get("payment_intent"))
    else:  # a dispute: its own payment_intent, else the (expanded) charge's
        charge = obj.get("charge")
        payment_intent_id = _id(obj.get("payment_intent")) or (
            _id(charge.get("payment_intent")) if isinstance(charge, Mapping) else None)
    common = {
        "stripe_event_id": event.event_id,
        "stripe_event_type": event.event_type,
        "payment_intent_id": payment_intent_id,
        "stripe_object": json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str),
    }
    if event.event_type in PAYMENT_INTENT_EVENTS:
        detail = {**common, "stripe_status": obj.get("status")}
        if event.event_type == "payment_intent.amount_capturable_updated":
            detail |= {"stripe_status": "requires_capture", "amount_capturable": obj.get("amount_capturable")}
        elif event.event_type == "payment_intent.canceled":
            detail["cancellation_reason"] = obj.get("cancellation_reason")
        elif event.event_type == "payment_intent.payment_failed":
            error = obj.get("last_payment_error") if isinstance(obj.get("last_payment_error"), Mapping) else {}
            detail |= {
                "retryable": failure_is_retryable(error_type=error.get("type"), code=error.get("code"),
                                                  decline_code=error.get("decline_code")),
                "failure_code": error.get("decline_code") or error.get("code") or "payment_failed",
                "failure_message": error.get("message") or "the payment failed at Stripe",
            }
        steps = [(PAYMENT_INTENT_EVENTS[event.event_type], detail)]
    elif event.event_type == CHARGE_REFUNDED:
        amount_refunded = obj.get("amount_refunded")
        if not isinstance(amount_refunded, int) or isinstance(amount_refunded, bool):
            raise MalformedStripeEvent(f"{event.event_type} {event.event_id} has no integer charge amount_refunded")
        steps = [("payment.refunded", {**common, "charge_id": event.object_id, "amount_refunded": amount_refunded})]
        if obj.get("paid", True) and obj.get("status", "succeeded") == "succeeded":
            steps.insert(0, _implied_success(common))
    else:
        disputed = {**common, "charge_id": _id(obj.get("charge")), "dispute_id": event.object_id,
                    "dispute_reason": obj.get("reason"), "dispute_amount": obj.get("amount")}
        steps = [_implied_success(common), ("payment.disputed", disputed)]
        if event.event_type == DISPUTE_CLOSED:
            steps.append(("payment.dispute_closed", {**common, "dispute_id": event.object_id,
                                                      "dispute_status": obj.get("status") or "closed"}))
    return Plan(steps=steps, payment_intent_id=payment_intent_id, transaction_id=_metadata_transaction_id(obj))


def _implied_success(common: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A refund or a dispute means the charge succeeded: when `payment_intent.succeeded` is late, record
    the success first (a no-op once it is known), so the refund or dispute is not lost to delivery order."""
    return "payment.succeeded", {**common, "stripe_status": "succeeded", "implied_by": common["stripe_event_type"]}


class StripeEventProcessor:
    def __init__(self, store: EventStore, outcomes: WebhookOutcomes, alerts: Alerts, *,
                 unmatched_retry_receives: int = DEFAULT_UNMATCHED_RETRY_RECEIVES):
        self._store = store
        self._outcomes = outcomes
        self._alerts = alerts
        self._unmatched_retry_receives = unmatched_retry_receives

    def process(self, event: StripeEvent, *, receive_count: int) -> Outcome:
        """Apply one Stripe event on its own (a batch of one). Raises what failed it: PaymentNotYetKnown to
        have it delivered again, MalformedStripeEvent, a store error."""
        result = self.process_batch([Delivery("", event, receive_count)])[""]
        if isinstance(result, Exception):
            raise result
        return result

    def process_batch(self, deliveries: Sequence[Delivery]) -> dict[str, Outcome | Exception]:
        """Apply a batch of Stripe events (module docstring, "Per batch"); by message id, each delivery's
        Outcome, or the exception that failed it (PaymentNotYetKnown: deliver it again soon)."""
        results: dict[str, Outcome | Exception] = {}
        plans: dict[str, Plan | None] = {}
        for delivery in deliveries:
            try:
                plans[delivery.message_id] = plan_for(delivery.event)
            except MalformedStripeEvent as exc:
                results[delivery.message_id] = exc
        planned = [delivery for delivery in deliveries if delivery.message_id in plans]
        try:
            links = self._store.find_transaction_ids(
                {plan.payment_intent_id for plan in plans.values()
                 if plan is not None and plan.transaction_id is None and plan.payment_intent_id})
            projections = self._store.get_projections(
                {transaction_id for plan in plans.values() if plan is not None
                 and (transaction_id := plan.transaction_id or links.get(plan.payment_intent_id))})
        except Exception as exc:  # noqa: BLE001 - the reads failed: every delivery that needed them fails
            for delivery in planned:
                if plans[delivery.message_id] is not None:
                    results[delivery.message_id] = exc
            links, projections = {}, {}
        done: list[tuple[Delivery, Outcome, dict[str, Any] | None]] = []  # with the alert to raise, if unmatched
        for delivery in planned:
            if delivery.message_id in results:
                continue
            plan = plans[delivery.message_id]
            if plan is None:
                event = delivery.event
                done.append((delivery, Outcome(IGNORED, event.event_id, event.event_type,
                                               f"{event.event_type} does not change a payment"), None))
                continue
            try:
                done.append((delivery, *self._apply(delivery, plan, links, projections)))
            except Exception as exc:  # noqa: BLE001 - this delivery fails alone; SQS delivers it again
                results[delivery.message_id] = exc
        # One outcome per Stripe event (the last: a second delivery of one event in the batch found the first's work).
        latest = {outcome.stripe_event_id: outcome for _, outcome, _ in done}
        try:
            unrecorded = self._outcomes.record_all(list(latest.values())) if latest else {}
        except Exception as exc:  # noqa: BLE001 - nothing recorded: every outcome's delivery fails
            unrecorded = {event_id: exc for event_id in latest}
        for delivery, outcome, alert in done:
            if outcome.stripe_event_id in unrecorded:
                results[delivery.message_id] = unrecorded[outcome.stripe_event_id]
                continue
            results[delivery.message_id] = outcome
            if alert is not None:
                try:
                    self._alerts.publish(f"paystream: unmatched Stripe event {outcome.stripe_event_type}", alert)
                except Exception as exc:  # noqa: BLE001 - delivered again: recorded again, alerted again
                    results[delivery.message_id] = exc
        return results

    def _apply(self, delivery: Delivery, plan: Plan, links: dict[str, str],
               projections: dict[str, Projection]) -> tuple[Outcome, dict[str, Any] | None]:
        """Apply one delivery against `projections` (the batch's, updated here); its outcome, and the
        ops alert to raise once it is recorded (unmatched), if any."""
        event = delivery.event
        transaction_id = plan.transaction_id or (links.get(plan.payment_intent_id) if plan.payment_intent_id else None)
        projection = projections.get(transaction_id) if transaction_id else None
        if projection is None:
            return self._unmatched(event, plan, transaction_id, delivery.receive_count)
        if projection.payment_intent_id and plan.payment_intent_id not in (None, projection.payment_intent_id):
            # Retrying cannot help: the payment is known and charged through another PaymentIntent.
            return self._unmatched(event, plan, transaction_id, delivery.receive_count, reason=(
                f"PaymentIntent {plan.payment_intent_id} is not payment {transaction_id}'s "
                f"({projection.payment_intent_id})"))
        before, appended, reasons = projection, [], []
        try:
            for event_type, detail in plan.steps:
                if event_type == PAYMENT_FAILED:
                    detail = {**detail, "attempt": projection.attempt}
                reasons.append(f"{event_type}: {decide(projection, event_type, detail).reason}")
                last_sequence = projection.last_sequence
                projection = append_event(self._store, projection, event_type, detail, source=PAYMENTS_SOURCE)
                if projection.last_sequence > last_sequence:
                    appended.append(event_type)
        finally:
            # What later deliveries of this payment in the batch start from (even after a failed step: a stale
            # projection only costs them a conflict and a re-read).
            projections[projection.transaction_id] = projection
        status = APPLIED if projection.last_sequence > before.last_sequence else NO_CHANGE
        return Outcome(status, event.event_id, event.event_type, "; ".join(reasons),
                       transaction_id=projection.transaction_id, payment_status=projection.status.value,
                       appended=appended), None

    def _unmatched(self, event: StripeEvent, plan: Plan, transaction_id: str | None, receive_count: int,
                   reason: str | None = None) -> tuple[Outcome, dict[str, Any]]:
        """No payment of ours matches. `reason` given: definitive, no retry; else retried up to the threshold."""
        if reason is None:
            if transaction_id:
                reason = f"metadata.transaction_id {transaction_id} names no payment"
            elif plan.payment_intent_id:
                reason = f"no payment is linked to PaymentIntent {plan.payment_intent_id}"
            else:
                reason = f"{event.event_type} names no PaymentIntent and carries no metadata.transaction_id"
            if receive_count < self._unmatched_retry_receives:
                raise PaymentNotYetKnown(
                    f"{reason} (yet): delivery {receive_count} of {self._unmatched_retry_receives}")
        outcome = Outcome(UNMATCHED, event.event_id, event.event_type, reason, transaction_id=transaction_id)
        return outcome, {
            "alert": "unmatched_stripe_event",
            "stripe_event_id": event.event_id,
            "stripe_event_type": event.event_type,
            "object_id": event.object_id,
            "payment_intent_id": plan.payment_intent_id,
            "transaction_id": transaction_id,
            "reason": reason,
        }
