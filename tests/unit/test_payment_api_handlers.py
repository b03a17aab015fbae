"""POST /payments and GET /payments/{id} through API Gateway events, on in-process moto with a fake Stripe."""

from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from moto import mock_aws
from lambda_testing import LambdaContext, create_hash_key_table, create_transactions_table, emf_metrics, load_handler

from paystream.adapters import stripe_gateway
from paystream.adapters.stripe_gateway import PaymentProviderError
from paystream.store import EventStore

REGION = "us-east-1"


def Context() -> LambdaContext:
    return LambdaContext("initiate_payment", 10_000)


class FakeStripe:
    """Records calls; answers like Stripe for the configured outcome."""

    def __init__(self):
        self.calls: list[dict] = []
        self.outcome = "succeeded"
        self.intents: dict[str, dict] = {}
        self.during_call = None

    def create_and_confirm_payment_intent(self, **kwargs):
        self.calls.append(kwargs)
        if self.during_call:
            self.during_call()
        if self.outcome == "unavailable":
            raise PaymentProviderError("unavailable", retryable=True, unavailable=True, message="connection refused")
        if self.outcome == "declined":
            raise PaymentProviderError("card_declined", retryable=False, message="Your card was declined.",
                                       code="card_declined", decline_code="generic_decline",
                                       payment_intent={"id": "pi_declined", "status": "requires_payment_method"})
        key = kwargs["idempotency_key"]
        intent = self.intents.setdefault(key, {"id": f"pi_{len(self.intents) + 1}", "status": self.outcome,
                                                "client_secret": f"pi_{len(self.intents) + 1}_secret_x",
                                                "amount": kwargs["amount"]})
        return intent

    def retrieve_payment_intent(self, payment_intent_id):
        return next(i for i in self.intents.values() if i["id"] == payment_intent_id)



@pytest.fixture()
def api(monkeypatch):
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_transactions_table(ddb)
        create_hash_key_table(ddb, "idempotency", "id")
        queue_url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="parked")["QueueUrl"]
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="stripe-key", SecretString=json.dumps({"api_key": "sk_test_unit"}))
        for key, value in {
            "TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency",
            "STRIPE_API_KEY_SECRET_ID": "stripe-key", "PARKED_QUEUE_URL": queue_url,
            "BREAKER_FAILURE_THRESHOLD": "2", "BREAKER_CLOSED_CACHE_SECONDS": "0",
            "POWERTOOLS_SERVICE_NAME": "initiate_payment",
        }.items():
            monkeypatch.setenv(key, value)
        stripe = FakeStripe()
        built_with = []
        monkeypatch.setattr(stripe_gateway, "StripeGateway", lambda api_key, **kw: built_with.append(api_key) or stripe)
        initiate = load_handler("initiate_payment", "initiate_payment_under_test")
        get = load_handler("get_payment", "get_payment_under_test")
        stripe.built_with = built_with
        yield initiate, get, stripe, queue_url


def post(module, body, key="key-1", headers=None, api_key_id="apikey-1", raw=None):
    hdrs = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key is not None else {}), **(headers or {})}
    event = {
        "resource": "/payments", "path": "/payments", "httpMethod": "POST", "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
        "requestContext": {"resourcePath": "/payments", "httpMethod": "POST", "stage": "v1", "requestId": "r",
                           "identity": {"sourceIp": "127.0.0.1", "apiKeyId": api_key_id, "apiKey": "secret"}},
        "body": raw if raw is not None else json.dumps(body), "isBase64Encoded": False,
    }
    response = module.handler(event, Context())
    headers = {**(response.get("headers") or {}),
               **{k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}}
    return response["statusCode"], json.loads(response["body"]), headers


def get_payment(module, transaction_id):
    event = {
        "resource": "/payments/{transaction_id}", "path": f"/payments/{transaction_id}", "httpMethod": "GET",
        "headers": {}, "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {"transaction_id": transaction_id}, "stageVariables": None,
        "requestContext": {"resourcePath": "/payments/{transaction_id}", "httpMethod": "GET", "stage": "v1",
                           "requestId": "r", "identity": {"sourceIp": "127.0.0.1"}},
        "body": None, "isBase64Encoded": False,
    }
    response = module.handler(event, Context())
    return response["statusCode"], json.loads(response["body"])


