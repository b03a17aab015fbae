"""Customer notifications: one message per payment outcome on the `payment-notifications` topic.

The bus rule `notifications` sends `payment.succeeded`, `payment.failed`, `payment.refunded` and
`payment.disputed` here. Each becomes one JSON notification with SNS message attributes
`event_type`, `customer_id` and `currency`, so subscribers filter without reading bodies. The message
carries what a customer-facing system needs (amounts, status, failure reason, refund total, dispute
reason) and never the raw Stripe payloads the events keep.

- A `payment.failed` that will be retried (`retryable: true` and not `final`) is not news for the
  customer yet: the payment may still succeed a few seconds later. It is skipped; the retry's
  success, or the final failure (`retryable: false`, `final: true`), is what gets notified.
- Disputes also go to `ops-alerts` (someone must gather evidence before Stripe's deadline).

Delivery is at least once on the bus and on SQS, so each (event, topic) pair is published once: the
consumer runs `publish` under an idempotency record keyed by `Delivery.idempotency_key`.
Pure logic over an injected publisher port: no AWS call of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

NOTIFIED_EVENT_TYPES = frozenset({"payment.succeeded", "payment.failed", "payment.refunded", "payment.disputed"})
SOURCES = frozenset({"paystream.payments"})
REQUIRED_DETAIL = ("transaction_id", "event_id", "amount", "currency", "customer_id", "occurred_at")

# Per event type, the detail fields worth telling (the rest is raw provider data or bookkeeping).
STATUS_FIELDS: dict[str, tuple[str, ...]] = {
    "payment.succeeded": ("payment_intent_id", "attempt"),
    "payment.failed": ("payment_intent_id", "failure_code", "failure_message", "attempt", "final"),
    "payment.refunded": ("payment_intent_id", "amount_refunded", "refund_id", "refund_amount", "reason"),
    "payment.disputed": ("payment_intent_id", "dispute_id", "dispute_reason", "dispute_amount"),
}

NOTIFICATIONS_TOPIC = "payment-notifications"
OPS_ALERTS_TOPIC = "ops-alerts"


class InvalidNotificationMessage(ValueError):
    """The message is not a payment event this consumer notifies about: it can never be processed."""


class TopicPublisher(Protocol):
    def publish(self, topic_arn: str, message: str, attributes: Mapping[str, str], subject: str | None = None) -> str:
        """Publish one message with String attributes; returns the message id."""


@dataclass(frozen=True)
class Delivery:
    topic: str  # NOTIFICATIONS_TOPIC or OPS_ALERTS_TOPIC
    event_id: str
    message: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)
    subject: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.event_id}:{self.topic}"


def _status(event_type: str, detail: Mapping[str, Any]) -> str:
    if event_type == "payment.refunded":
        refunded = detail.get("amount_refunded")
        return "partially_refunded" if refunded is not None and int(refunded) < int(detail["amount"]) else "refunded"
    return event_type.removeprefix("payment.")


def parse_bus_event(event: Any) -> tuple[str, dict[str, Any]]:
    """(event type, detail) of an EventBridge payment event, or InvalidNotificationMessage."""
    if not isinstance(event, Mapping):
        raise InvalidNotificationMessage(f"expected an EventBridge event object, got {type(event).__name__}")
    event_type, source, detail = event.get("detail-type"), event.get("source"), event.get("detail")
    if source not in SOURCES:
        raise InvalidNotificationMessage(f"unexpected source {source!r}: notifications come from {sorted(SOURCES)}")
    if event_type not in NOTIFIED_EVENT_TYPES:
        raise InvalidNotificationMessage(f"{event_type!r} is not notified (only {sorted(NOTIFIED_EVENT_TYPES)})")
    if not isinstance(detail, Mapping):
        raise InvalidNotificationMessage("the event has no detail object")
    missing = [name for name in REQUIRED_DETAIL if detail.get(name) in (None, "")]
    if missing:
        raise InvalidNotificationMessage(f"{event_type} detail lacks {missing}")
    return event_type, dict(detail)


def will_be_retried(event_type: str, detail: Mapping[str, Any]) -> bool:
    return event_type == "payment.failed" and detail.get("retryable") is True and not detail.get("final")


def notification(event_type: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """The customer-facing message body: common fields, status, and the fields this outcome has."""
    message: dict[str, Any] = {
        "notification_id": detail["event_id"],
        "event_type": event_type,
        "status": _status(event_type, detail),
        "transaction_id": detail["transaction_id"],
        "amount": int(detail["amount"]),
        "currency": str(detail["currency"]),
        "customer_id": str(detail["customer_id"]),
        "occurred_at": detail["occurred_at"],
    }
    for name in STATUS_FIELDS[event_type]:
        if detail.get(name) is not None:
            message[name] = detail[name]
    return message


class NotificationService:
    def __init__(self, publisher: TopicPublisher, *, notifications_topic_arn: str | None,
                 ops_alerts_topic_arn: str | None):
        if not notifications_topic_arn:
            raise ValueError("notifications_topic_arn is required: notifications must go somewhere")
        self._publisher = publisher
        self._topics = {NOTIFICATIONS_TOPIC: notifications_topic_arn, OPS_ALERTS_TOPIC: ops_alerts_topic_arn}

    def deliveries(self, bus_event: Any) -> list[Delivery]:
        """What to publish for one bus event: nothing, one notification, or (disputes) also an ops alert."""
        event_type, detail = parse_bus_event(bus_event)
        if will_be_retried(event_type, detail):
            return []
        message = notification(event_type, detail)
        attributes = {"event_type": event_type, "customer_id": message["customer_id"], "currency": message["currency"]}
        result = [Delivery(NOTIFICATIONS_TOPIC, detail["event_id"], message, attributes)]
        if event_type == "payment.disputed" and self._topics[OPS_ALERTS_TOPIC]:
            result.append(Delivery(
                OPS_ALERTS_TOPIC, detail["event_id"], {"alert": "payment_disputed", **message}, attributes,
                subject=f"paystream: payment {detail['transaction_id']} disputed",
            ))
        return result

    def publish(self, delivery: Delivery) -> str:
        return self._publisher.publish(self._topics[delivery.topic], json.dumps(delivery.message, sort_keys=True),
                                       delivery.attributes, delivery.subject)
