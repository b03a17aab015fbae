"""POST /webhooks/stripe — verify the Stripe signature over the raw body, store the event, answer 200.

Storage first: processing happens later, from the stored event (the table's stream drives it).
"""

from __future__ import annotations

import os

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from paystream.adapters.inbox import DynamoDBWebhookInbox
from paystream.adapters.secrets import WebhookSigningSecrets
from paystream.webhooks import InvalidWebhook, WebhookIngestor

logger = Logger()
app = APIGatewayRestResolver()

ingestor = WebhookIngestor(
    secrets=WebhookSigningSecrets(os.environ["WEBHOOK_SECRETS_SECRET_ID"]),
    inbox=DynamoDBWebhookInbox(
        boto3.resource("dynamodb").Table(os.environ["TRANSACTIONS_TABLE"]),
        ttl_days=int(os.environ.get("INBOX_TTL_DAYS", "90")),
    ),
)


@app.post("/webhooks/stripe")
def receive_stripe_webhook() -> Response:
    event = app.current_event
    try:
        result = ingestor.ingest(event.decoded_body or "", event.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        logger.warning("webhook rejected", extra={"reason": exc.reason})
        return Response(400, content_types.APPLICATION_JSON, {"error": "invalid_webhook", "message": exc.reason})
    logger.info(
        "webhook stored",
        extra={"stripe_event_id": result.event_id, "stripe_event_type": result.event_type, "duplicate": result.duplicate},
    )
    return Response(200, content_types.APPLICATION_JSON, {"received": True, "duplicate": result.duplicate})


@logger.inject_lambda_context
def handler(event, context):
    return app.resolve(event, context)
