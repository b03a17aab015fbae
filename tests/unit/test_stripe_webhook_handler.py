"""The stripe_webhook Lambda handler against in-process moto: 200 once stored (also for duplicates), 400 otherwise."""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import boto3
import pytest
import stripe
from lambda_testing import emf_metrics
from moto import mock_aws

HANDLER_PATH = Path(__file__).resolve().parents[2] / "lambdas" / "stripe_webhook" / "handler.py"
SECRET = "whsec_test_handler"


class Context:
    function_name = "stripe_webhook"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:stripe_webhook"
    aws_request_id = "req-1"


@pytest.fixture()
def handler_module(monkeypatch):
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="transactions",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="webhook-secrets", SecretString=json.dumps({"signing_secrets": [SECRET]})
        )
        monkeypatch.setenv("TRANSACTIONS_TABLE", "transactions")
        monkeypatch.setenv("WEBHOOK_SECRETS_SECRET_ID", "webhook-secrets")
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stripe_webhook")
        spec = importlib.util.spec_from_file_location("stripe_webhook_handler_under_test", HANDLER_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module, boto3.resource("dynamodb", region_name="us-east-1").Table("transactions")


def api_event(body: str, headers: dict, base64_encoded: bool = False) -> dict:
    return {
        "resource": "/webhooks/stripe", "path": "/webhooks/stripe", "httpMethod": "POST",
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": "/webhooks/stripe", "httpMethod": "POST", "stage": "v1", "requestId": "r1",
                           "path": "/v1/webhooks/stripe", "identity": {"sourceIp": "127.0.0.1"}},
        "body": base64.b64encode(body.encode()).decode() if base64_encoded else body,
        "isBase64Encoded": base64_encoded,
    }


def event_body(event_id: str) -> str:
    return json.dumps({"id": event_id, "type": "payment_intent.succeeded", "created": 1, "livemode": False,
                       "data": {"object": {"id": "pi_123", "object": "payment_intent"}}})


@pytest.mark.parametrize("base64_encoded", [False, True])
def test_signed_event_is_stored_then_acknowledged(handler_module, base64_encoded):
    module, table = handler_module
    body = event_body("evt_stored")
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    response = module.handler(api_event(body, {"Stripe-Signature": header}, base64_encoded), Context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"received": True, "duplicate": False}
    item = table.get_item(Key={"pk": "STRIPE_EVENT#evt_stored", "sk": "INBOX"})["Item"]
    assert item["payload"] == body and item["event_type"] == "payment_intent.succeeded"
    assert item["expires_at"] - item["received_at"] == 90 * 86400


def test_duplicate_is_acknowledged_with_200(handler_module, capsys):
    module, _ = handler_module
    body = event_body("evt_dup")
    header = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    module.handler(api_event(body, {"stripe-signature": header}), Context())
    response = module.handler(api_event(body, {"stripe-signature": header}), Context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["duplicate"] is True
    assert [m for m in emf_metrics(capsys.readouterr().out) if m[0].startswith("Webhooks")] == [
        ("WebhooksStored", 1.0), ("WebhooksDuplicate", 1.0)]


def test_bad_signature_is_400_and_nothing_stored(handler_module, capsys):
    module, table = handler_module
    body = event_body("evt_forged")
    header = stripe.WebhookSignature.generate_signature_header(body, "whsec_attacker")
    response = module.handler(api_event(body, {"Stripe-Signature": header}), Context())
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "invalid_webhook"
    assert "Item" not in table.get_item(Key={"pk": "STRIPE_EVENT#evt_forged", "sk": "INBOX"})
    assert ("WebhooksRejected", 1.0) in emf_metrics(capsys.readouterr().out)
