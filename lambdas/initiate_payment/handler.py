"""POST /payments — idempotent payment initiation (DESIGN.md §2).

Thin: checks the HTTP request, then runs the payment service, keyed by the caller's API key and the
Idempotency-Key header. Not Powertools idempotency (refunds keep it): the request's idempotency record
rides in the event store's two transactions, so a new payment costs 2 sequential AWS round trips, not 4
(docs/payments-core.md, "Idempotency"; issue 8's goal).
"""

from __future__ import annotations

import functools
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from paystream.adapters.wiring import payment_service
from paystream.api import (ApiError, body_text, caller_identity, idempotency_key, idempotency_key_reused,
                           idempotency_refusals, parse_json_body, request_in_progress)
from paystream.config import Settings
from paystream.models import PaymentRequest
from paystream.payments import PaymentService, RequestInProgress, RequestMismatch, transaction_id_for

logger = Logger()
# EMF metrics (namespace from POWERTOOLS_METRICS_NAMESPACE). No Powertools Tracer here: Lambda's
# active tracing records each invocation, and the X-Ray SDK the Tracer needs would add about 150 ms
# to this function's cold start (docs/payments-core.md, "Cold start").
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
app = APIGatewayRestResolver()
settings = Settings.from_env(require=("stripe_api_key_secret_id", "parked_queue_url"))


# Local fault drills: with FAULT_INJECTION_ENABLED, a request carrying `X-Paystream-Fault: <point>`
# makes this process die at that point of the flow (e.g. after_stripe_call), as a crash would.
FAULT_HEADER = "X-Paystream-Fault"
_requested_fault: str | None = None


def _fault_point(point: str) -> None:
    if _requested_fault == point:
        logger.warning("injected crash", extra={"fault_point": point})
        os._exit(1)


@functools.cache
def service() -> PaymentService:
    return payment_service(settings, fault_point=_fault_point if settings.fault_injection_enabled else None)


# What each answer counts as; a dashboard adds them up per minute.
OUTCOME_METRICS = {201: "PaymentsInitiated", 202: "PaymentsParked", 200: "PaymentsReplayed"}


def _json(status_code: int, body: dict, headers: dict | None = None) -> Response:
    metrics.add_metric(name=OUTCOME_METRICS.get(status_code, "PaymentRequestsRejected"), unit=MetricUnit.Count, value=1)
    return Response(status_code, content_types.APPLICATION_JSON, body, headers=headers)


@app.post("/payments")
def create_payment() -> Response:
    event = app.current_event
    try:
        key = idempotency_key(event.headers)
        request = parse_json_body(PaymentRequest, body_text(event), event.headers)
    except ApiError as error:
        return _json(error.status_code, error.body())
    global _requested_fault
    _requested_fault = event.headers.get(FAULT_HEADER) if settings.fault_injection_enabled else None
    caller = caller_identity(event.request_context.raw_event)
    transaction_id = transaction_id_for(caller, key)
    logger.append_keys(transaction_id=transaction_id)
    logger.set_correlation_id(transaction_id)  # the payment's id correlates every log line
    try:
        with idempotency_refusals():  # AWS throttling beyond the SDK's retries -> 503 with Retry-After
            try:
                outcome = service().initiate(transaction_id, request, in_progress_ms=_remaining_ms())
            except RequestInProgress:
                raise request_in_progress() from None
            except RequestMismatch:
                raise idempotency_key_reused() from None
    except ApiError as error:
        return _json(error.status_code, error.body(), error.headers or None)  # Retry-After on a 503
    if outcome.replayed:
        # DESIGN.md §2: the same key and body again answer 200 with the original response body.
        logger.info("payment request replayed", extra={"status": outcome.body["status"]})
        return _json(200, outcome.body, {"Idempotent-Replayed": "true"})
    logger.info("payment initiated", extra={"status": outcome.body["status"]})
    if outcome.body["status"] == "failed":
        metrics.add_metric(name="PaymentsFailed", unit=MetricUnit.Count, value=1)
    return _json(outcome.status_code, outcome.body)


def _remaining_ms() -> int:
    """How long this attempt can still run: Lambda stops it at its timeout, so a record still in progress
    after that belongs to a dead attempt and the same key may take it over (Powertools' rule too)."""
    context = app.lambda_context
    return context.get_remaining_time_in_millis() if context is not None else 60_000


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
