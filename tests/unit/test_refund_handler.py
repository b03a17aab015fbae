"""POST /payments/{transaction_id}/refunds through API Gateway events, on in-process moto with a fake Stripe.

Payments are taken through the initiate_payment handler first, so each refund starts from a payment
stored exactly as the platform stores it."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from lambda_testing import LambdaContext, create_hash_key_table, create_transactions_table, load_handler

from paystream.adapters import stripe_gateway
from paystream.adapters.stripe_gateway import REFUND_EXCEEDS_REMAINING, PaymentProviderError
from paystream.refunds import refund_request_key, stripe_refund_idempotency_key

REGION = "us-east-1"
ROUTE = "/payments/{transaction_id}/refunds"


def Context() -> LambdaContext:
    return LambdaContext("refund_payment", 10_000)


class FakeStripe:
    """PaymentIntents that succeed (or decline) and refunds as Stripe makes them (idempotency keys,
    never above what is left on the charge, cumulative amount_refunded on the charge)."""

    def __init__(self):
        self.decline = False
        self.unavailable = False
        self.intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refund_calls: list[dict] = []
        self.refunds: dict[str, dict] = {}  # idempotency key -> refund
        self.during_refund = None

    def create_and_confirm_payment_intent(self, **kwargs):
        if self.decline:
            raise PaymentProviderError("card_declined", retryable=False, message="Your card was declined.",
                                       code="card_declined", decline_code="insufficient_funds",
                                       payment_intent={"id": "pi_declined", "status": "requires_payment_method"})
        key = kwargs["idempotency_key"]
        if key not in self.intents:
            intent_id = f"pi_{len(self.intents) + 1}"
            self.intents[key] = {"id": intent_id, "status": "succeeded", "client_secret": f"{intent_id}_secret",
                                 "amount": kwargs["amount"]}
            self.charges[intent_id] = {"id": f"ch_{intent_id}", "amount": kwargs["amount"], "amount_refunded": 0}
        return self.intents[key]

    def create_refund(self, payment_intent_id, *, idempotency_key, amount=None, reason=None):
        self.refund_calls.append({"payment_intent_id": payment_intent_id, "idempotency_key": idempotency_key,
                                  "amount": amount, "reason": reason})
        if self.during_refund:
            self.during_refund()
        if self.unavailable:
            raise PaymentProviderError("unavailable", retryable=True, unavailable=True, message="connection refused")
        if idempotency_key in self.refunds:
            return self.refunds[idempotency_key]
        charge = self.charges[payment_intent_id]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0 or (amount or remaining) > remaining:
            raise PaymentProviderError(REFUND_EXCEEDS_REMAINING, retryable=False,
                                       message=f"Refund amount is greater than unrefunded amount on charge ({remaining})")
        refund = {"id": f"re_{len(self.refunds) + 1}", "amount": amount or remaining, "charge": charge["id"],
                  "payment_intent": payment_intent_id, "status": "succeeded", "reason": reason}
        charge["amount_refunded"] += refund["amount"]
        self.refunds[idempotency_key] = refund
        return refund

    def retrieve_charge(self, charge_id):
        return dict(next(c for c in self.charges.values() if c["id"] == charge_id))



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
            "BREAKER_FAILURE_THRESHOLD": "2", "BREAKER_CLOSED_CACHE_SECONDS": "0", "BREAKER_COOLDOWN_SECONDS": "5",
            "POWERTOOLS_SERVICE_NAME": "refund_payment",
        }.items():
            monkeypatch.setenv(key, value)
        stripe = FakeStripe()
        monkeypatch.setattr(stripe_gateway, "StripeGateway", lambda api_key, **kw: stripe)
        initiate = load_handler("initiate_payment", "initiate_payment_for_refunds")
        refunds = load_handler("refund_payment", "refund_payment_under_test")
        get = load_handler("get_payment", "get_payment_for_refunds")
        yield initiate, refunds, get, stripe


def api_event(method, resource, path, body=None, headers=None, path_parameters=None, api_key_id="apikey-1", raw=None):
    hdrs = dict(headers or {})
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()}, "queryStringParameters": None,
        "multiValueQueryStringParameters": None, "pathParameters": path_parameters, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "v1", "requestId": "r",
                           "identity": {"sourceIp": "127.0.0.1", "apiKeyId": api_key_id, "apiKey": "secret"}},
        "body": raw if raw is not None else (None if body is None else json.dumps(body)), "isBase64Encoded": False,
    }


def answer(response):
    headers = {**(response.get("headers") or {}),
               **{k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}}
    return response["statusCode"], json.loads(response["body"]), headers


def pay(initiate, key="pay-1", amount=2500) -> str:
    body = {"amount": amount, "currency": "EUR", "customer_id": "cus_1", "payment_method_id": "pm_1", "order_id": "o-1"}
    event = api_event("POST", "/payments", "/payments", body, {"Content-Type": "application/json", "Idempotency-Key": key})
    status, payment, _ = answer(initiate.handler(event, Context()))
    assert status == 201, payment
    return payment["transaction_id"]


def post_refund(module, transaction_id, body=None, key="refund-1", headers=None, api_key_id="apikey-1", raw=None):
    hdrs = {"Content-Type": "application/json", **({"Idempotency-Key": key} if key is not None else {}), **(headers or {})}
    event = api_event("POST", ROUTE, f"/payments/{transaction_id}/refunds", body, hdrs,
                      {"transaction_id": transaction_id}, api_key_id, raw)
    return answer(module.handler(event, Context()))


def get_payment(module, transaction_id):
    event = api_event("GET", "/payments/{transaction_id}", f"/payments/{transaction_id}",
                      path_parameters={"transaction_id": transaction_id})
    status, body, _ = answer(module.handler(event, Context()))
    assert status == 200
    return body


def test_partial_refund_is_201_and_the_payment_partially_refunded(api):
    initiate, refunds, get, stripe = api
    txn = pay(initiate)
    status, body, headers = post_refund(refunds, txn, {"amount": 1000, "reason": "requested_by_customer"})
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert body == {"refund_id": "re_1", "transaction_id": txn, "amount": 1000, "status": "succeeded",
                    "amount_refunded": 1000, "payment_status": "partially_refunded"}
    assert stripe.refund_calls[0] == {"payment_intent_id": "pi_1", "amount": 1000, "reason": "requested_by_customer",
                                      "idempotency_key": stripe_refund_idempotency_key(txn, refund_request_key("apikey-1", "refund-1"))}
    payment = get_payment(get, txn)
    assert (payment["status"], payment["amount_refunded"]) == ("partially_refunded", 1000)
    assert [e["type"] for e in payment["events"]] == ["payment.created", "payment.succeeded", "payment.refunded"]


@pytest.mark.parametrize("raw", ["", "{}"])
def test_no_amount_refunds_everything_left(api, raw):
    initiate, refunds, get, _ = api
    txn = pay(initiate)
    post_refund(refunds, txn, {"amount": 500}, key="first")
    status, body, _ = post_refund(refunds, txn, key="rest", raw=raw)
    assert status == 201 and (body["amount"], body["amount_refunded"], body["payment_status"]) == (2000, 2500, "refunded")
    assert get_payment(get, txn)["status"] == "refunded"


def test_same_key_and_body_replays_the_original_response(api):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    first = post_refund(refunds, txn, {"amount": 700})
    status, body, headers = post_refund(refunds, txn, {"amount": 700})
    assert first[0] == 201
    assert status == 200 and body == first[1] and headers.get("Idempotent-Replayed") == "true"
    assert len(stripe.refund_calls) == 1 and len(stripe.refunds) == 1


def test_same_key_with_another_body_or_another_payment_is_422(api):
    initiate, refunds, _, stripe = api
    txn, other = pay(initiate, key="p1"), pay(initiate, key="p2")
    post_refund(refunds, txn, {"amount": 700})
    for target, body in ((txn, {"amount": 701}), (other, {"amount": 700})):
        status, answer_body, _ = post_refund(refunds, target, body)
        assert status == 422 and answer_body["error"] == "idempotency_key_reused"
    assert len(stripe.refund_calls) == 1


def test_same_key_while_the_first_request_is_in_flight_is_409(api):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    inner = {}
    stripe.during_refund = lambda: inner.setdefault("answer", post_refund(refunds, txn, {"amount": 100}))
    status, _, _ = post_refund(refunds, txn, {"amount": 100})
    assert status == 201
    assert inner["answer"][0] == 409 and inner["answer"][1]["error"] == "request_in_progress"


def test_amount_above_what_is_left_is_422_naming_the_remaining_amount(api):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    post_refund(refunds, txn, {"amount": 2000}, key="first")
    status, body, _ = post_refund(refunds, txn, {"amount": 501}, key="second")
    assert status == 422 and body["error"] == "amount_exceeds_refundable" and "500 eur" in body["message"]
    post_refund(refunds, txn, key="rest")
    status, body, _ = post_refund(refunds, txn, key="one-more")
    assert status == 422 and body["error"] == "amount_exceeds_refundable"
    assert len(stripe.refund_calls) == 2


def test_a_declined_payment_is_409_naming_its_status(api):
    initiate, refunds, _, stripe = api
    stripe.decline = True
    txn = pay(initiate)
    status, body, _ = post_refund(refunds, txn)
    assert status == 409 and body["error"] == "payment_not_refundable" and "is failed" in body["message"]
    assert stripe.refund_calls == []


@pytest.mark.parametrize("transaction_id", ["00000000-0000-0000-0000-000000000000", "x" * 65])
def test_unknown_payment_is_404(api, transaction_id):
    _, refunds, _, stripe = api
    status, body, _ = post_refund(refunds, transaction_id)
    assert status == 404 and body["error"] == "not_found" and stripe.refund_calls == []


def test_stripe_unavailable_is_503_with_retry_after_and_the_same_key_works_once_it_is_back(api):
    initiate, refunds, get, stripe = api
    txn = pay(initiate)
    stripe.unavailable = True
    status, body, headers = post_refund(refunds, txn, {"amount": 300})
    assert status == 503 and body["error"] == "provider_unavailable" and headers["Retry-After"] == "5"
    assert get_payment(get, txn)["status"] == "succeeded"
    # A refusal is not stored for replay: once Stripe is back, the same key refunds.
    stripe.unavailable = False
    status, body, _ = post_refund(refunds, txn, {"amount": 300})
    assert status == 201 and body["amount_refunded"] == 300 and len(stripe.refunds) == 1


def test_open_breaker_is_503_without_calling_stripe(api):
    initiate, refunds, get, stripe = api
    txn = pay(initiate)
    stripe.unavailable = True
    post_refund(refunds, txn, {"amount": 300}, key="a")
    post_refund(refunds, txn, {"amount": 300}, key="b")  # threshold 2: the breaker opens
    calls = len(stripe.refund_calls)
    status, body, headers = post_refund(refunds, txn, {"amount": 300}, key="c")
    assert status == 503 and "circuit breaker open" in body["message"] and headers["Retry-After"] == "5"
    assert len(stripe.refund_calls) == calls
    assert get_payment(get, txn)["status"] == "succeeded"


def test_a_stripe_refusal_of_the_amount_is_the_same_422(api):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    stripe.charges["pi_1"]["amount_refunded"] = 2400  # a concurrent refund the platform has not recorded yet
    status, body, _ = post_refund(refunds, txn, {"amount": 500})
    assert status == 422 and body["error"] == "amount_exceeds_refundable" and "(100)" in body["message"]


def _emf_metrics(captured: str) -> list[str]:
    names = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            names += [m["Name"] for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    return names


def test_each_answer_is_counted_as_an_emf_metric(api, capsys):
    initiate, refunds, _, _ = api
    txn = pay(initiate)
    capsys.readouterr()
    post_refund(refunds, txn, {"amount": 100})
    post_refund(refunds, txn, {"amount": 100})
    post_refund(refunds, txn, {"amount": 0}, key="bad")
    assert _emf_metrics(capsys.readouterr().out) == ["RefundsCreated", "RefundsReplayed", "RefundRequestsRejected"]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"key": None}, "Idempotency-Key"),
        ({"key": ""}, "Idempotency-Key"),
        ({"key": "k" * 256}, "Idempotency-Key"),
        ({"raw": "{not json"}, "body"),
        ({"raw": "null"}, "body"),
        ({"body": [1]}, "body"),
        ({"headers": {"Content-Type": "text/plain"}, "body": {"amount": 100}}, "Content-Type"),
        ({"body": {"amount": 0}}, "amount"),
        ({"body": {"amount": -5}}, "amount"),
        ({"body": {"amount": "100"}}, "amount"),
        ({"body": {"amount": 1.5}}, "amount"),
        ({"body": {"amount": 100_000_000}}, "amount"),
        ({"body": {"reason": "changed_my_mind"}}, "reason"),
        ({"body": {"amount": 100, "currency": "eur"}}, "currency"),
    ],
)
def test_bad_requests_are_400_with_the_field_and_nothing_is_refunded(api, kwargs, field):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    body = kwargs.pop("body", None)
    status, answer_body, _ = post_refund(refunds, txn, body, **kwargs)
    assert status == 400 and answer_body["error"] == "validation_error"
    assert field in [d["field"] for d in answer_body["details"]]
    assert stripe.refund_calls == []


def test_body_over_64_kib_is_413(api):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    status, body, _ = post_refund(refunds, txn, raw=json.dumps({"reason": "x" * (64 * 1024)}))
    assert status == 413 and body["error"] == "payload_too_large" and stripe.refund_calls == []


def test_keys_are_per_api_key(api):
    initiate, refunds, _, stripe = api
    txn = pay(initiate)
    a = post_refund(refunds, txn, {"amount": 100}, api_key_id="client-a")
    b = post_refund(refunds, txn, {"amount": 100}, api_key_id="client-b")
    assert (a[0], b[0]) == (201, 201) and a[1]["refund_id"] != b[1]["refund_id"]
    assert b[1]["amount_refunded"] == 200 and len({c["idempotency_key"] for c in stripe.refund_calls}) == 2
