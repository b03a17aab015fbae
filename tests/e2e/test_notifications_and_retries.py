"""Notifications and retries of failed payments through the running stack.

A subscriber queue on `payment-notifications` (and one on `ops-alerts`) sees what a downstream
system would. The retryable failure is produced honestly: the local Stripe's rate-limit switch
makes the payment's first PaymentIntent create answer 429, so initiate_payment records a retryable
`payment.failed`; the outbox relay publishes it, the `payment-retries` rule routes it to
payment_retry, which repeats the create with the payment's idempotency key after its backoff and
records the success. The non-retryable failure is a real decline (card 4000000000000341).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from localdev.stripe_server import set_rate_limit

from .test_payments_api import call, eventually, pay, payment_event_types

pytestmark = pytest.mark.e2e

DECLINED_CARD = "4000000000000341"


class Inbox:
    """Everything an SNS-subscribed queue received, unwrapped from the SNS envelope."""

    def __init__(self, sqs, url: str):
        self.sqs, self.url, self.messages = sqs, url, []

    def poll(self) -> list[dict]:
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return self.messages
            for m in batch:
                envelope = json.loads(m["Body"])
                self.messages.append({
                    "body": json.loads(envelope["Message"]),
                    "attributes": {k: v["Value"] for k, v in (envelope.get("MessageAttributes") or {}).items()},
                    "subject": envelope.get("Subject"),
                })
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def about(self, transaction_id: str) -> list[dict]:
        return [m for m in self.poll() if m["body"].get("transaction_id") == transaction_id]


class RulePeek:
    """A test-only rule on the bus with the same pattern as a deployed rule, delivering to a test queue:
    what the deployed rule matches, observed without touching its consumer."""

    def __init__(self, events, sqs, bus: str, pattern: str, name: str):
        self.events, self.sqs, self.bus, self.name = events, sqs, bus, name
        self.url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventBusName=bus, EventPattern=pattern)
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "peek", "Arn": arn}])
        self.seen: list[dict] = []

    def transaction_ids(self) -> list[str]:
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return [e["detail"]["transaction_id"] for e in self.seen]
            for m in batch:
                self.seen.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def remove(self) -> None:
        self.events.remove_targets(Rule=self.name, EventBusName=self.bus, Ids=["peek"])
        self.events.delete_rule(Name=self.name, EventBusName=self.bus)
        self.sqs.delete_queue(QueueUrl=self.url)


@pytest.fixture(scope="module")
def notifications(subscribe_to_topic, aws_client) -> Inbox:
    return Inbox(aws_client("sqs"), subscribe_to_topic("payment-notifications"))


@pytest.fixture(scope="module")
def ops_alerts(subscribe_to_topic, aws_client) -> Inbox:
    return Inbox(aws_client("sqs"), subscribe_to_topic("ops-alerts"))


@pytest.fixture(scope="module")
def rules(outputs, aws_client):
    """Peeks at the deployed `payment-retries` rule and at every payment.failed on the bus."""
    events, sqs, bus = aws_client("events"), aws_client("sqs"), outputs["bus_name"]
    retry_pattern = events.describe_rule(Name="payment-retries", EventBusName=bus)["EventPattern"]
    suffix = uuid.uuid4().hex[:8]
    retries = RulePeek(events, sqs, bus, retry_pattern, f"e2e-retry-pattern-{suffix}")
    failures = RulePeek(events, sqs, bus, json.dumps({"detail-type": ["payment.failed"]}), f"e2e-all-failures-{suffix}")
    yield retries, failures
    retries.remove()
    failures.remove()


def card(stripe_client, number: str) -> str:
    return stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id


def stored_events(outputs, aws_client, transaction_id: str) -> list[dict]:
    items = aws_client("dynamodb").query(
        TableName=outputs["table_names"]["transactions"], KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}}, ConsistentRead=True,
    )["Items"]
    return items


def settled(outputs, aws_client, transaction_id: str) -> bool:
    """Every event of the payment is on the bus and the notifier has nothing left to do: whatever it was
    going to publish about this payment has been published."""
    if not all("relayed_at" in item for item in stored_events(outputs, aws_client, transaction_id)):
        return False
    attributes = aws_client("sqs").get_queue_attributes(
        QueueUrl=outputs["queue_urls"]["notifications"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_payment_that_succeeds_is_notified_once_with_filterable_attributes(outputs, aws_client, stripe_client,
                                                                          notifications):
    body = pay(outputs, card(stripe_client, "4242424242424242"), customer_id="cus_notify", currency="EUR")
    tid = body["transaction_id"]
    assert body["status"] == "succeeded"
    eventually(lambda: notifications.about(tid), "the success notification", timeout=60)
    eventually(lambda: settled(outputs, aws_client, tid), "the payment's events to be relayed and notified", timeout=60)
    [note] = notifications.about(tid)
    assert note["attributes"] == {"event_type": "payment.succeeded", "customer_id": "cus_notify", "currency": "eur"}
    assert note["body"]["status"] == "succeeded" and note["body"]["amount"] == 4200
    assert note["body"]["payment_intent_id"] == body["payment_intent_id"]
    assert not any(key.startswith("stripe_") for key in note["body"])  # no raw provider payloads


def test_a_declined_payment_is_never_retried_and_its_failure_is_notified(outputs, aws_client, stripe_client,
                                                                       notifications, rules):
    retries, failures = rules
    body = pay(outputs, card(stripe_client, DECLINED_CARD))
    tid = body["transaction_id"]
    assert body["status"] == "failed"
    [note] = eventually(lambda: notifications.about(tid), "the failure notification", timeout=60)
    assert note["attributes"]["event_type"] == "payment.failed" and note["body"]["failure_code"]
    # The failure is on the bus (every rule matching it was delivered in the same PutEvents), and the
    # deployed retry rule's pattern did not match it.
    eventually(lambda: tid in failures.transaction_ids(), "the payment.failed on the bus", timeout=60)
    assert tid not in retries.transaction_ids()
    eventually(lambda: settled(outputs, aws_client, tid), "the payment to settle", timeout=60)
    status, got, _ = call(outputs, "GET", f"/payments/{tid}")
    assert got["status"] == "failed"
    assert payment_event_types(got) == ["payment.created", "payment.failed"]
    assert len(notifications.about(tid)) == 1


def test_a_retryable_failure_is_retried_with_the_same_idempotency_key_and_succeeds(outputs, aws_client, stripe_client,
                                                                                 notifications, rules):
    retries, _ = rules
    method = card(stripe_client, "4242424242424242")
    set_rate_limit(outputs["stripe_api_base"], 1, "/v1/payment_intents")
    try:
        body = pay(outputs, method)
    finally:
        set_rate_limit(outputs["stripe_api_base"], 0)
    tid = body["transaction_id"]
    assert (body["status"], body["payment_intent_id"]) == ("failed", None)  # rate-limited: no PaymentIntent yet
    eventually(lambda: tid in retries.transaction_ids(), "the retry rule to match the retryable failure", timeout=60)

    def succeeded():
        got = call(outputs, "GET", f"/payments/{tid}")[1]
        return got if got["status"] == "succeeded" else None

    got = eventually(succeeded, "the retry to succeed", timeout=90)
    assert payment_event_types(got) == ["payment.created", "payment.failed", "payment.succeeded"]
    success = next(i for i in stored_events(outputs, aws_client, tid) if i["event_type"]["S"] == "payment.succeeded")
    assert success["detail"]["M"]["attempt"]["N"] == "2"
    # One PaymentIntent for the payment: the retry's create carried the payment's idempotency key.
    intents = [pi for pi in stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if pi.metadata.to_dict().get("transaction_id") == tid]
    assert [pi.id for pi in intents] == [got["payment_intent_id"]]
    # The retried failure was not news for the customer; the success is, once.
    eventually(lambda: notifications.about(tid), "the success notification", timeout=60)
    eventually(lambda: settled(outputs, aws_client, tid), "the payment to settle", timeout=60)
    assert [n["attributes"]["event_type"] for n in notifications.about(tid)] == ["payment.succeeded"]


def test_a_dispute_is_notified_and_raised_on_ops_alerts(outputs, aws_client, stripe_client, notifications, ops_alerts):
    body = pay(outputs, card(stripe_client, "4242424242424242"))
    tid, intent_id = body["transaction_id"], body["payment_intent_id"]
    charge = stripe_client.v1.payment_intents.retrieve(intent_id).latest_charge
    charge_id = charge if isinstance(charge, str) else charge.id  # localstripe expands it
    created = int(time.time())
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": "charge.dispute.created", "created": created,
        "api_version": "2024-06-20", "livemode": False, "pending_webhooks": 1, "request": {"id": None},
        "data": {"object": {"id": f"dp_{uuid.uuid4().hex[:24]}", "object": "dispute", "amount": 4200,
                            "currency": "usd", "charge": charge_id, "payment_intent": intent_id,
                            "reason": "fraudulent", "status": "needs_response", "created": created}},
    }
    raw = json.dumps(event).encode()
    signature = _sign(raw, outputs["webhook_secret"], created)
    status, _, _ = call(outputs, "POST", "/webhooks/stripe", raw, {"Stripe-Signature": signature}, api_key=False)
    assert status == 200
    notes = eventually(lambda: [n for n in notifications.about(tid) if n["attributes"]["event_type"] == "payment.disputed"],
                       "the dispute notification", timeout=90)
    assert notes[0]["body"]["dispute_reason"] == "fraudulent"
    [alert] = eventually(lambda: ops_alerts.about(tid), "the dispute on ops-alerts", timeout=60)
    assert alert["body"]["alert"] == "payment_disputed" and alert["subject"] == f"paystream: payment {tid} disputed"


def _sign(payload: bytes, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header, as Stripe computes it (v1 = HMAC-SHA256 of "<t>.<body>")."""
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
