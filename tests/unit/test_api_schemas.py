"""The API Gateway request models (terraform/modules/api/schemas) against the pydantic request models.

The committed schemas must be what `python -m localdev.api_schemas` generates (no drift). The gateway
schema checks the body's shape only: it must accept every body the model accepts (the gateway must
never turn away a valid payment), reject the shape errors the model rejects, and let value errors
through so the function answers them field by field (DESIGN.md §2; tests/e2e assert those answers).
"""

from __future__ import annotations

import json
import string
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from pydantic import BaseModel, Field, ValidationError

from localdev import api_schemas
from paystream.models import PaymentRequest, RefundRequest

SCHEMAS = api_schemas.SCHEMAS_DIR


def committed(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def gateway(name: str) -> Draft4Validator:
    return Draft4Validator(committed(name))


def model_accepts(model: type[BaseModel], body: Any) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


PAYMENT = {"amount": 4200, "currency": "usd", "customer_id": "cus_1", "payment_method_id": "pm_1", "order_id": "o-1"}


# -- drift ------------------------------------------------------------------------------------------


def test_committed_schemas_are_what_the_models_generate():
    stale = api_schemas.drifted()
    assert stale == [], f"run `python -m localdev.api_schemas` and commit: {[str(p) for p in stale]}"
    assert {p.name for p in SCHEMAS.glob("*.json")} == {"payment-request.json", "refund-request.json"}


def test_a_model_change_is_reported_as_drift(monkeypatch, capsys):
    class PaymentRequestWithTip(PaymentRequest):
        tip: int | None = None

    monkeypatch.setattr(api_schemas, "_request_models",
                        lambda: {"payment-request.json": PaymentRequestWithTip, "refund-request.json": RefundRequest})
    assert api_schemas.drifted() == [SCHEMAS / "payment-request.json"]
    assert api_schemas.main(["--check"]) == 1
    assert "out of date: terraform/modules/api/schemas/payment-request.json" in capsys.readouterr().err


def test_check_passes_on_the_committed_files():
    assert api_schemas.main(["--check"]) == 0


# -- draft-04 ---------------------------------------------------------------------------------------


def _keywords(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        return set(schema) | {k for v in schema.values() for k in _keywords(v)}
    if isinstance(schema, list):
        return {k for v in schema for k in _keywords(v)}
    return set()


@pytest.mark.parametrize("name", ["payment-request.json", "refund-request.json"])
def test_schemas_are_draft_04_as_api_gateway_reads_them(name):
    schema = committed(name)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    Draft4Validator.check_schema(schema)
    # Later-draft keywords and references API Gateway models cannot hold.
    assert not _keywords(schema) & {"$defs", "definitions", "$ref", "const", "examples", "propertyNames"}


class Card(BaseModel):
    kind: Literal["card"]
    last4: str = Field(pattern=r"^\d{4}$", examples=["4242"])


class Order(BaseModel):
    card: Card = Field(description="The card used.")
    cards: list[Card] | None = None
    count: int = Field(gt=0)


def test_references_are_inlined_and_later_draft_keywords_dropped():
    source = Order.model_json_schema()
    assert "$defs" in source and "exclusiveMinimum" in json.dumps(source) and '"const"' in json.dumps(source)
    schema = api_schemas.gateway_schema(Order)
    Draft4Validator.check_schema(schema)
    card = {"type": "object", "properties": {"kind": {"type": "string"}, "last4": {"type": "string"}},
            "required": ["kind", "last4"]}
    assert schema["properties"]["card"] == {"description": "The card used.", **card}
    assert schema["properties"]["cards"] == {"anyOf": [{"type": "array", "items": card}, {"type": "null"}]}
    assert schema["properties"]["count"] == {"type": "integer"}
    assert Draft4Validator(schema).is_valid({"card": {"kind": "other", "last4": "x"}, "count": 0})
    assert not Draft4Validator(schema).is_valid({"card": {"kind": "card"}, "count": 1})


def test_an_unknown_keyword_is_refused_not_dropped():
    class Tagged(BaseModel):
        ref: str = Field(json_schema_extra={"x-internal": True})

    with pytest.raises(ValueError, match=r"Tagged/ref: JSON Schema keyword\(s\) \['x-internal'\] not handled"):
        api_schemas.gateway_schema(Tagged)


# -- what the gateway accepts and rejects ----------------------------------------------------------

VALID_PAYMENTS = [
    PAYMENT,
    {**PAYMENT, "currency": "EUR", "description": "Order 1", "metadata": {"ref": "a", "empty": ""},
     "device_id": "dev-1", "ip_address": "203.0.113.7", "country": "de"},
    {**PAYMENT, "description": None, "metadata": None, "device_id": None, "ip_address": None, "country": None},
    {**PAYMENT, "metadata": {}, "amount": 99_999_999},
]

# Shape errors: the gateway turns them away before the function runs.
SHAPE_INVALID_PAYMENTS = {
    "not an object": [PAYMENT],
    "a string": "amount=4200",
    "null": None,
    "empty": {},
    **{f"no {field}": {k: v for k, v in PAYMENT.items() if k != field} for field in PAYMENT},
    "unknown field": {**PAYMENT, "card_number": "4242424242424242"},
    "amount as text": {**PAYMENT, "amount": "42.00"},
    "amount with a fraction": {**PAYMENT, "amount": 42.5},
    "amount as boolean": {**PAYMENT, "amount": True},
    "currency as number": {**PAYMENT, "currency": 840},
    "metadata as list": {**PAYMENT, "metadata": ["a"]},
    "metadata value as number": {**PAYMENT, "metadata": {"ref": 1}},
    "description as object": {**PAYMENT, "description": {"text": "x"}},
}

# Value errors: the gateway lets them through; the function names the field and the problem.
VALUE_INVALID_PAYMENTS = {
    "amount zero": {**PAYMENT, "amount": 0},
    "amount too large": {**PAYMENT, "amount": 100_000_000},
    "unknown currency": {**PAYMENT, "currency": "zzz"},
    "blank customer": {**PAYMENT, "customer_id": "   "},
    "empty order id": {**PAYMENT, "order_id": ""},
    "long payment method id": {**PAYMENT, "payment_method_id": "p" * 256},
    "long description": {**PAYMENT, "description": "x" * 70_000},
    "bad country": {**PAYMENT, "country": "USA"},
    "bad ip": {**PAYMENT, "ip_address": "999.1.1.1"},
    "too many metadata keys": {**PAYMENT, "metadata": {f"k{i}": "v" for i in range(51)}},
    "long metadata key": {**PAYMENT, "metadata": {"k" * 41: "v"}},
}


@pytest.mark.parametrize("body", VALID_PAYMENTS)
def test_valid_payments_pass_the_gateway(body):
    assert model_accepts(PaymentRequest, body)
    assert gateway("payment-request.json").is_valid(body)


@pytest.mark.parametrize("case", sorted(SHAPE_INVALID_PAYMENTS))
def test_shape_errors_are_rejected_by_the_gateway_as_by_the_model(case):
    body = SHAPE_INVALID_PAYMENTS[case]
    assert not model_accepts(PaymentRequest, body)
    assert not gateway("payment-request.json").is_valid(body)


@pytest.mark.parametrize("case", sorted(VALUE_INVALID_PAYMENTS))
def test_value_errors_reach_the_function_for_a_precise_answer(case):
    body = VALUE_INVALID_PAYMENTS[case]
    assert not model_accepts(PaymentRequest, body)
    assert gateway("payment-request.json").is_valid(body)


@pytest.mark.parametrize("body,model_ok,gateway_ok", [
    ({}, True, True),  # a full refund (API Gateway validates an empty body as {})
    ({"amount": 500, "reason": "requested_by_customer"}, True, True),
    ({"amount": None, "reason": None}, True, True),
    ({"amount": "500"}, False, False),
    ({"amount": 5.5}, False, False),
    ({"reason": 3}, False, False),
    ({"refund_all": True}, False, False),
    ([], False, False),
    ({"amount": 0}, False, True),
    ({"reason": "changed_mind"}, False, True),
])
def test_refund_bodies(body, model_ok, gateway_ok):
    assert model_accepts(RefundRequest, body) is model_ok
    assert gateway("refund-request.json").is_valid(body) is gateway_ok


# Bodies near the valid space: each field valid, invalid in value, of any JSON type, or absent.
_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))
_json = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                     max_leaves=5)
_id = st.text(alphabet=string.ascii_letters + string.digits + "_- ", min_size=1, max_size=12).filter(str.strip)
_bad_id = st.sampled_from(["", "   ", "x" * 256])
# field: (required, valid values, values of the right type the model still refuses)
_payment_fields = {
    "amount": (True, st.integers(1, 99_999_999), st.integers(-5, 0) | st.integers(100_000_000, 10**20)),
    "currency": (True, st.sampled_from(["usd", "EUR", "gbp", "jPy", "Chf"]), st.sampled_from(["zzz", "", "us dollar"])),
    "customer_id": (True, _id, _bad_id),
    "payment_method_id": (True, _id, _bad_id),
    "order_id": (True, _id, _bad_id),
    "description": (False, st.none() | st.text(max_size=30), st.just("x" * 1001)),
    "metadata": (False, st.none() | st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=20), max_size=5),
                 st.just({"": "v"}) | st.just({f"k{i}": "v" for i in range(51)})),
    "device_id": (False, st.none() | _id, _bad_id),
    "ip_address": (False, st.none() | st.sampled_from(["127.0.0.1", "::1", "2001:db8::1"]), st.sampled_from(["nope", "1.2.3"])),
    "country": (False, st.none() | st.sampled_from(["us", "DE", "fR"]), st.sampled_from(["USA", "1", ""])),
}