PAYMENT = {"amount": 2500, "currency": "EUR", "customer_id": "cus_1", "payment_method_id": "pm_1", "order_id": "o-1",
           "metadata": {"cart": "42"}}


def test_new_payment_is_created_and_its_history_readable(api):
    initiate, get, stripe, _ = api
    status, body, headers = post(initiate, PAYMENT)
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert body["status"] == "succeeded" and body["payment_intent_id"] == "pi_1"
    assert body["client_secret"] == "pi_1_secret_x" and (body["amount"], body["currency"]) == (2500, "eur")
    assert stripe.calls[0]["idempotency_key"] == f"paystream:{body['transaction_id']}:create"
    assert stripe.calls[0]["capture_method"] == "automatic"
    assert stripe.built_with == ["sk_test_unit"]  # the key came from Secrets Manager
    status, payment = get_payment(get, body["transaction_id"])
    assert status == 200
    assert [e["type"] for e in payment["events"]] == ["payment.created", "payment.succeeded"]
    assert payment["status"] == "succeeded" and payment["based_on_event_id"] == payment["events"][-1]["id"]


def test_risk_gated_capture_only_authorizes_and_the_payment_remembers_it(api, monkeypatch):
    _, get, stripe, _ = api
    monkeypatch.setenv("CAPTURE_MODE", "risk_gated")
    initiate = load_handler("initiate_payment", "initiate_payment_risk_gated")
    stripe.outcome = "requires_capture"
    status, body, _ = post(initiate, PAYMENT, key="gated-1")
    assert status == 201 and body["status"] == "processing"
    assert stripe.calls[-1]["capture_method"] == "manual"
    events = boto3.client("dynamodb", region_name=REGION).query(
        TableName="transactions", KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": f"TXN#{body['transaction_id']}"}, ":e": {"S": "EVENT#"}})["Items"]
    created = next(e for e in events if e["event_type"]["S"] == "payment.created")
    assert created["detail"]["M"]["capture_method"] == {"S": "manual"}  # fixed for the payment's life


def test_log_lines_carry_the_transaction_id_as_correlation_id(api):
    initiate, _, _, _ = api
    written = io.StringIO()
    previous = initiate.logger.registered_handler.setStream(written)  # the JSON lines as CloudWatch gets them
    try:
        _, body, _ = post(initiate, PAYMENT, key="logged-1")
    finally:
        initiate.logger.registered_handler.setStream(previous)
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    initiated = next(line for line in lines if line["message"] == "payment initiated")
    assert initiated["correlation_id"] == initiated["transaction_id"] == body["transaction_id"]


def test_same_key_and_body_replays_the_original_response(api):
    initiate, _, stripe, _ = api
    first = post(initiate, PAYMENT)
    status, body, headers = post(initiate, {**PAYMENT, "currency": "eur"})  # same request, currency in another case
    assert first[0] == 201
    assert status == 200 and body == first[1] and headers.get("Idempotent-Replayed") == "true"
    assert len(stripe.calls) == 1


def test_each_answer_is_counted_as_an_emf_metric(api, capsys):
    initiate, _, _, _ = api
    capsys.readouterr()
    post(initiate, PAYMENT)
    post(initiate, PAYMENT)
    post(initiate, {**PAYMENT, "amount": 0}, key="key-2")
    assert [name for name, _ in emf_metrics(capsys.readouterr().out)] == ["PaymentsInitiated", "PaymentsReplayed", "PaymentRequestsRejected"]


def test_same_key_with_another_body_is_422(api):
    initiate, _, stripe, _ = api
    post(initiate, PAYMENT)
    status, body, _ = post(initiate, {**PAYMENT, "amount": 2600})
    assert status == 422 and body["error"] == "idempotency_key_reused"
    assert len(stripe.calls) == 1


def test_same_key_while_the_first_request_is_in_flight_is_409(api):
    initiate, _, stripe, _ = api
    inner = {}
    stripe.during_call = lambda: inner.setdefault("answer", post(initiate, PAYMENT))
    status, _, _ = post(initiate, PAYMENT)
    assert status == 201
    assert inner["answer"][0] == 409 and inner["answer"][1]["error"] == "request_in_progress"


def test_keys_are_per_api_key(api):
    initiate, _, stripe, _ = api
    a = post(initiate, PAYMENT, api_key_id="client-a")[1]
    b = post(initiate, PAYMENT, api_key_id="client-b")[1]
    assert a["transaction_id"] != b["transaction_id"] and len(stripe.calls) == 2


def test_provider_unavailable_parks_the_payment_with_202(api):
    initiate, get, stripe, queue_url = api
    stripe.outcome = "unavailable"
    status, body, _ = post(initiate, PAYMENT)
    assert status == 202 and body["status"] == "queued" and body["payment_intent_id"] is None
    messages = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue_url)["Messages"]
    assert json.loads(messages[0]["Body"]) == {"transaction_id": body["transaction_id"]}
    assert [e["type"] for e in get_payment(get, body["transaction_id"])[1]["events"]] == ["payment.created", "payment.queued"]


