"""Stripe webhooks processed through the local stack: localstripe's own, and ones signed and sent by hand.

Path under test: POST /webhooks/stripe → inbox item → outbox relay → bus rule `stripe-events` →
queue `process-payment` → lambdas/process_payment → the payment's events and projection, with each
webhook's outcome noted on its inbox item (`processing_status`).
"""

from __future__ import annotations

import json
import random
import time
import urllib.request
import uuid

import pytest
import stripe

from .test_payments_api import call, eventually, payment, payment_event_types

pytestmark = pytest.mark.e2e


@pytest.fixture()
def card_4242(stripe_client) -> str:
    return stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    ).id


def send_webhook(outputs: dict, event_type: str, data_object: dict, event_id: str | None = None) -> str:
    """Sign a Stripe event with the stack's webhook secret and POST it; the event id."""
    event_id = event_id or f"evt_e2e_{uuid.uuid4().hex[:16]}"
    body = json.dumps({"id": event_id, "object": "event", "api_version": "2024-06-20", "created": int(time.time()),
                       "livemode": False, "type": event_type, "data": {"object": data_object}})
    header = stripe.WebhookSignature.generate_signature_header(body, outputs["webhook_secret"])
    request = urllib.request.Request(f"{outputs['api_url']}/webhooks/stripe", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Stripe-Signature": header})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.read()
    return event_id


def inbox_item(outputs: dict, aws_client, event_id: str) -> dict | None:
    item = aws_client("dynamodb").get_item(
        TableName=outputs["table_names"]["transactions"], ConsistentRead=True,
        Key={"pk": {"S": f"STRIPE_EVENT#{event_id}"}, "sk": {"S": "INBOX"}}).get("Item")
    return None if item is None else {k: next(iter(v.values())) for k, v in item.items()}


def processed(outputs: dict, aws_client, event_id: str, timeout: float = 60.0) -> dict:
    """The inbox item once process_payment has noted its outcome."""
    def done():
        item = inbox_item(outputs, aws_client, event_id)
        return item if item and item.get("processing_status") else None
    return eventually(done, f"processing of webhook {event_id}", timeout=timeout)


def projection_item(outputs: dict, aws_client, transaction_id: str) -> dict:
    item = aws_client("dynamodb").get_item(
        TableName=outputs["table_names"]["transactions"], ConsistentRead=True,
        Key={"pk": {"S": f"TXN#{transaction_id}"}, "sk": {"S": "PROJECTION"}})["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def get_payment(outputs: dict, transaction_id: str) -> dict:
    status, body, _ = call(outputs, "GET", f"/payments/{transaction_id}")
    assert status == 200, body
    return body


def localstripe_webhook_for(stripe_client, payment_intent_id: str, event_type: str) -> str | None:
    # Filtered and paged: the session's load and chaos tests leave thousands of events at localstripe.
    events = stripe_client.v1.events.list(params={"type": event_type, "limit": 100})
    for event in events.auto_paging_iter():
        if event.data.object.id == payment_intent_id:
            return event.id
    return None


def test_a_card_payment_its_replayed_webhooks_refund_and_dispute(outputs, aws_client, stripe_client, card_4242):
    status, body, _ = call(outputs, "POST", "/payments", payment(card_4242, amount=4200),
                           {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201 and body["status"] == "succeeded", body
    transaction_id, payment_intent_id = body["transaction_id"], body["payment_intent_id"]

    # localstripe's own payment_intent.succeeded webhook is stored and processed: the synchronous answer
    # already recorded the success, so it appends nothing.
    stripe_event_id = eventually(lambda: localstripe_webhook_for(stripe_client, payment_intent_id,
                                                                 "payment_intent.succeeded"),
                                 "localstripe's payment_intent.succeeded event")
    item = processed(outputs, aws_client, stripe_event_id)
    assert (item["processing_status"], item["transaction_id"]) == ("no_change", transaction_id)

    # The success webhooks sent again by hand, three times each, shuffled, with distinct event ids.
    intent = stripe_client.v1.payment_intents.retrieve(payment_intent_id).to_dict(recursive=True)
    replays = [(event_type, {**intent, "status": status}) for event_type, status in
               [("payment_intent.processing", "processing"), ("payment_intent.succeeded", "succeeded")] * 3]
    random.Random(4).shuffle(replays)
    for event_id in [send_webhook(outputs, event_type, obj) for event_type, obj in replays]:
        assert processed(outputs, aws_client, event_id)["processing_status"] == "no_change"
    got = get_payment(outputs, transaction_id)
    assert got["status"] == "succeeded"
    assert payment_event_types(got) == ["payment.created", "payment.succeeded"]

    # A full refund, then a dispute opened and closed, each for the payment's PaymentIntent.
    charge = {"id": f"ch_e2e_{uuid.uuid4().hex[:12]}", "object": "charge", "amount": 4200, "amount_refunded": 4200,
              "currency": "usd", "paid": True, "status": "succeeded", "refunded": True,
              "payment_intent": payment_intent_id, "metadata": {}}
    refund_event = send_webhook(outputs, "charge.refunded", charge)
    assert processed(outputs, aws_client, refund_event)["processing_status"] == "applied"
    assert get_payment(outputs, transaction_id)["status"] == "refunded"

    dispute = {"id": f"dp_e2e_{uuid.uuid4().hex[:12]}", "object": "dispute", "amount": 4200, "currency": "usd",
               "charge": charge["id"], "payment_intent": payment_intent_id, "reason": "fraudulent",
               "status": "needs_response"}
    created = send_webhook(outputs, "charge.dispute.created", dispute)
    assert processed(outputs, aws_client, created)["processing_status"] == "applied"
    closed = send_webhook(outputs, "charge.dispute.closed", {**dispute, "status": "lost"})
    assert processed(outputs, aws_client, closed)["processing_status"] == "applied"

    got = get_payment(outputs, transaction_id)
    assert got["status"] == "disputed" and got["amount_refunded"] == 4200
    assert payment_event_types(got) == [
        "payment.created", "payment.succeeded", "payment.refunded", "payment.disputed", "payment.dispute_closed"]
    assert projection_item(outputs, aws_client, transaction_id)["dispute_status"] == "lost"
    assert got["based_on_event_id"] == got["events"][-1]["id"]


def test_a_webhook_for_an_unknown_payment_intent_is_recorded_and_raised_on_ops_alerts(
        outputs, aws_client, subscribe_to_topic):
    sqs = aws_client("sqs")
    ops_alerts = subscribe_to_topic("ops-alerts")
    payment_intent_id = f"pi_e2e_unknown_{uuid.uuid4().hex[:12]}"
    event_id = send_webhook(outputs, "charge.refunded", {
        "id": f"ch_e2e_{uuid.uuid4().hex[:12]}", "object": "charge", "amount": 900, "amount_refunded": 900,
        "paid": True, "status": "succeeded", "payment_intent": payment_intent_id, "metadata": {}})

    def alerted() -> dict | None:
        for message in sqs.receive_message(QueueUrl=ops_alerts, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            alert = json.loads(json.loads(message["Body"])["Message"])
            if alert.get("stripe_event_id") == event_id:
                return alert
        return None

    # Delivered 3 times (1 s, then 2 s apart locally: the link it waits for might still be coming), then raised.
    alert = eventually(alerted, "the unmatched-event alert on ops-alerts", timeout=90)
    assert (alert["alert"], alert["stripe_event_type"], alert["payment_intent_id"]) == (
        "unmatched_stripe_event", "charge.refunded", payment_intent_id)
    item = processed(outputs, aws_client, event_id)
    assert item["processing_status"] == "unmatched" and payment_intent_id in item["processing_reason"]
    # Acknowledged, not dead-lettered: nothing of it in process-payment's DLQ.
    dlq = sqs.receive_message(QueueUrl=outputs["dlq_urls"]["process-payment"], MaxNumberOfMessages=10,
                              VisibilityTimeout=0).get("Messages", [])
    assert not [m for m in dlq if event_id in m["Body"]]


def test_only_relayed_webhooks_reach_the_processor_not_the_payment_events_it_appends(outputs, aws_client):
    # Only relayed webhooks (detail-type stripe.<type>) reach the processor: a payment event routed to
    # it would fail as malformed and fill its DLQ. EventBridge pattern semantics, as the data plane
    # implements them for filter criteria, applied to the rule as deployed.
    from localdev.dataplane.filters import matches_pattern

    rule = aws_client("events").describe_rule(Name="stripe-events", EventBusName=outputs["bus_name"])
    pattern = json.loads(rule["EventPattern"])
    assert matches_pattern(pattern, {"source": "paystream.stripe", "detail-type": "stripe.charge.refunded"})
    assert not matches_pattern(pattern, {"source": "paystream.stripe", "detail-type": "payment.refunded"})
    assert not matches_pattern(pattern, {"source": "paystream.payments", "detail-type": "stripe.charge.refunded"})