@st.composite
def payment_like(draw) -> tuple[dict, bool | None]:
    """(body, whether the model must accept it; None when a field of arbitrary JSON makes it unknown)."""
    body: dict = {}
    expected: bool | None = True
    for name, (required, valid, refused) in _payment_fields.items():
        mode = draw(st.sampled_from(["valid"] * 12 + ["refused", "any", "absent"]))
        if mode == "absent":
            expected = False if required else expected
        elif mode == "refused":
            body[name], expected = draw(refused), False
        elif mode == "any":
            body[name] = draw(_json)
            expected = None if expected else expected
        else:
            body[name] = draw(valid)
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(min_size=1, max_size=6).filter(lambda k: k not in _payment_fields))] = draw(_json)
        expected = False
    return body, expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(payment_like())
def test_the_gateway_never_rejects_a_body_the_model_accepts(case):
    body, expected = case
    accepted = model_accepts(PaymentRequest, body)
    if expected is not None:
        assert accepted is expected, body  # the generator knows valid bodies: the property is not vacuous
    if accepted:
        assert gateway("payment-request.json").is_valid(body), body


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["amount", "reason", "note"]),
                       st.integers(-2, 10**9) | st.sampled_from(["duplicate", "fraudulent", "requested_by_customer", "x"]) | _json,
                       max_size=3))
def test_the_gateway_never_rejects_a_refund_the_model_accepts(body):
    if model_accepts(RefundRequest, body):
        assert gateway("refund-request.json").is_valid(body), body
