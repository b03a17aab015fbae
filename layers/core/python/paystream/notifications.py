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

Delivery is at least once on the bus and on SQS, so each (event, topic) pair is published once, a whole
SQS batch at a time (`NotificationService.deliver`), under an idempotency record per delivery keyed by
`Delivery.idempotency_key` (`notifier#<event_id>:<topic>`):
1. claim: one transaction puts every delivery's record IN_PROGRESS with a lease, on condition that there is
   none, or an expired one, or one still IN_PROGRESS whose lease has passed (a crashed attempt: taken over,
   as Powertools idempotency does). A refused claim says why: COMPLETED → already published (nothing to
   do); IN_PROGRESS within its lease → another invocation is publishing it now (fail: SQS delivers it
   again later); anything else (throttling, a conflicting transaction) → retried with backoff, then failed.
   The same key twice in one batch (the same event delivered twice) is claimed and published once.
2. publish the claimed ones, in batches per topic; a rejected entry releases its claim (deleted) and fails.
3. complete the published ones (COMPLETED, kept 7 days). A completion that fails after publishing does not
   fail the delivery (that would publish again): it is reported, the IN_PROGRESS record stays until its
   lease passes, and only a redelivery after that could publish twice — the window Powertools had
   between its publish and its UpdateItem.
Pure logic over injected ports (publisher, claims, sleep): no AWS call of its own.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

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


# Idempotency records live in the table Powertools uses for other functions: a prefix its keys
# (`<function>.<qualified name>#<hash>`) never start with.
IDEMPOTENCY_KEY_PREFIX = "notifier#"
# Redeliveries come within the queue's retention (4 days) and relay retries within minutes.
IDEMPOTENCY_EXPIRY_SECONDS = 7 * 24 * 3600
COMPLETED, IN_PROGRESS = "COMPLETED", "INPROGRESS"  # Powertools' record statuses
CLAIM_ATTEMPTS = 4  # transactions per batch at most: a refusal round, then retries of throttled/conflicting claims
CLAIM_BACKOFF_SECONDS = 0.05


@dataclass(frozen=True)
class TopicMessage:
    message: str
    attributes: Mapping[str, str]
    subject: str | None = None


class TopicPublisher(Protocol):
    def publish(self, topic_arn: str, message: str, attributes: Mapping[str, str], subject: str | None = None) -> str:
        """Publish one message with String attributes; returns the message id."""

    def publish_batch(self, topic_arn: str, messages: Sequence[TopicMessage]) -> list[str | Exception]:
        """Publish messages to one topic, as few requests as allowed; per message, in order, its id or the error."""


@dataclass(frozen=True)
class ClaimRefusal:
    """Why one claim of a transaction was refused: the record that stood in the way (its status and lease,
    when the condition failed), or another reason (throttling, a conflicting transaction, the call failed)."""
    reason: str
    status: str | None = None
    in_progress_until_ms: int | None = None


@dataclass(frozen=True)
class ClaimResult:
    claimed: frozenset[str]
    refused: Mapping[str, ClaimRefusal]  # keys in neither: their transaction was cancelled by another key


class DeliveryClaims(Protocol):
    """The idempotency records of deliveries (keys as `Delivery.idempotency_key`)."""

    def claim(self, keys: Sequence[str], *, now: float, lease_until_ms: int) -> ClaimResult:
        """Put each key IN_PROGRESS until `lease_until_ms` (epoch ms) if it has no record, an expired one or one
        IN_PROGRESS past its lease, all or nothing per transaction."""

    def complete(self, message_ids: Mapping[str, str], *, now: float) -> dict[str, Exception]:
        """Mark the keys COMPLETED (with their SNS message ids) for IDEMPOTENCY_EXPIRY_SECONDS; the errors of those not written."""

    def release(self, keys: Sequence[str]) -> dict[str, Exception]:
        """Delete the keys' records (their publish failed); the errors of those not deleted."""


@dataclass(frozen=True)
class Delivery:
    topic: str  # NOTIFICATIONS_TOPIC or OPS_ALERTS_TOPIC
    event_id: str
    message: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)
    subject: str | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{IDEMPOTENCY_KEY_PREFIX}{self.event_id}:{self.topic}"


