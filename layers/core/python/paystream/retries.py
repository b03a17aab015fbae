"""Retries of failed payments: a retryable `payment.failed` is charged again, with backoff, at most N times.

One failed attempt → one message (the bus rule `payment-retries` matches `payment.failed` with
`retryable: true`) → at most one Stripe call for the next attempt:

- The attempt is due `RetryPolicy.delay_before(next attempt)` after the failure it follows (base ×
  2^(n−2), capped); a message that arrives earlier raises `NotDueYet` and its consumer puts it back
  for the rest of the wait.
- The payment is charged through the Stripe circuit breaker, as `PaymentService` does: breaker open or
  Stripe unreachable raises `ProviderUnavailable` (the message comes back later; an outage does not use
  up an attempt, as it does not for a parked payment).
- No PaymentIntent yet (the first create was rate-limited): the create is repeated with the payment's
  one idempotency key and the same parameters, so if Stripe had executed it, it returns the original
  PaymentIntent. A PaymentIntent exists: it is confirmed again with a key per attempt
  (`paystream:<transaction_id>:confirm:<attempt>`), so a repeat of the same attempt is one Stripe
  operation and a new attempt is a new one.
- The answer goes through the state machine: success → `payment.succeeded` (or processing /
  requires_action, as Stripe says); a failure → `payment.failed` with `attempt` = n, still retryable
  only while n < max_attempts and Stripe says a retry can help; otherwise `retryable: false,
  final: true`, which the rule never matches again.
- A message about an attempt the payment has moved past (retried already, succeeded meanwhile, a
  duplicate delivery) is skipped without calling Stripe.

Pure logic over injected parts (event store, Stripe gateway, breaker, clock): no AWS call of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping

from paystream.models import Projection, Status
from paystream.payments import (
    INTENT_STATUS_EVENT,
    Breaker,
    ProviderUnavailable,
    append_event,
    create_payment_intent,
    stored_intent,
)
from paystream.states import PAYMENT_FAILED
from paystream.store import EventStore, PaymentNotFound


def confirm_idempotency_key(transaction_id: str, attempt: int) -> str:
    return f"paystream:{transaction_id}:confirm:{attempt}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # charge attempts in all, the first one included
    backoff_base_seconds: float = 30.0
    backoff_max_seconds: float = 900.0

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (the first charge)")

    def delay_before(self, attempt: int) -> float:
        """How long after attempt n−1 failed attempt n may start: base, 2×base, 4×base, … capped."""
        return min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(0, attempt - 2))

    def unavailable_backoff(self, receive_count: int) -> float:
        """How long a message waits while Stripe is unavailable or the breaker open, by how often it came."""
        return min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** max(0, receive_count - 1))


class InvalidRetryMessage(ValueError):
    """The message is not a retryable payment.failed bus event: it can never be processed."""


class NotDueYet(Exception):
    """The next attempt's backoff has not elapsed: try again after `wait_seconds`."""

    def __init__(self, wait_seconds: float):
        super().__init__(f"next attempt due in {wait_seconds:.1f} s")
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class FailedAttempt:
    """What a `payment.failed` bus event says about the attempt that failed."""

    transaction_id: str
    attempt: int
    failed_at: str  # the event's occurred_at (ISO 8601 UTC)
    event_id: str

    @classmethod
    def from_bus_event(cls, event: Mapping[str, Any]) -> "FailedAttempt":
        if not isinstance(event, Mapping) or event.get("detail-type") != PAYMENT_FAILED:
            raise InvalidRetryMessage(f"expected an EventBridge {PAYMENT_FAILED} event, got "
                                      f"{event.get('detail-type') if isinstance(event, Mapping) else type(event).__name__!r}")
        detail = event.get("detail")
        if not isinstance(detail, Mapping) or detail.get("retryable") is not True:
            raise InvalidRetryMessage("the failure is not retryable (detail.retryable is not true)")
        try:
            failed = cls(transaction_id=str(detail["transaction_id"]), attempt=int(detail.get("attempt") or 1),
                         failed_at=str(detail["occurred_at"]), event_id=str(detail["event_id"]))
            _epoch(failed.failed_at)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRetryMessage(f"payment.failed detail lacks or garbles {exc}") from None
        return failed


