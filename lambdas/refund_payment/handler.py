"""POST /payments/{transaction_id}/refunds — idempotent full or partial refund (DESIGN.md §2).

Thin: checks the HTTP request, then runs the refund service under Powertools idempotency keyed by
the caller's API key and the Idempotency-Key header, with the payment id and body as the payload to
validate. Only a created refund (201) is stored for replay: a refusal (404, 409, 422, 503) raises
inside the idempotent function, so the same key can be retried once the payment or Stripe allows.
"""

from __future__ import annotations

import functools
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import idempotent_function

from paystream.adapters.wiring import dynamodb_client, refund_service
from paystream.api import (ApiError, body_text, caller_identity, idempotency_key, idempotency_refusals,
                           idempotent_command, parse_json_body, request_idempotency)
from paystream.config import Settings
from paystream.models import RefundRequest
from paystream.refunds import RefundRefused, RefundService, refund_request_key

logger = Logger()
# EMF metrics (namespace from POWERTOOLS_METRICS_NAMESPACE); no Tracer, as in initiate_payment.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
app = APIGatewayRestResolver()
settings = Settings.from_env(require=("idempotency_table", "stripe_api_key_secret_id"))
persistence, idempotency_config = request_idempotency(settings.idempotency_table, dynamodb_client())
# Longer ids are no transaction id of ours: answered 404 without a read.
MAX_TRANSACTION_ID_LENGTH = 64


@functools.cache
def service() -> RefundService:
    return refund_service(settings)


@idempotent_function(data_keyword_argument="command", persistence_store=persistence, config=idempotency_config)
def refund(command: dict) -> dict:
    result = service().refund(command["request"]["transaction_id"],
                              RefundRequest.model_validate(command["request"]["refund"]), command["request_key"])
    return {"status_code": result.status_code, "body": result.body}


# What each answer counts as; a dashboard adds them up per minute.
OUTCOME_METRICS = {201: "RefundsCreated", 200: "RefundsReplayed"}


def _json(status_code: int, body: dict, headers: dict | None = None) -> Response:
    metrics.add_metric(name=OUTCOME_METRICS.get(status_code, "RefundRequestsRejected"), unit=MetricUnit.Count, value=1)
    return Response(status_code, content_types.APPLICATION_JSON, body, headers=headers or None)


def _refused(error: ApiError) -> Response:
    logger.info("refund refused", extra={"status_code": error.status_code, "error": error.error})
    return _json(error.status_code, error.body(), error.headers)


@app.post("/payments/<transaction_id>/refunds")
def create_refund(transaction_id: str) -> Response:
    event = app.current_event
    logger.append_keys(transaction_id=transaction_id)
    logger.set_correlation_id(transaction_id)  # the payment's id correlates every log line
    try:
        key = idempotency_key(event.headers)
        # No body, or an empty one, is a full refund.
        request = parse_json_body(RefundRequest, body_text(event), event.headers, required=False)
        if len(transaction_id) > MAX_TRANSACTION_ID_LENGTH:
            return _refused(ApiError(404, "not_found", "no such payment"))
        caller = caller_identity(event.request_context.raw_event)
        with idempotency_refusals():
            outcome = refund(command=idempotent_command(
                caller, key,
                {"transaction_id": transaction_id, "refund": request.model_dump(mode="json", exclude_none=True)},
                request_key=refund_request_key(caller, key),
            ))
    except RefundRefused as refused:
        return _refused(refused.error)
    except ApiError as error:
        return _refused(error)
    if outcome.get("replayed"):
        # The same key and body again answer 200 with the original response body, as POST /payments does.
        return _json(200, outcome["body"], {"Idempotent-Replayed": "true"})
    logger.info("refund created", extra={"refund_id": outcome["body"]["refund_id"],
                                         "payment_status": outcome["body"]["payment_status"]})
    return _json(outcome["status_code"], outcome["body"])


@app.not_found
def no_such_payment(_error) -> Response:
    # API Gateway matched the route, but the id has characters outside Powertools' route pattern (`©`, a
    # control character, ...): no payment has such an id. Without this, Powertools' own 404 body
    # ({"statusCode", "message"}) would break the contract's error shape.
    return _refused(ApiError(404, "not_found", "no such payment"))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def handler(event, context):
    idempotency_config.register_lambda_context(context)
    return app.resolve(event, context)
