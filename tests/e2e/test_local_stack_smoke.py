"""Smoke test of the whole local platform: Stripe → signed webhook → REST API → function → DynamoDB."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
import stripe

pytestmark = pytest.mark.e2e


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def find_inbox_items(aws_client, table: str, object_id: str) -> list[dict]:
    # Every page: the session's load and chaos tests fill the table well past one Scan page.
    pages = aws_client("dynamodb").get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="object_id = :o AND item_type = :t",
        ExpressionAttributeValues={":o": {"S": object_id}, ":t": {"S": "stripe_event"}},
    )
    return [item for page in pages for item in page["Items"]]


def test_outputs_name_every_contract_endpoint(outputs):
    assert outputs["api_url"].endswith("/v1")
    assert outputs["webhook_secret"].startswith("whsec_")
    assert outputs["region"] == "us-east-1"


def test_stripe_payment_webhook_reaches_the_inbox_through_the_api(outputs, aws_client, stripe_client):
    payment_method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    intent = stripe_client.v1.payment_intents.create(
        params={"amount": 1999, "currency": "eur", "payment_method": payment_method.id, "confirm": True}
    )
    assert intent.status == "succeeded"
    table = outputs["table_names"]["transactions"]
    deadline = time.monotonic() + 30
    items: list[dict] = []
    while time.monotonic() < deadline and not items:
        items = find_inbox_items(aws_client, table, intent.id)
        if not items:
            time.sleep(0.2)
    assert items, "localstripe's payment_intent.succeeded webhook was not stored"
    stored = items[0]
    assert stored["event_type"]["S"] == "payment_intent.succeeded"
    assert json.loads(stored["payload"]["S"])["data"]["object"]["amount"] == 1999


def test_webhook_with_a_forged_signature_is_refused_and_not_stored(outputs, aws_client):
    body = json.dumps({"id": "evt_forged_e2e", "type": "payment_intent.succeeded", "created": 1,
                       "data": {"object": {"id": "pi_forged_e2e"}}})
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_not_the_secret")
    status, answer = post(f"{outputs['api_url']}/webhooks/stripe", body.encode(), {"Stripe-Signature": header})
    assert status == 400 and answer["error"] == "invalid_webhook"
    assert find_inbox_items(aws_client, outputs["table_names"]["transactions"], "pi_forged_e2e") == []


def test_duplicate_webhook_delivery_is_acknowledged_once_stored(outputs, aws_client):
    body = json.dumps({"id": "evt_dup_e2e", "type": "charge.refunded", "created": 1,
                       "data": {"object": {"id": "ch_dup_e2e"}}})
    header = stripe.WebhookSignature.generate_signature_header(body, outputs["webhook_secret"])
    first = post(f"{outputs['api_url']}/webhooks/stripe", body.encode(), {"Stripe-Signature": header})
    second = post(f"{outputs['api_url']}/webhooks/stripe", body.encode(), {"Stripe-Signature": header})
    assert first == (200, {"received": True, "duplicate": False})
    assert second == (200, {"received": True, "duplicate": True})
    assert len(find_inbox_items(aws_client, outputs["table_names"]["transactions"], "ch_dup_e2e")) == 1


def test_make_demo_follows_a_payment_through_the_running_stack(stack_state_dir):
    if stack_state_dir is None:
        pytest.fail("the demo test drives `python -m localdev demo` on the stack this session started")
    from .conftest import run_localdev

    result = run_localdev("demo", "--state-dir", str(stack_state_dir), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bringing it up" not in result.stdout  # it used the running stack
    assert "POST /payments → 201" in result.stdout and "event #1 payment.created" in result.stdout
    assert "event #2 payment.succeeded" in result.stdout
    assert "every event published to the bus by the outbox relay" in result.stdout
    assert "Stripe webhook payment_intent.succeeded" in result.stdout and "verified and stored" in result.stdout