@dataclass(frozen=True)
class RetryOutcome:
    retried: bool  # False: skipped, no Stripe call
    attempt: int  # the attempt made (or that would have been made)
    status: str  # the payment's status afterwards
    reason: str


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class RetryService:
    def __init__(self, store: EventStore, gateway: Any, breaker: Breaker, policy: RetryPolicy,
                 clock: Callable[[], float] = time.time):
        self._store = store
        self._gateway = gateway
        self._breaker = breaker
        self._policy = policy
        self._clock = clock

    @property
    def policy(self) -> RetryPolicy:
        return self._policy

    def retry(self, failed: FailedAttempt) -> RetryOutcome:
        """Make attempt `failed.attempt + 1` if it is still due; see the module docstring."""
        from paystream.adapters.stripe_gateway import PaymentProviderError

        projection = self._store.get_projection(failed.transaction_id)
        if projection is None:
            raise PaymentNotFound(f"no payment {failed.transaction_id}")
        attempt = failed.attempt + 1
        stale = self._stale(projection, failed)
        if stale:
            return RetryOutcome(False, attempt, projection.status.value, stale)
        if attempt > self._policy.max_attempts:
            return RetryOutcome(False, attempt, projection.status.value,
                                f"retry budget of {self._policy.max_attempts} attempts used up")
        wait = self.wait_seconds(failed)
        if wait > 0:
            raise NotDueYet(wait)
        permit = self._breaker.allow()
        if permit is None:
            raise ProviderUnavailable("circuit breaker open")
        try:
            intent = self._charge(projection, attempt)
        except PaymentProviderError as error:
            if error.unavailable:
                self._breaker.record_failure(permit)
                raise ProviderUnavailable(error.message) from error
            self._breaker.record_success(permit)  # Stripe answered: the provider is up
            return self._record_failure(projection, attempt, error)
        self._breaker.record_success(permit)
        event_type = INTENT_STATUS_EVENT.get(intent.get("status"), "payment.processing")
        detail: dict[str, Any] = {
            "attempt": attempt,
            "payment_intent_id": intent["id"],
            "stripe_status": intent.get("status"),
            "stripe_payment_intent": stored_intent(intent),
        }
        if event_type == PAYMENT_FAILED:
            detail |= {"retryable": False, "final": True, "failure_code": "requires_payment_method",
                       "failure_message": "the payment method was not accepted"}
        projection = append_event(self._store, projection, event_type, detail)
        return RetryOutcome(True, attempt, projection.status.value, f"attempt {attempt}: Stripe answered {intent.get('status')}")

    def wait_seconds(self, failed: FailedAttempt) -> float:
        """Seconds until the attempt after `failed` is due (0 or less: due now). Needs no I/O, so a
        consumer can put an early message back before doing anything else."""
        return _epoch(failed.failed_at) + self._policy.delay_before(failed.attempt + 1) - self._clock()

    def _stale(self, projection: Projection, failed: FailedAttempt) -> str | None:
        if projection.status != Status.FAILED:
            return f"payment is {projection.status.value} now"
        if projection.attempt != failed.attempt:
            return f"attempt {failed.attempt} is not the latest failure (attempt {projection.attempt} is)"
        if not projection.retryable:
            return "the latest failure is not retryable"
        return None

    def _charge(self, projection: Projection, attempt: int) -> dict:
        if projection.payment_intent_id is None:
            return create_payment_intent(self._gateway, projection)
        return self._gateway.confirm_payment_intent(
            projection.payment_intent_id, payment_method_id=projection.payment_method_id,
            idempotency_key=confirm_idempotency_key(projection.transaction_id, attempt),
        )

    def _record_failure(self, projection: Projection, attempt: int, error) -> RetryOutcome:
        final = not error.retryable or attempt >= self._policy.max_attempts
        detail: dict[str, Any] = {
            "attempt": attempt,
            "retryable": not final,
            "final": final,
            "failure_code": error.decline_code or error.code or error.kind,
            "failure_message": error.message,
        }
        intent = error.payment_intent or {}
        if intent.get("id"):
            detail |= {"payment_intent_id": intent["id"], "stripe_status": intent.get("status"),
                       "stripe_payment_intent": stored_intent(intent)}
        projection = append_event(self._store, projection, PAYMENT_FAILED, detail)
        return RetryOutcome(True, attempt, projection.status.value,
                            f"attempt {attempt} failed ({detail['failure_code']}){'; final' if final else ''}")