def test_open_breaker_parks_without_calling_stripe(api):
    initiate, _, stripe, _ = api
    stripe.outcome = "unavailable"
    post(initiate, PAYMENT, key="a")
    post(initiate, PAYMENT, key="b")  # threshold 2: the breaker opens
    calls = len(stripe.calls)
    status, body, _ = post(initiate, PAYMENT, key="c")
    assert status == 202 and body["status"] == "queued" and len(stripe.calls) == calls


def test_declined_card_is_recorded_as_a_failed_payment(api):
    initiate, get, stripe, _ = api
    stripe.outcome = "declined"
    status, body, _ = post(initiate, PAYMENT)
    assert status == 201 and body["status"] == "failed" and body["payment_intent_id"] == "pi_declined"
    payment = get_payment(get, body["transaction_id"])[1]
    assert payment["failure_code"] == "generic_decline"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"key": None}, "Idempotency-Key"),
        ({"key": ""}, "Idempotency-Key"),
        ({"key": "k" * 256}, "Idempotency-Key"),
        ({"raw": "{not json"}, "body"),
        ({"raw": ""}, "body"),
        ({"headers": {"Content-Type": "text/plain"}}, "Content-Type"),
        ({"body": {**PAYMENT, "amount": 0}}, "amount"),
        ({"body": {**PAYMENT, "amount": "10"}}, "amount"),
        ({"body": {**PAYMENT, "currency": "xyz"}}, "currency"),
        ({"body": {k: v for k, v in PAYMENT.items() if k != "order_id"}}, "order_id"),
        ({"body": [1, 2]}, "body"),
    ],
)
def test_bad_requests_are_400_with_the_field_and_nothing_is_charged(api, kwargs, field):
    initiate, _, stripe, _ = api
    body = kwargs.pop("body", PAYMENT)
    status, answer, _ = post(initiate, body, **kwargs)
    assert status == 400 and answer["error"] == "validation_error"
    assert field in [d["field"] for d in answer["details"]]
    assert stripe.calls == []


def test_body_over_64_kib_is_413(api):
    initiate, _, stripe, _ = api
    status, answer, _ = post(initiate, {**PAYMENT, "description": "x" * (64 * 1024)})
    assert status == 413 and answer["error"] == "payload_too_large" and stripe.calls == []


def test_unicode_and_injection_looking_strings_are_stored_verbatim(api):
    initiate, get, _, _ = api
    order_id = "o-💳'; DROP TABLE payments;--<script>"
    body = post(initiate, {**PAYMENT, "order_id": order_id})[1]
    assert get_payment(get, body["transaction_id"])[1]["order_id"] == order_id


