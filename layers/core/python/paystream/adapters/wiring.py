"""Builds the payment service from settings: the one place that connects the core to AWS and Stripe."""

from __future__ import annotations

import functools
from typing import Any, Callable

import boto3

from paystream.adapters.breaker_store import DynamoDBBreakerStore
from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.messaging import OpsAlerts, SqsParker
from paystream.breaker import CircuitBreaker
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
    return EventStore(DynamoDBTransactionsTable(dynamodb_client(), settings.transactions_table))


def payment_service(settings: Settings, fault_point: Callable[[str], None] | None = None) -> PaymentService:
    alerts = OpsAlerts(LazyClient("sns"), settings.ops_alerts_topic_arn)
    breaker = CircuitBreaker(
        "stripe",
        DynamoDBBreakerStore(dynamodb_client(), settings.transactions_table),
        failure_threshold=settings.breaker_failure_threshold,
        window_seconds=settings.breaker_window_seconds,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        closed_cache_seconds=settings.breaker_closed_cache_seconds,
        on_transition=alerts.breaker_transition,
    )
    return PaymentService(
        store=event_store(settings),
        gateway=LazyStripeGateway(settings),
        breaker=breaker,
        parker=SqsParker(LazyClient("sqs"), settings.parked_queue_url),
        fault_point=fault_point,
    )
