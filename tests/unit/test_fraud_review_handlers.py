"""lambdas/fraud_review and lambdas/capture_payment through SQS events on in-process moto with a fake Stripe:
a flagged payment is held (or blocked) and alerted once on fraud-alerts; unusable messages and payments not
charged yet are batch item failures; a cleared risk-gated payment is captured whichever fact comes last."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from lambda_testing import LambdaContext, create_hash_key_table, create_transactions_table, load_handler
from test_review import FakeStripe, make_payment

from paystream.adapters import stripe_gateway
from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.store import EventStore

REGION = "us-east-1"
PARAMETER = "/paystream/test/fraud-config"


def Context() -> LambdaContext:
    return LambdaContext("fraud_review", 30_000)



@pytest.fixture()
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_transactions_table(ddb)
        create_hash_key_table(ddb, "idempotency", "id")
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="stripe-key", SecretString=json.dumps({"api_key": "sk_test_unit"}))
        boto3.client("ssm", region_name=REGION).put_parameter(
            Name=PARAMETER, Type="String", Value=json.dumps({"thresholds": {"review": 70, "block": 90}}))
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="fraud-alerts")["TopicArn"]
        inbox = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
        for key, value in {
            "TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency",
            "STRIPE_API_KEY_SECRET_ID": "stripe-key", "FRAUD_ALERTS_TOPIC_ARN": topic,
            "FRAUD_CONFIG_PARAMETER": PARAMETER, "POWERTOOLS_SERVICE_NAME": "fraud_review",
        }.items():
            monkeypatch.setenv(key, value)
        stripe = FakeStripe()
        monkeypatch.setattr(stripe_gateway, "StripeGateway", lambda api_key, **kw: stripe)

        def alerts() -> list[dict]:
            messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
            return [{"body": json.loads(m["Body"]),
                     "attributes": {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}}
                    for m in messages.get("Messages", [])]

        yield {"store": EventStore(DynamoDBTransactionsTable(ddb, "transactions")), "stripe": stripe, "alerts": alerts}


def sqs_event(*bodies) -> dict:
    return {"Records": [{
        "messageId": f"m-{i}", "receiptHandle": f"r-{i}", "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "x",
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q", "awsRegion": REGION,
    } for i, body in enumerate(bodies)]}


def scored(transaction_id: str, score: int) -> dict:
    return {"source": "paystream.fraud", "detail-type": "fraud.scored", "detail": {
        "event_id": f"fraud-{transaction_id}", "transaction_id": transaction_id, "risk_score": score,
        "risk_factors": [{"code": "card_testing_customer", "reason": "4 small payments in 600 s", "weight": 60},
                         {"code": "velocity", "reason": "7 payments in 300 s", "weight": 40}][: 1 + (score >= 90)]}}


def test_a_flagged_payment_is_held_and_alerted_once(aws):
    make_payment(aws["store"], aws["stripe"], "tx-1", risk_score=75)
    fraud_review = load_handler("fraud_review")

    assert fraud_review.handler(sqs_event(scored("tx-1", 75)), Context()) == {"batchItemFailures": []}
    assert fraud_review.handler(sqs_event(scored("tx-1", 75)), Context()) == {"batchItemFailures": []}  # redelivered

    assert aws["store"].get_projection("tx-1").status == "review"
    (alert,) = aws["alerts"]()
    assert alert["body"]["risk_score"] == 75 and alert["body"]["action"] == "held"
    assert alert["body"]["risk_factors"][0]["code"] == "card_testing_customer"
    assert alert["attributes"] == {"event_type": "fraud.alert", "decision": "review", "action": "held", "currency": "eur"}
    assert aws["stripe"].effects() == []


def test_a_payment_at_the_block_threshold_is_canceled_and_alerted(aws):
    make_payment(aws["store"], aws["stripe"], "tx-2", risk_score=100)
    assert load_handler("fraud_review").handler(sqs_event(scored("tx-2", 100)), Context()) == {"batchItemFailures": []}
    assert aws["store"].get_projection("tx-2").status == "canceled"
    assert aws["stripe"].intents["pi_tx-2"]["status"] == "canceled"
    (alert,) = aws["alerts"]()
    assert (alert["body"]["decision"], alert["body"]["action"]) == ("block", "blocked")


def test_unusable_messages_and_payments_not_charged_yet_are_retried_without_an_alert(aws):
    make_payment(aws["store"], aws["stripe"], "tx-parked", events=("payment.queued",))
    result = load_handler("fraud_review").handler(
        sqs_event("not json", {"source": "paystream.payments", "detail-type": "payment.created", "detail": {}},
                  scored("tx-parked", 80)), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"},
                                            {"itemIdentifier": "m-2"}]}
    assert aws["alerts"]() == []


def test_a_cleared_risk_gated_payment_is_captured_by_whichever_fact_arrives_last(aws):
    store, stripe = aws["store"], aws["stripe"]
    make_payment(store, stripe, "tx-3")  # authorized, not scored yet
    capture_payment = load_handler("capture_payment")
    authorized = {"source": "paystream.payments", "detail-type": "payment.processing",
                  "detail": {"transaction_id": "tx-3", "stripe_status": "requires_capture"}}

    assert capture_payment.handler(sqs_event(authorized), Context()) == {"batchItemFailures": []}
    assert store.get_projection("tx-3").status == "processing" and stripe.effects() == []

    projection = store.get_projection("tx-3")
    from paystream.payments import append_event
    append_event(store, projection, "fraud.scored", {"risk_score": 12, "risk_factors": []}, source="paystream.fraud")
    assert capture_payment.handler(sqs_event(scored("tx-3", 12), "garbage"), Context()) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert store.get_projection("tx-3").status == "succeeded"
    assert [call[0] for call in stripe.effects()] == ["capture"]
