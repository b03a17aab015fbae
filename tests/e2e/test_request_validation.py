"""API Gateway request validation on POST /payments and the refunds route, through the local stack.

The gateway's model (terraform/modules/api/schemas, generated from paystream.models) turns away
bodies of the wrong shape before the function runs, answering in the contract's 400 shape (the
BAD_REQUEST_BODY gateway response); value errors still reach the function, which names each field.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.e2e


def call(outputs: dict, path: str, body: bytes, headers: dict | None = None):
    """(status, JSON body, response headers: case-insensitive)."""
    hdrs = {"Content-Type": "application/json", "x-api-key": outputs["api_key"],
            "Idempotency-Key": uuid.uuid4().hex, **(headers or {})}
    req = urllib.request.Request(f"{outputs['api_url']}{path}", data=body, method="POST", headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), err.headers


PAYMENT = {"amount": 4200, "currency": "usd", "customer_id": "cus_e2e_validation", "payment_method_id": "pm_x",
           "order_id": "order-validation"}


@pytest.mark.parametrize("body", [
    json.dumps({**PAYMENT, "amount": "42.00"}).encode(),
    json.dumps({k: v for k, v in PAYMENT.items() if k != "order_id"}).encode(),
    json.dumps({**PAYMENT, "card_number": "4242424242424242"}).encode(),
    b"[]",
    b"{not json",
])
def test_a_body_of_the_wrong_shape_is_refused_by_the_gateway(outputs, body):
    status, answer, headers = call(outputs, "/payments", body)
    assert status == 400
    # API Gateway's own answer (the function never ran), in the contract's shape.
    assert headers.get("x-amzn-ErrorType") == "BadRequestException"
    assert answer["error"] == "validation_error" and answer["details"][0]["field"] == "body"


def test_value_errors_are_answered_by_the_function_field_by_field(outputs):
    status, answer, headers = call(outputs, "/payments", json.dumps({**PAYMENT, "amount": 0, "currency": "zzz"}).encode())
    assert status == 400 and headers.get("x-amzn-ErrorType") is None
    assert {d["field"] for d in answer["details"]} == {"amount", "currency"}


def test_refund_bodies_are_validated_and_an_empty_one_still_reaches_the_function(outputs):
    status, answer, headers = call(outputs, f"/payments/{uuid.uuid4()}/refunds", b'{"amount": "5.00"}')
    assert status == 400 and headers.get("x-amzn-ErrorType") == "BadRequestException"
    # No body is a full refund: the gateway lets it through and the function answers (unknown payment).
    status, answer, _ = call(outputs, f"/payments/{uuid.uuid4()}/refunds", b"")
    assert status == 404 and answer["error"] == "not_found"
