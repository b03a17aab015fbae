"""GET /payments/{transaction_id} — the payment's projection and its event list (DESIGN.md §2)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from paystream.adapters.wiring import event_store
from paystream.config import Settings
from paystream.store import PaymentNotFound

logger = Logger()
# No Powertools Tracer: Lambda's active tracing records each invocation, and the X-Ray SDK the Tracer
# loads (it builds two botocore X-Ray clients at import) costs about 0.5 of the cold-start yardstick
# (docs/payments-core.md, "Observability and cold start").
app = APIGatewayRestResolver()
settings = Settings.from_env()
store = event_store(settings)
MAX_TRANSACTION_ID_LENGTH = 64


@app.get("/payments/<transaction_id>")
def get_payment(transaction_id: str) -> Response:
    logger.append_keys(transaction_id=transaction_id)
    logger.set_correlation_id(transaction_id)  # the payment's id correlates every log line
    if len(transaction_id) > MAX_TRANSACTION_ID_LENGTH:
        return Response(404, content_types.APPLICATION_JSON, {"error": "not_found", "message": "no such payment"})
    try:
        projection, events = store.load(transaction_id)
    except PaymentNotFound:
        return Response(404, content_types.APPLICATION_JSON,
                        {"error": "not_found", "message": f"no payment {transaction_id}"})
    return Response(200, content_types.APPLICATION_JSON, projection.to_api(events))


@app.not_found
def no_such_payment(_error) -> Response:
    # API Gateway matched the route, but the id has characters outside Powertools' route pattern (`©`, a
    # control character, ...): no payment has such an id. Without this, Powertools' own 404 body
    # ({"statusCode", "message"}) would break the contract's error shape.
    return Response(404, content_types.APPLICATION_JSON, {"error": "not_found", "message": "no such payment"})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def handler(event, context):
    return app.resolve(event, context)
