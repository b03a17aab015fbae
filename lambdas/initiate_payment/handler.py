"""POST /payments — idempotent payment initiation (DESIGN.md §2).

Thin: checks the HTTP request, then runs the payment service under Powertools idempotency keyed by
the caller's API key and the Idempotency-Key header, with the request as the payload to validate.
"""

from __future__ import annotations

import functools

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from paystream.adapters.breaker_store import DynamoDBBreakerStore
from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.messaging import OpsAlerts, SqsParker
from paystream.api import ApiError, caller_identity, idempotency_key, parse_json_body
from paystream.breaker import CircuitBreaker
from paystream.config import Settings
from paystream.models import PaymentRequest
from paystream.payments import PaymentService, transaction_id_for
from paystream.store import EventStore

logger = Logger()
app = APIGatewayRestResolver()
settings = Settings.from_env(require=("idempotency_table", "stripe_api_key_secret_id", "parked_queue_url"))
IDEMPOTENCY_EXPIRY_SECONDS = 24 * 3600


def _mark_replayed(response: dict, data_record) -> dict:
    return {**response, "replayed": True}


idempotency_config = IdempotencyConfig(
    event_key_jmespath="[caller, idempotency_key]",
    payload_validation_jmespath="request",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=IDEMPOTENCY_EXPIRY_SECONDS,
    response_hook=_mark_replayed,
)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)


@functools.cache
def service() -> PaymentService:
    """Built on first use; the Stripe client (a heavy import) only when a payment reaches Stripe."""
    alerts = OpsAlerts(boto3.client("sns"), settings.ops_alerts_topic_arn)
    breaker = CircuitBreaker(
        "stripe",
        DynamoDBBreakerStore(boto3.resource("dynamodb").Table(settings.transactions_table)),
        failure_threshold=settings.breaker_failure_threshold,
        window_seconds=settings.breaker_window_seconds,
        cooldown_seconds=settings.breaker_cooldown_seconds,
        closed_cache_seconds=settings.breaker_closed_cache_seconds,
        on_transition=alerts.breaker_transition,
    )
    return PaymentService(
        store=EventStore(DynamoDBTransactionsTable(boto3.client("dynamodb"), settings.transactions_table)),
        gateway=LazyStripeGateway(),
        breaker=breaker,
        parker=SqsParker(boto3.client("sqs"), settings.parked_queue_url),
    )


class LazyStripeGateway:
    """Builds the Stripe gateway (importing stripe, reading the key) the first time it is called."""

    def __getattr__(self, name):
        return getattr(_stripe_gateway(), name)


@functools.cache
def _stripe_gateway():
    from paystream.adapters.stripe_gateway import StripeGateway

    return StripeGateway(
        settings.stripe_api_key(),
        api_base=settings.stripe_api_base,
        connect_timeout=settings.stripe_connect_timeout_seconds,
        read_timeout=settings.stripe_read_timeout_seconds,
    )


@idempotent_function(data_keyword_argument="command", persistence_store=persistence, config=idempotency_config)
def initiate(command: dict) -> dict:
    result = service().initiate(command["transaction_id"], PaymentRequest.model_validate(command["request"]))
    return {"status_code": result.status_code, "body": result.body}


def _json(status_code: int, body: dict, headers: dict | None = None) -> Response:
    return Response(status_code, content_types.APPLICATION_JSON, body, headers=headers)


@app.post("/payments")
def create_payment() -> Response:
    event = app.current_event
    try:
        key = idempotency_key(event.headers)
        request = parse_json_body(PaymentRequest, event.decoded_body, event.headers)
    except ApiError as error:
        return _json(error.status_code, error.body())
    caller = caller_identity(event.request_context.raw_event)
    transaction_id = transaction_id_for(caller, key)
    logger.append_keys(transaction_id=transaction_id)
    try:
        outcome = initiate(command={
            "caller": caller,
            "idempotency_key": key,
            "transaction_id": transaction_id,
            "request": request.model_dump(mode="json", exclude_none=True),
        })
    except IdempotencyAlreadyInProgressError:
        return _json(409, {"error": "request_in_progress",
                           "message": "a request with this Idempotency-Key is still being processed: retry shortly"})
    except IdempotencyValidationError:
        return _json(422, {"error": "idempotency_key_reused",
                           "message": "this Idempotency-Key was used with a different request body: use a new key"})
    if outcome.get("replayed"):
        # DESIGN.md §2: the same key and body again answer 200 with the original response body.
        logger.info("payment request replayed", extra={"status": outcome["body"]["status"]})
        return _json(200, outcome["body"], {"Idempotent-Replayed": "true"})
    logger.info("payment initiated", extra={"status": outcome["body"]["status"]})
    return _json(outcome["status_code"], outcome["body"])


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def handler(event, context):
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
