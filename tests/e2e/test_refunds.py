"""POST /payments/{transaction_id}/refunds through the local stack's REST API, with localstripe behind it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.e2e

SUCCEEDS = "4242424242424242"
DECLINES = "4000000000000341"


def call(outputs: dict, method: str, path: str, body: dict | None = None, headers: dict | None = None,
         api_key: bool = True) -> tuple[int, dict, dict]:
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **({"x-api-key": outputs["api_key"]} if api_key else {}), **(headers or {})}
    req = urllib.request.Request(f"{outputs['api_url']}{path}", data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def pay(outputs: dict, stripe_client, card: str, amount: int = 4200) -> dict:
    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id
    status, body, _ = call(outputs, "POST", "/payments", {
        "amount": amount, "currency": "usd", "customer_id": "cus_e2e_refunds", "payment_method_id": method,
        "order_id": f"order-{uuid.uuid4().hex[:8]}"}, {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, body
    return body


def refund(outputs: dict, transaction_id: str, body: dict | None, key: str, **kwargs) -> tuple[int, dict, dict]:
    return call(outputs, "POST", f"/payments/{transaction_id}/refunds", body, {"Idempotency-Key": key}, **kwargs)


def stripe_refunds(stripe_client, payment_intent_id: str) -> list:
    return list(stripe_client.v1.refunds.list(params={"payment_intent": payment_intent_id}).data)


def test_partial_replayed_rest_then_nothing_left(outputs, stripe_client):
    payment = pay(outputs, stripe_client, SUCCEEDS)
    assert payment["status"] == "succeeded"
    txn, intent = payment["transaction_id"], payment["payment_intent_id"]

    key = uuid.uuid4().hex
    status, part, headers = refund(outputs, txn, {"amount": 1500, "reason": "requested_by_customer"}, key)
    assert status == 201, part
    assert "Idempotent-Replayed" not in headers
    assert (part["transaction_id"], part["amount"], part["status"]) == (txn, 1500, "succeeded")
    assert (part["amount_refunded"], part["payment_status"]) == (1500, "partially_refunded")
    status, got, _ = call(outputs, "GET", f"/payments/{txn}")
    assert status == 200 and (got["status"], got["amount_refunded"]) == ("partially_refunded", 1500)
    # fraud.scored (appended asynchronously by the fraud scorer) may come at any point: leave it out.
    assert [e["type"] for e in got["events"] if e["type"] != "fraud.scored"][-1] == "payment.refunded"

    status, again, headers = refund(outputs, txn, {"amount": 1500, "reason": "requested_by_customer"}, key)
    assert status == 200 and again == part and headers.get("Idempotent-Replayed") == "true"
    assert [r.id for r in stripe_refunds(stripe_client, intent)] == [part["refund_id"]]

    status, rest, _ = refund(outputs, txn, None, uuid.uuid4().hex)  # no amount: everything left
    assert status == 201, rest
    assert (rest["amount"], rest["amount_refunded"], rest["payment_status"]) == (2700, 4200, "refunded")
    status, got, _ = call(outputs, "GET", f"/payments/{txn}")
    assert (got["status"], got["amount_refunded"]) == ("refunded", 4200)

    status, body, _ = refund(outputs, txn, {"amount": 1}, uuid.uuid4().hex)
    assert status == 422 and body["error"] == "amount_exceeds_refundable", body
    refunds = stripe_refunds(stripe_client, intent)
    assert sorted(r.amount for r in refunds) == [1500, 2700]
    assert stripe_client.v1.charges.retrieve(refunds[0].charge).amount_refunded == 4200


def test_stripe_refusing_what_a_concurrent_refund_took_is_422(outputs, stripe_client):
    payment = pay(outputs, stripe_client, SUCCEEDS, amount=3000)
    # A refund the platform has not heard of yet (localstripe sends no charge.refunded webhook).
    stripe_client.v1.refunds.create(params={"payment_intent": payment["payment_intent_id"], "amount": 2000})
    status, body, _ = refund(outputs, payment["transaction_id"], {"amount": 1500}, uuid.uuid4().hex)
    assert status == 422 and body["error"] == "amount_exceeds_refundable", body
    status, ok, _ = refund(outputs, payment["transaction_id"], {"amount": 1000}, uuid.uuid4().hex)
    assert status == 201 and (ok["amount_refunded"], ok["payment_status"]) == (3000, "refunded"), ok


def test_a_declined_payment_is_not_refundable(outputs, stripe_client):
    payment = pay(outputs, stripe_client, DECLINES)
    assert payment["status"] == "failed"
    status, body, _ = refund(outputs, payment["transaction_id"], None, uuid.uuid4().hex)
    assert status == 409 and body["error"] == "payment_not_refundable" and "failed" in body["message"]


def test_unknown_payment_is_404_and_the_api_key_is_required(outputs, stripe_client):
    status, body, _ = refund(outputs, str(uuid.uuid4()), {"amount": 100}, uuid.uuid4().hex)
    assert status == 404 and body["error"] == "not_found"
    payment = pay(outputs, stripe_client, SUCCEEDS)
    status, _, _ = refund(outputs, payment["transaction_id"], {"amount": 100}, uuid.uuid4().hex, api_key=False)
    assert status == 403
    assert stripe_refunds(stripe_client, payment["payment_intent_id"]) == []
