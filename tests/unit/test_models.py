"""API body models: every bad body of issue 3 is refused with one readable detail; good text is kept verbatim."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from paystream.models import PaymentEvent, PaymentRequest, Projection, RefundRequest, Status, validation_details

VALID = {
    "amount": 1050,
    "currency": "usd",
    "customer_id": "cus_123",
    "payment_method_id": "pm_card_visa",
    "order_id": "order-1",
}


def details(body) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as info:
        PaymentRequest.model_validate(body)
    return validation_details(info.value)


def test_minimal_body_is_accepted():
    request = PaymentRequest.model_validate(VALID)
    assert (request.amount, request.currency, request.metadata, request.country) == (1050, "usd", None, None)


def test_full_body_is_accepted_and_normalised():
    request = PaymentRequest.model_validate(
        {
            **VALID,
            "currency": "EUR",
            "description": "2 books",
            "metadata": {"cart": "42", "empty": ""},
            "device_id": "dev-1",
            "ip_address": "2001:DB8:0:0::1",
            "country": "de",
        }
    )
    assert request.currency == "eur"
    assert request.country == "DE"
    assert request.ip_address == "2001:db8::1"
    assert request.metadata == {"cart": "42", "empty": ""}


@pytest.mark.parametrize("currency", ["usd", "USD", "Usd", "jpy", "XOF"])
def test_currency_in_any_case_is_stored_lowercase(currency):
    assert PaymentRequest.model_validate({**VALID, "currency": currency}).currency == currency.lower()


def test_missing_fields_are_each_named():
    assert details({}) == [
        {"field": name, "message": "is required"}
        for name in ("amount", "currency", "customer_id", "payment_method_id", "order_id")
    ]


INTEGER_MESSAGE = "must be an integer number of minor units (e.g. 1050 for 10.50)"


@pytest.mark.parametrize(
    "amount, message",
    [
        (0, "Input should be greater than or equal to 1"),
        (-5, "Input should be greater than or equal to 1"),
        (100_000_000, "Input should be less than or equal to 99999999"),
        (10.5, INTEGER_MESSAGE),
        (10.0, INTEGER_MESSAGE),
        ("1050", INTEGER_MESSAGE),
        (True, INTEGER_MESSAGE),
        (None, INTEGER_MESSAGE),
    ],
)
def test_bad_amounts_are_refused(amount, message):
    assert details({**VALID, "amount": amount}) == [{"field": "amount", "message": message}]


@pytest.mark.parametrize("amount", [1, 99_999_999])
def test_amount_bounds_are_inclusive(amount):
    assert PaymentRequest.model_validate({**VALID, "amount": amount}).amount == amount


@pytest.mark.parametrize("currency", ["xyz", "US", "usdd", "", "hrk", "xau"])
def test_unknown_or_withdrawn_currency_is_refused(currency):
    assert details({**VALID, "currency": currency}) == [
        {"field": "currency", "message": "unknown currency: use an ISO 4217 code such as usd, eur or gbp"}
    ]


def test_non_string_currency_is_refused():
    assert details({**VALID, "currency": 840}) == [{"field": "currency", "message": "must be a string"}]


@pytest.mark.parametrize("value", [5, 1.5, True, None, ["a"], {"nested": "x"}])
def test_non_string_metadata_values_are_refused_with_their_key(value):
    assert details({**VALID, "metadata": {"ok": "fine", "order_ref": value}}) == [
        {"field": "metadata.order_ref", "message": "must be a string"}
    ]


def test_more_than_50_metadata_keys_are_refused():
    assert details({**VALID, "metadata": {f"k{i}": "v" for i in range(51)}}) == [
        {"field": "metadata", "message": "must have at most 50 keys"}
    ]
    assert len(PaymentRequest.model_validate({**VALID, "metadata": {f"k{i}": "v" for i in range(50)}}).metadata) == 50


def test_metadata_must_be_a_flat_object():
    assert details({**VALID, "metadata": ["a", "b"]}) == [
        {"field": "metadata", "message": "must be an object of string keys to string values"}
    ]


def test_overlong_metadata_key_and_value_are_refused():
    assert details({**VALID, "metadata": {"k" * 41: "v", "long": "v" * 501}}) == [
        {"field": f"metadata.{'k' * 41}", "message": "key: String should have at most 40 characters"},
        {"field": "metadata.long", "message": "String should have at most 500 characters"},
    ]


@pytest.mark.parametrize(
    "field, length",
    [("customer_id", 256), ("payment_method_id", 256), ("order_id", 256), ("device_id", 256), ("description", 1001)],
)
def test_overlong_strings_are_refused(field, length):
    assert details({**VALID, field: "x" * length}) == [
        {"field": field, "message": f"String should have at most {length - 1} characters"}
    ]
    assert getattr(PaymentRequest.model_validate({**VALID, field: "x" * (length - 1)}), field) == "x" * (length - 1)


@pytest.mark.parametrize("field", ["customer_id", "payment_method_id", "order_id"])
def test_empty_or_blank_identifiers_are_refused(field):
    assert details({**VALID, field: ""}) == [{"field": field, "message": "String should have at least 1 character"}]
    assert details({**VALID, field: "   "}) == [{"field": field, "message": "must not be blank"}]


def test_non_string_identifier_is_refused():
    assert details({**VALID, "customer_id": 123}) == [{"field": "customer_id", "message": "must be a string"}]


@pytest.mark.parametrize(
    "text",
    [
        "Zoë 支付 🙂 ﷽",
        "'; DROP TABLE transactions; --",
        "<script>alert(1)</script>",
        "{{7*7}} ${jndi:ldap://x/a} %s%n",
        "a\u0000b\r\nc",
        '{"$ne": null}',
    ],
)
def test_unicode_and_injection_looking_text_is_kept_verbatim(text):
    body = {**VALID, "customer_id": text, "order_id": text, "description": text, "metadata": {"note": text}}
    # Through JSON, as the API receives it.
    request = PaymentRequest.model_validate_json(json.dumps(body))
    assert (request.customer_id, request.order_id, request.description, request.metadata["note"]) == (text,) * 4


def test_lone_surrogate_is_refused_because_it_cannot_be_stored():
    body = '{"amount": 1050, "currency": "usd", "customer_id": "cus_\\ud800", "payment_method_id": "pm", "order_id": "o"}'
    with pytest.raises(ValidationError) as info:
        PaymentRequest.model_validate(json.loads(body))
    assert validation_details(info.value) == [
        {"field": "customer_id", "message": "contains invalid Unicode (a lone surrogate); send valid UTF-8 text"}
    ]


def test_extra_fields_are_refused():
    assert details({**VALID, "card_number": "4242424242424242", "amount_cents": 5}) == [
        {"field": "card_number", "message": "is not an accepted field: remove it"},
        {"field": "amount_cents", "message": "is not an accepted field: remove it"},
    ]


@pytest.mark.parametrize("ip", ["1.2.3", "256.1.1.1", "localhost", "::g", ""])
def test_bad_ip_address_is_refused(ip):
    assert details({**VALID, "ip_address": ip}) == [{"field": "ip_address", "message": "must be an IPv4 or IPv6 address"}]


@pytest.mark.parametrize("country", ["USA", "u", "1A", "", "D E"])
def test_bad_country_is_refused(country):
    assert details({**VALID, "country": country}) == [
        {"field": "country", "message": "must be an ISO 3166-1 alpha-2 country code such as US or DE"}
    ]


@pytest.mark.parametrize("body", [[], "payment", 42, None])
def test_body_that_is_not_an_object_is_refused(body):
    assert details(body) == [{"field": "body", "message": "must be a JSON object"}]


def test_several_errors_are_all_reported():
    fields = [d["field"] for d in details({"amount": 0, "currency": "zzz", "customer_id": "c", "order_id": "o"})]
    assert fields == ["amount", "currency", "payment_method_id"]


def test_refund_request():
    assert RefundRequest.model_validate({}).amount is None
    assert RefundRequest.model_validate({"amount": 500, "reason": "duplicate"}).reason == "duplicate"
    for body, field in [({"amount": 0}, "amount"), ({"amount": "5"}, "amount"), ({"amount": True}, "amount"),
                        ({"reason": "changed_mind"}, "reason"), ({"note": "x"}, "note")]:
        with pytest.raises(ValidationError) as info:
            RefundRequest.model_validate(body)
        assert [d["field"] for d in validation_details(info.value)] == [field]


def event(**overrides) -> PaymentEvent:
    fields = {
        "event_id": "evt-2", "event_type": "fraud.scored", "source": "paystream.fraud", "sequence": 2,
        "occurred_at": "2025-01-01T00:00:01.000Z", "transaction_id": "tx-1", "amount": 1050, "currency": "usd",
        "customer_id": "cus_123", "detail": {"risk_score": 72, "risk_factors": ["velocity"]},
    }
    return PaymentEvent(**{**fields, **overrides})


def test_bus_detail_has_the_common_fields_and_the_event_detail():
    assert event().to_bus_detail() == {
        "transaction_id": "tx-1", "event_id": "evt-2", "sequence": 2, "occurred_at": "2025-01-01T00:00:01.000Z",
        "amount": 1050, "currency": "usd", "customer_id": "cus_123", "risk_score": 72, "risk_factors": ["velocity"],
    }


def test_event_detail_cannot_shadow_the_common_fields():
    detail = event(detail={"amount": 1, "transaction_id": "other", "retryable": True}).to_bus_detail()
    assert (detail["amount"], detail["transaction_id"], detail["retryable"]) == (1050, "tx-1", True)


def test_event_timestamp_must_be_utc_with_milliseconds():
    with pytest.raises(ValidationError):
        event(occurred_at="2025-01-01T00:00:01+00:00")


def test_projection_to_api_lists_events_in_order():
    projection = Projection(
        transaction_id="tx-1", status=Status.SUCCEEDED, amount=1050, currency="usd", customer_id="cus_123",
        order_id="order-1", payment_method_id="pm", payment_intent_id="pi_1", risk_score=12,
        created_at="2025-01-01T00:00:00.000Z", updated_at="2025-01-01T00:00:02.000Z",
        based_on_event_id="evt-3", last_sequence=3, ip_address="10.0.0.1",
    )
    events = [
        event(event_id="evt-1", event_type="payment.created", sequence=1, occurred_at="2025-01-01T00:00:00.000Z"),
        event(event_id="evt-2", event_type="fraud.scored", sequence=2, occurred_at="2025-01-01T00:00:01.000Z"),
        event(event_id="evt-3", event_type="payment.succeeded", sequence=3, occurred_at="2025-01-01T00:00:02.000Z"),
    ]
    body = projection.to_api(events)
    assert json.loads(json.dumps(body)) == body  # JSON-ready as is
    assert {k: body[k] for k in ("transaction_id", "status", "amount", "currency", "customer_id", "order_id",
                                 "payment_intent_id", "risk_score", "created_at", "updated_at", "based_on_event_id")} == {
        "transaction_id": "tx-1", "status": "succeeded", "amount": 1050, "currency": "usd", "customer_id": "cus_123",
        "order_id": "order-1", "payment_intent_id": "pi_1", "risk_score": 12, "created_at": "2025-01-01T00:00:00.000Z",
        "updated_at": "2025-01-01T00:00:02.000Z", "based_on_event_id": "evt-3",
    }
    assert body["events"] == [
        {"type": "payment.created", "at": "2025-01-01T00:00:00.000Z", "id": "evt-1"},
        {"type": "fraud.scored", "at": "2025-01-01T00:00:01.000Z", "id": "evt-2"},
        {"type": "payment.succeeded", "at": "2025-01-01T00:00:02.000Z", "id": "evt-3"},
    ]
    assert "ip_address" not in body
