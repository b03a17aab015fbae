"""Builds the services from settings: the one place that connects the core to AWS and Stripe.

Each function imports only what its own service needs (cold starts): every service, the event store and the
breaker are imported inside their factories, so a function that needs neither (notifier: SNS and its
idempotency table) loads no event store and no pydantic model.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any, Callable

import boto3

from paystream.adapters.messaging import OpsAlerts, SqsParker
from paystream.breaker import OPEN, CircuitBreaker

if TYPE_CHECKING:
    from paystream.config import Settings
    from paystream.payments import PaymentService
    from paystream.store import EventStore


@functools.cache
def dynamodb_client() -> Any:
    """The process's one DynamoDB client: the event store, the breaker and the idempotency layer share it
    (each extra client or resource costs the first request tens of milliseconds)."""
    return boto3.client("dynamodb")


class LazyClient:
    """A boto3 client created on first use: for calls only some requests make (parking, alerts)."""

    def __init__(self, service_name: str):
        self._service_name = service_name

    @functools.cached_property
    def _client(self) -> Any:
        return boto3.client(self._service_name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class LazyStripeGateway:
    """The Stripe gateway, built (importing stripe, reading the key) only when first called."""

    def __init__(self, settings: Settings):
        self._settings = settings

    @functools.cached_property
    def _gateway(self) -> Any:
        from paystream.adapters import stripe_gateway

        return stripe_gateway.StripeGateway(
            self._settings.stripe_api_key(),
            api_base=self._settings.stripe_api_base,
            connect_timeout=self._settings.stripe_connect_timeout_seconds,
            read_timeout=self._settings.stripe_read_timeout_seconds,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)


def event_store(settings: Settings) -> EventStore:
    from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
    from paystream.store import EventStore

    return EventStore(DynamoDBTransactionsTable(dynamodb_client(), settings.transactions_table))


def payment_service(settings: Settings, fault_point: Callable[[str], None] | None = None) -> PaymentService:
    from paystream.payments import PaymentService

    breaker = stripe_breaker(settings)
    return PaymentService(
        store=event_store(settings),
        gateway=LazyStripeGateway(settings),
        breaker=breaker,
        parker=SqsParker(LazyClient("sqs"), settings.parked_queue_url),
        fault_point=fault_point,
        capture_method="manual" if settings.capture_mode == "risk_gated" else "automatic",
    )


# The metric the `<prefix>-stripe-breaker-open` alarm watches (terraform/modules/alarms), in the namespace
# the handlers' Powertools Metrics use, with their `service` dimension (POWERTOOLS_SERVICE_NAME).
BREAKER_OPENED_METRIC = "StripeBreakerOpened"


def metrics_namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream")


def emit_breaker_opened(old: str, new: str, reason: str) -> None:
    """Counts a transition to open (closed -> open, or a failed probe reopening it) as one EMF metric.

    Printed at once (single_metric) rather than added to the handler's metrics, which are flushed when the
    invocation returns: an invocation that times out after opening the breaker still reports it, and so does
    any caller of stripe_breaker, whatever its handler does with its own metrics.
    """
    if new != OPEN:
        return
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=BREAKER_OPENED_METRIC, unit=MetricUnit.Count, value=1, namespace=metrics_namespace()):
        pass


def stripe_breaker(settings: Settings) -> CircuitBreaker:
    """The Stripe circuit breaker every Stripe-calling function shares (its state is one DynamoDB item)."""
    from paystream.adapters.breaker_store import DynamoDBBreakerStore

    alerts = OpsAlerts(LazyClient("sns"), settings.ops_alerts_topic_arn)

    def on_transition(old: str, new: str, reason: str) -> None:
        # The metric first: an SNS failure must not cost the alarm (the breaker logs what either raises).
        try:
            emit_breaker_opened(old, new, reason)
        finally:
            alerts.breaker_transition(old, new, reason)

    return CircuitBreaker(
        "stripe",
        DynamoDBBreakerStore(dynamodb_client(), settings.transactions_table),
        failure_threshold=settings.breaker_failure_threshold,
        window_seconds=settings.breaker_window_seconds,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        closed_cache_seconds=settings.breaker_closed_cache_seconds,
        on_transition=on_transition,
    )


def refund_service(settings: Settings) -> "RefundService":
    from paystream.refunds import RefundService

    return RefundService(
        store=event_store(settings),
        gateway=LazyStripeGateway(settings),
        breaker=stripe_breaker(settings),
        retry_after_seconds=settings.breaker_cooldown_seconds,
    )


def retry_service(settings: Settings) -> "RetryService":
    from paystream.retries import RetryPolicy, RetryService

    policy = RetryPolicy(
        max_attempts=settings.payment_retry_max_attempts,
        backoff_base_seconds=settings.payment_retry_backoff_base_seconds,
        backoff_max_seconds=settings.payment_retry_backoff_max_seconds,
    )
    return RetryService(store=event_store(settings), gateway=LazyStripeGateway(settings),
                        breaker=stripe_breaker(settings), policy=policy)


def notification_service(settings: Settings) -> "NotificationService":
    """The notifier's service: SNS topics, and its exactly-once records in the idempotency table."""
    from paystream.adapters.notification_claims import DynamoDBDeliveryClaims
    from paystream.adapters.notification_topics import SnsTopicPublisher
    from paystream.notifications import NotificationService

    return NotificationService(SnsTopicPublisher(LazyClient("sns")),
                               DynamoDBDeliveryClaims(dynamodb_client(), settings.idempotency_table),
                               notifications_topic_arn=settings.notifications_topic_arn,
                               ops_alerts_topic_arn=settings.ops_alerts_topic_arn)


def stripe_event_processor(settings: Settings) -> "StripeEventProcessor":
    """The webhook processor of lambdas/process_payment: event store, inbox outcomes, ops alerts."""
    from paystream.adapters.inbox import DynamoDBWebhookOutcomes
    from paystream.processing import StripeEventProcessor

    return StripeEventProcessor(
        store=event_store(settings),
        outcomes=DynamoDBWebhookOutcomes(dynamodb_client(), settings.transactions_table),
        alerts=OpsAlerts(LazyClient("sns"), settings.ops_alerts_topic_arn),
        unmatched_retry_receives=settings.unmatched_retry_receives,
    )


def fraud_review_service(settings: Settings, thresholds: "Thresholds") -> "FraudReviewService":
    """Holds, blocks and captures by fraud score (lambdas/fraud_review, lambdas/capture_payment, scripts/review.py)."""
    from paystream.review import FraudReviewService

    return FraudReviewService(event_store(settings), LazyStripeGateway(settings), thresholds)


def fraud_profile_store(settings: Settings, config: "FraudConfig") -> "DynamoDBProfileStore":
    """The fraud scorer's risk profiles (and the payments' projections it appends fraud.scored to)."""
    from paystream.adapters.fraud_profiles import DynamoDBProfileStore

    return DynamoDBProfileStore(dynamodb_client(), settings.fraud_profiles_table, settings.transactions_table, config)
