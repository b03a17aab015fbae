"""Stripe down → payments accepted and parked (202) → Stripe back → every parked payment completes."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest

from .test_payments_api import call, payment, payment_event_types

pytestmark = pytest.mark.e2e


def set_outage(outputs: dict, down: bool) -> None:
    # The local Stripe's fault-injection switch (scripts/localdev/stripe_server.py).
    req = urllib.request.Request(f"{outputs['stripe_api_base']}/_localdev/outage", method="POST",
                                 data=json.dumps({"down": down}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read()) == {"outage": down}


def test_payments_parked_during_an_outage_all_complete_afterwards(outputs, aws_client, stripe_client):
    methods = [stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    ).id for _ in range(7)]
    set_outage(outputs, True)
    try:
        answers = [call(outputs, "POST", "/payments", payment(pm), {"Idempotency-Key": uuid.uuid4().hex}) for pm in methods]
    finally:
        set_outage(outputs, False)
    assert [status for status, _, _ in answers] == [202] * 7, answers
    assert {body["status"] for _, body, _ in answers} == {"queued"}
    transaction_ids = [body["transaction_id"] for _, body, _ in answers]

    deadline = time.monotonic() + 180
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {tid: call(outputs, "GET", f"/payments/{tid}")[1]["status"] for tid in transaction_ids}
        if set(statuses.values()) == {"succeeded"}:
            break
        time.sleep(1)
    assert set(statuses.values()) == {"succeeded"}, statuses
    for tid in transaction_ids:
        events = payment_event_types(call(outputs, "GET", f"/payments/{tid}")[1])
        assert events == ["payment.created", "payment.queued", "payment.succeeded"]
    dlq = outputs["dlq_urls"]["parked-payments"]
    attributes = aws_client("sqs").get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