PUBLISHED, ALREADY_PUBLISHED, BEING_PUBLISHED, FAILED = "published", "already_published", "being_published", "failed"


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one delivery key in a batch. `ok`: its record may be acknowledged (published now or
    before); otherwise the record fails and SQS delivers it again."""
    status: str  # PUBLISHED, ALREADY_PUBLISHED, BEING_PUBLISHED (another invocation holds it) or FAILED
    message_id: str | None = None
    error: str | None = None
    completion_error: str | None = None  # published, but its record was not marked COMPLETED

    @property
    def ok(self) -> bool:
        return self.status in (PUBLISHED, ALREADY_PUBLISHED)


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
    def __init__(self, publisher: TopicPublisher, claims: DeliveryClaims, *, notifications_topic_arn: str | None,
                 ops_alerts_topic_arn: str | None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        if not notifications_topic_arn:
            raise ValueError("notifications_topic_arn is required: notifications must go somewhere")
        self._publisher = publisher
        self._claims = claims
        self._topics = {NOTIFICATIONS_TOPIC: notifications_topic_arn, OPS_ALERTS_TOPIC: ops_alerts_topic_arn}
        self._clock = clock
        self._sleep = sleep

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

    def deliver(self, deliveries: Iterable[Delivery], *, lease_seconds: float) -> dict[str, DeliveryResult]:
        """Publish each delivery key once (claim, publish, complete: see the module docstring); the result
        per key. `lease_seconds`: how long a claim holds others off (the invocation's remaining time)."""
        unique: dict[str, Delivery] = {}
        for delivery in deliveries:
            unique.setdefault(delivery.idempotency_key, delivery)  # the same event twice in one batch
        now = self._clock()
        claimed, results = self._claim(list(unique), now, int((now + lease_seconds) * 1000))
        published: dict[str, str] = {}
        failed: dict[str, str] = {}
        for topic in (NOTIFICATIONS_TOPIC, OPS_ALERTS_TOPIC):
            keys = [key for key in claimed if unique[key].topic == topic]
            if not keys:
                continue
            outcomes = self._publisher.publish_batch(self._topics[topic], [_message(unique[key]) for key in keys])
            for key, outcome in zip(keys, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    failed[key] = f"publish failed: {outcome}"
                else:
                    published[key] = outcome
        if failed:
            # Released so that the redelivery publishes at once; one not released waits out its lease.
            not_released = self._claims.release(list(failed))
            for key, error in failed.items():
                release_error = not_released.get(key)
                results[key] = DeliveryResult(FAILED, error=error if release_error is None else
                                              f"{error}; claim not released ({release_error}): retried after its lease")
        not_completed = self._claims.complete(published, now=self._clock()) if published else {}
        for key, message_id in published.items():
            error = not_completed.get(key)
            results[key] = DeliveryResult(PUBLISHED, message_id=message_id,
                                          completion_error=None if error is None else str(error))
        return results

    def _claim(self, keys: list[str], now: float, lease_until_ms: int) -> tuple[list[str], dict[str, DeliveryResult]]:
        """The keys claimed, in order, and the results of those that will not be published by this batch."""
        claimed: set[str] = set()
        results: dict[str, DeliveryResult] = {}
        pending, last_reason = keys, {}
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            if not pending:
                break
            result = self._claims.claim(pending, now=now, lease_until_ms=lease_until_ms)
            claimed |= result.claimed
            retry, backoff = [], False
            for key in pending:
                if key in result.claimed:
                    continue
                refusal = result.refused.get(key)
                if refusal is None:
                    retry.append(key)  # cancelled because of another key: claimable
                elif refusal.status == COMPLETED:
                    results[key] = DeliveryResult(ALREADY_PUBLISHED)
                elif refusal.status == IN_PROGRESS:
                    results[key] = DeliveryResult(BEING_PUBLISHED, error=(
                        f"another invocation is publishing it (lease until {refusal.in_progress_until_ms} ms)"))
                else:
                    retry.append(key)
                    last_reason[key] = refusal.reason
                    backoff = True
            pending = retry
            if pending and backoff and attempt < CLAIM_ATTEMPTS:
                # Throttled or conflicting: back off, with jitter so concurrent invocations do not retry in step.
                self._sleep(random.uniform(0.5, 1.0) * CLAIM_BACKOFF_SECONDS * 2 ** (attempt - 1))
        for key in pending:
            results[key] = DeliveryResult(FAILED, error=f"not claimed: {last_reason.get(key, 'transaction cancelled')}")
        return [key for key in keys if key in claimed], results


def _message(delivery: Delivery) -> TopicMessage:
    return TopicMessage(json.dumps(delivery.message, sort_keys=True), delivery.attributes, delivery.subject)
