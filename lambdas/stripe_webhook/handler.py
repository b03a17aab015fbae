"""POST /webhooks/stripe — verify the Stripe signature over the raw body, store the event, answer 200.

Storage first: processing happens later, from the stored event (the table's stream drives it).
"""

from __future__ import annotations

import os

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit

from paystream.adapters.inbox import DynamoDBWebhookInbox
from paystream.adapters.secrets import WebhookSigningSecrets
from paystream.webhooks import InvalidWebhook, WebhookIngestor

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "paystream"))
app = APIGatewayRestResolver()

ingestor = WebhookIngestor(
    secrets=WebhookSigningSecrets(os.environ["WEBHOOK_SECRETS_SECRET_ID"]),
    inbox=DynamoDBWebhookInbox(
        boto3.resource("dynamodb").Table(os.environ["TRANSACTIONS_TABLE"]),
        ttl_days=int(os.environ.get("INBOX_TTL_DAYS", "90")),
    ),
)


def _body_text(event) -> str:
    """The raw body as text. One that is not UTF-8 arrives base64-encoded and Powertools' decoded_body raises on
    it: Stripe sends UTF-8 JSON, so it is no Stripe event (400), not a crash (502)."""
    try:
        return event.decoded_body or ""
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not UTF-8 text: not a Stripe event") from None


@app.post("/webhooks/stripe")
def receive_stripe_webhook() -> Response:
    event = app.current_event
    try:
        result = ingestor.ingest(_body_text(event), event.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        logger.warning("webhook rejected", extra={"reason": exc.reason})
        metrics.add_metric(name="WebhooksRejected", unit=MetricUnit.Count, value=1)
        return Response(400, content_types.APPLICATION_JSON, {"error": "invalid_webhook", "message": exc.reason})
    logger.info(
        "webhook stored",
        extra={"stripe_event_id": result.event_id, "stripe_event_type": result.event_type, "duplicate": result.duplicate},
    )
    metrics.add_metric(name="WebhooksDuplicate" if result.duplicate else "WebhooksStored", unit=MetricUnit.Count, value=1)
    return Response(200, content_types.APPLICATION_JSON, {"received": True, "duplicate": result.duplicate})


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event, context):
    return app.resolve(event, context)
