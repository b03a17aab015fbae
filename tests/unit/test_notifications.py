"""Notifications: what the core publishes per payment event, and the notifier handler end to end on
in-process moto (SQS batch → SNS topics → subscribed SQS queues), redeliveries included."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from lambda_testing import emf_metrics

from paystream.notifications import InvalidNotificationMessage, NotificationService

REGION = "us-east-1"
LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
NOTIFICATIONS_ARN = "arn:aws:sns:us-east-1:000000000000:payment-notifications"
OPS_ARN = "arn:aws:sns:us-east-1:000000000000:ops-alerts"


def bus_event(event_type: str, source: str = "paystream.payments", event_id: str = "ev-1", **detail) -> dict:
    return {
        "version": "0", "id": "bus-id", "detail-type": event_type, "source": source, "account": "000000000000",
        "time": "2026-11-22T05:00:00Z", "region": REGION, "resources": [],
        "detail": {"transaction_id": "tx-1", "event_id": event_id, "sequence": 2,
                   "occurred_at": "2026-11-22T05:00:00.123Z", "amount": 2500, "currency": "eur",
                   "customer_id": "cus_1", **detail},
    }


class RecordingPublisher:
    def __init__(self):
        self.published: list[tuple[str, dict, dict, str | None]] = []

    def publish(self, topic_arn, message, attributes, subject=None):
        self.published.append((topic_arn, json.loads(message), dict(attributes), subject))
        return f"msg-{len(self.published)}"


@pytest.fixture()
def core():
    publisher = RecordingPublisher()
    return NotificationService(publisher, notifications_topic_arn=NOTIFICATIONS_ARN, ops_alerts_topic_arn=OPS_ARN), publisher


def publish_all(service, event):
    deliveries = service.deliveries(event)
    for delivery in deliveries:
        service.publish(delivery)
    return deliveries


def test_success_is_one_notification_with_filterable_attributes_and_no_raw_stripe_data(core):
    service, publisher = core
    publish_all(service, bus_event("payment.succeeded", payment_intent_id="pi_1",
                                   stripe_payment_intent=json.dumps({"id": "pi_1", "client_secret": "x"})))
    [(topic, message, attributes, _)] = publisher.published
    assert topic == NOTIFICATIONS_ARN
    assert attributes == {"event_type": "payment.succeeded", "customer_id": "cus_1", "currency": "eur"}
    assert message == {"notification_id": "ev-1", "event_type": "payment.succeeded", "status": "succeeded",
                       "transaction_id": "tx-1", "amount": 2500, "currency": "eur", "customer_id": "cus_1",
                       "occurred_at": "2026-11-22T05:00:00.123Z", "payment_intent_id": "pi_1"}


def test_a_failure_that_will_be_retried_is_not_news_yet_but_a_final_one_is(core):
    service, publisher = core
    assert service.deliveries(bus_event("payment.failed", retryable=True, failure_code="rate_limit")) == []
    assert service.deliveries(bus_event("payment.failed", retryable=True, final=False, attempt=2)) == []
    publish_all(service, bus_event("payment.failed", retryable=False, final=True, attempt=3,
                                   failure_code="rate_limit", failure_message="Too many requests",
                                   stripe_object=json.dumps({"id": "pi_1"})))
    publish_all(service, bus_event("payment.failed", event_id="ev-2", retryable=False, failure_code="card_declined",
                                   failure_message="Your card was declined."))
    messages = [m for _, m, _, _ in publisher.published]
    assert [(m["status"], m["failure_code"], m.get("attempt"), m.get("final")) for m in messages] == [
        ("failed", "rate_limit", 3, True), ("failed", "card_declined", None, None)]
    assert all("stripe_object" not in m for m in messages)


def test_refunds_say_partial_or_full_from_the_cumulative_amount(core):
    service, publisher = core
    publish_all(service, bus_event("payment.refunded", amount_refunded=1000, refund_id="re_1", refund_amount=1000,
                                   stripe_refund=json.dumps({"id": "re_1"})))
    publish_all(service, bus_event("payment.refunded", event_id="ev-2", amount_refunded=2500, refund_id="re_2",
                                   refund_amount=1500))
    publish_all(service, bus_event("payment.refunded", event_id="ev-3"))  # no total: a full refund
    assert [(m["status"], m.get("amount_refunded")) for _, m, _, _ in publisher.published] == [
        ("partially_refunded", 1000), ("refunded", 2500), ("refunded", None)]
    assert "stripe_refund" not in publisher.published[0][1]


def test_a_dispute_also_goes_to_ops_alerts(core):
    service, publisher = core
    publish_all(service, bus_event("payment.disputed", dispute_id="dp_1",
                                   dispute_reason="fraudulent", dispute_amount=2500))
    assert [(topic, subject) for topic, _, _, subject in publisher.published] == [
        (NOTIFICATIONS_ARN, None), (OPS_ARN, "paystream: payment tx-1 disputed")]
    customer, ops = publisher.published[0][1], publisher.published[1][1]
    assert customer["dispute_reason"] == "fraudulent" and customer["status"] == "disputed"
    assert ops == {"alert": "payment_disputed", **customer}


@pytest.mark.parametrize("event", [
    bus_event("payment.created"),
    bus_event("stripe.payment_intent.succeeded", source="paystream.stripe"),
    bus_event("payment.succeeded", source="somebody.else"),
    bus_event("payment.succeeded", source="paystream.stripe"),  # payment events come from paystream.payments
    {**bus_event("payment.succeeded"), "detail": {"transaction_id": "tx-1"}},
    {**bus_event("payment.succeeded"), "detail": "not an object"},
    ["not", "an", "event"],
])
def test_anything_else_is_refused_with_the_reason(core, event):
    service, publisher = core
    with pytest.raises(InvalidNotificationMessage):
        service.deliveries(event)
    assert publisher.published == []


# -- the handler -------------------------------------------------------------------------------------


class Context:
    function_name = "notifier"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:notifier"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


@pytest.fixture()
def notifier(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName="idempotency", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        subscribers = {}
        topics = {}
        for name in ("payment-notifications", "ops-alerts"):
            topics[name] = sns.create_topic(Name=name)["TopicArn"]
            url = sqs.create_queue(QueueName=f"{name}-subscriber")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topics[name], Protocol="sqs", Endpoint=arn)
            subscribers[name] = url
        inbound = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        for key, value in {"TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency",
                           "NOTIFICATIONS_TOPIC_ARN": topics["payment-notifications"],
                           "OPS_ALERTS_TOPIC_ARN": topics["ops-alerts"], "POWERTOOLS_SERVICE_NAME": "notifier"}.items():
            monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("notifier_under_test", LAMBDAS / "notifier" / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        def received(name):
            messages = sqs.receive_message(QueueUrl=subscribers[name], MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(m["Body"]) for m in messages]

        def batch(bodies):
            return {"Records": [{
                "messageId": f"m-{i}", "receiptHandle": f"r-{i}", "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "x",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:notifications",
                "awsRegion": REGION,
            } for i, body in enumerate(bodies)]}

        yield module, batch, received, inbound


def test_handler_publishes_each_event_once_even_when_redelivered(notifier, capsys):
    module, batch, received, _ = notifier
    success = json.dumps(bus_event("payment.succeeded", payment_intent_id="pi_1"))
    dispute = json.dumps(bus_event("payment.disputed", event_id="ev-9", dispute_id="dp_1", dispute_reason="fraudulent"))
    assert module.handler(batch([success, dispute, success]), Context()) == {"batchItemFailures": []}
    assert module.handler(batch([dispute]), Context()) == {"batchItemFailures": []}  # a later redelivery
    notifications = received("payment-notifications")
    assert sorted(json.loads(n["Message"])["event_type"] for n in notifications) == ["payment.disputed", "payment.succeeded"]
    attributes = {json.loads(n["Message"])["event_type"]: {k: v["Value"] for k, v in n["MessageAttributes"].items()}
                  for n in notifications}
    assert attributes["payment.succeeded"] == {"event_type": "payment.succeeded", "customer_id": "cus_1", "currency": "eur"}
    [alert] = received("ops-alerts")
    assert json.loads(alert["Message"])["alert"] == "payment_disputed"
    # Outcome metrics count each outcome event once, redeliveries and the second topic included.
    assert sorted(emf_metrics(capsys.readouterr().out)) == [
        ("NotificationsPublished", 1.0), ("NotificationsPublished", 1.0), ("NotificationsPublished", 1.0),
        ("NotificationsPublished", 1.0), ("NotificationsPublished", 1.0), ("NotificationsPublished", 1.0),
        ("PaymentsDisputed", 1.0), ("PaymentsSucceeded", 1.0)]


def test_handler_fails_only_unusable_records_and_skips_retryable_failures(notifier):
    module, batch, received, _ = notifier
    result = module.handler(batch([
        "not json",
        json.dumps(bus_event("payment.created")),
        json.dumps(bus_event("payment.failed", event_id="ev-5", retryable=True)),
        json.dumps(bus_event("payment.failed", event_id="ev-6", retryable=False, failure_code="card_declined")),
    ]), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
    [only] = received("payment-notifications")
    assert json.loads(only["Message"])["notification_id"] == "ev-6"