def test_unknown_payment_is_404(api):
    _, get, _, _ = api
    status, body = get_payment(get, "00000000-0000-0000-0000-000000000000")
    assert status == 404 and body["error"] == "not_found"


def test_a_crash_between_the_stripe_call_and_the_append_then_a_retry_makes_one_payment_intent(api, monkeypatch):
    initiate, get, stripe, _ = api
    upstream_append = EventStore.append
    crashes = [1]

    def crash_once(self, *args, **kwargs):
        if crashes:
            crashes.pop()
            raise RuntimeError("injected crash after the Stripe call")
        return upstream_append(self, *args, **kwargs)

    monkeypatch.setattr(EventStore, "append", crash_once)
    with pytest.raises(RuntimeError, match="injected crash"):
        post(initiate, PAYMENT)
    status, body, _ = post(initiate, PAYMENT)
    assert status == 201 and body["status"] == "succeeded"
    assert len(stripe.calls) == 2 and len(stripe.intents) == 1  # same Stripe idempotency key both times
    assert [e["type"] for e in get_payment(get, body["transaction_id"])[1]["events"]] == [
        "payment.created", "payment.succeeded"]


def sqs_event(queue_url: str) -> dict:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"],
                       "SentTimestamp": m["Attributes"]["SentTimestamp"], "SenderId": "x",
                       "ApproximateFirstReceiveTimestamp": m["Attributes"]["SentTimestamp"]},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:parked", "awsRegion": REGION,
    } for m in messages]}


def test_a_parked_payment_is_resumed_once_stripe_is_back(api):
    initiate, get, stripe, queue_url = api
    stripe.outcome = "unavailable"
    parked = post(initiate, PAYMENT)[1]
    resume = load_handler("resume_payments", "resume_payments_under_test")
    stripe.outcome = "succeeded"
    assert resume.handler(sqs_event(queue_url), Context()) == {"batchItemFailures": []}
    payment = get_payment(get, parked["transaction_id"])[1]
    assert payment["status"] == "succeeded"
    assert [e["type"] for e in payment["events"]] == ["payment.created", "payment.queued", "payment.succeeded"]


def test_a_parked_payment_waits_with_backoff_while_the_breaker_is_open(api):
    initiate, get, stripe, queue_url = api
    stripe.outcome = "unavailable"
    parked = [post(initiate, PAYMENT, key=k)[1] for k in ("a", "b")]  # threshold 2: open
    resume = load_handler("resume_payments", "resume_payments_under_test")
    calls = len(stripe.calls)
    event = sqs_event(queue_url)
    result = resume.handler(event, Context())
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(r["messageId"] for r in event["Records"])
    assert len(stripe.calls) == calls  # no Stripe call while open
    assert {get_payment(get, p["transaction_id"])[1]["status"] for p in parked} == {"queued"}
    assert resume.backoff_seconds(1) == 5 and resume.backoff_seconds(3) == 20 and resume.backoff_seconds(20) == 900


class InjectedCrash(BaseException):
    pass


def test_fault_header_crashes_after_the_stripe_call_only_when_enabled(api, monkeypatch):
    initiate, get, stripe, _ = api
    exits = []

    def fake_exit(code):
        exits.append(code)
        raise InjectedCrash()

    monkeypatch.setattr(initiate.os, "_exit", fake_exit)
    # Not enabled (the default): the header is ignored.
    status, _, _ = post(initiate, PAYMENT, key="ignored", headers={"X-Paystream-Fault": "after_stripe_call"})
    assert status == 201 and exits == []

    monkeypatch.setenv("FAULT_INJECTION_ENABLED", "true")
    enabled = load_handler("initiate_payment", "initiate_payment_with_faults")
    monkeypatch.setattr(enabled.os, "_exit", fake_exit)
    with pytest.raises(InjectedCrash):
        post(enabled, PAYMENT, key="crash", headers={"X-Paystream-Fault": "after_stripe_call"})
    assert exits == [1] and len(stripe.intents) == 2  # the crash came after the PaymentIntent was created
