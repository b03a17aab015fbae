"""Stripe-side faults on the session's stack (issue 8, item 5), small sizes:

- webhook chaos: localstripe delivers every webhook twice, the deliveries of a window shuffled; every payment
  still ends with exactly one event per fact, contiguous, each webhook stored once in the inbox;
- localstripe stopped and started again (`python -m localdev stripe-restart`): payments made meanwhile are
  parked (202 `queued`) and all complete after it is back; what Stripe held before the stop is still there.

Each test puts the stack back as it found it (chaos off, localstripe running with its endpoint) in `finally`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import pytest

from localdev.stripe_server import clear_webhook_chaos, is_healthy, set_webhook_chaos, webhook_chaos, webhook_endpoints

from .conftest import PROJECT_ROOT
from .test_payments_api import call, eventually, payment, payment_event_types
from .test_webhook_processing import inbox_item

pytestmark = pytest.mark.e2e

CARD_OK = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}


def card(stripe_client) -> str:
    return stripe_client.v1.payment_methods.create(params=CARD_OK).id


def payment_record(outputs: dict, transaction_id: str) -> dict:
    status, got, _ = call(outputs, "GET", f"/payments/{transaction_id}")
    assert status == 200, got
    return got


def assert_contiguous(outputs: dict, aws_client, transaction_id: str) -> None:
    """The payment's stored events are numbered 1..n with no gap or repeat."""
    items = aws_client("dynamodb").query(
        TableName=outputs["table_names"]["transactions"], KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}}, ConsistentRead=True,
    )["Items"]
    sequences = sorted(int(item["sequence"]["N"]) for item in items)
    assert sequences == list(range(1, len(items) + 1)), (transaction_id, sequences)


def stripe_events_of(stripe_client, object_ids: set[str], since: int) -> list:
    """Stripe's events (newest first, as listed) about these PaymentIntents or their charges."""
    events = stripe_client.v1.events.list(params={"created": {"gte": since - 5}, "limit": 100}).auto_paging_iter()
    objects = [(e, e.data.object.to_dict()) for e in events]
    return [e for e, obj in objects if obj.get("id") in object_ids or obj.get("payment_intent") in object_ids]


def pay_concurrently(outputs: dict, methods: list[str]) -> list[tuple[int, dict, dict]]:
    """POST /payments once per payment method, all at once (fresh Idempotency-Keys); the answers in order."""
    answers: list = [None] * len(methods)

    def pay(i: int) -> None:
        answers[i] = call(outputs, "POST", "/payments", payment(methods[i]), {"Idempotency-Key": uuid.uuid4().hex})

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(len(methods))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_duplicate_and_shuffled_webhooks_change_nothing_twice(outputs, aws_client, stripe_client):
    base = outputs["stripe_api_base"]
    methods = [card(stripe_client) for _ in range(6)]
    since = int(time.time())
    chaos = set_webhook_chaos(base, duplicate=2, shuffle_window_s=4)
    assert chaos["on"] and chaos["counts"]["deliveries"] == 0
    try:
        # Concurrent, so that their webhooks fall in the same windows and are delivered shuffled.
        answers = pay_concurrently(outputs, methods)
        assert [status for status, _, _ in answers] == [201] * 6, answers
        paid = [body for _, body, _ in answers]
        # Two partial refunds of one payment: two charge.refunded of the same charge, cumulative amounts
        # 1000 then 4200, which may arrive the other way round.
        refunded = paid[0]["transaction_id"]
        for amount in (1000, 3200):
            status, body, _ = call(outputs, "POST", f"/payments/{refunded}/refunds", {"amount": amount},
                                   {"Idempotency-Key": uuid.uuid4().hex})
            assert status == 201, body

        intents = {body["payment_intent_id"] for body in paid}
        events = eventually(lambda: (found := stripe_events_of(stripe_client, intents, since)) and len(found) >= 8 and found,
                            "Stripe's events for the test's payments", timeout=30)
        assert sorted(e.type for e in events) == ["charge.refunded"] * 2 + ["payment_intent.succeeded"] * 6
        # Every delivery (duplicates included) answered 2xx, and each event was processed from one inbox item.
        # Every event taken while chaos was on (the stack's other traffic too) sent twice: `held` drops to 0 when
        # a window's flush starts, before its deliveries are sent, so the deliveries themselves are counted.
        counts = eventually(lambda: (c := webhook_chaos(base)["counts"])["held"] == 0 and c["events"] >= 8
                            and c["deliveries"] >= 2 * c["events"] and c, "every held delivery sent", timeout=60)
        for event in events:
            item = eventually(lambda: (i := inbox_item(outputs, aws_client, event.id)) and i.get("processing_status") and i,
                              f"processing of webhook {event.id}", timeout=90)
            assert item["event_type"] == event.type and item["processing_status"] in ("applied", "no_change")
    finally:
        final = clear_webhook_chaos(base)
    assert counts["failed"] == 0 and counts["duplicates"] >= 8 and counts["out_of_order"] >= 1, counts
    assert final["on"] is False

    for body in paid:
        got = payment_record(outputs, body["transaction_id"])
        types = payment_event_types(got)
        expected = "refunded" if body["transaction_id"] == refunded else "succeeded"
        assert got["status"] == expected, got
        assert types.count("payment.succeeded") == 1 and types[:2] == ["payment.created", "payment.succeeded"], types
        assert types.count("payment.refunded") == (2 if expected == "refunded" else 0), types
        assert_contiguous(outputs, aws_client, body["transaction_id"])


def test_payments_made_while_localstripe_is_stopped_are_parked_and_complete_after_its_restart(
        outputs, outputs_path, aws_client, stripe_client):
    if outputs.get("backend") != "embedded" or outputs.get("stripe_mode") != "localstripe":
        pytest.skip("stops the embedded stack's localstripe")
    base, state_dir = outputs["stripe_api_base"], outputs_path.parent
    methods = [card(stripe_client) for _ in range(5)]
    status, before, _ = call(outputs, "POST", "/payments", payment(card(stripe_client)), {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201 and before["status"] == "succeeded", before

    restart = subprocess.Popen([sys.executable, "-m", "localdev", "stripe-restart", "--state-dir", str(state_dir),
                                "--down-for", "10"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: not is_healthy(base, timeout=1), "localstripe stopping", timeout=30)
        answers = pay_concurrently(outputs, methods)  # all within the 10 s it stays down
        out, err = restart.communicate(timeout=120)
    finally:
        if restart.poll() is None:
            restart.wait(timeout=120)
        if not is_healthy(base):  # whatever happened above, the session's other tests get their Stripe back
            from localdev.stripe_faults import start_stripe

            start_stripe(state_dir)
    assert restart.returncode == 0, err
    assert "state saved" in out and "webhook endpoint kept" in out, out
    assert webhook_endpoints(base)["paystream"]["url"] == f"{outputs['api_url']}/webhooks/stripe"

    # Answered while Stripe was unreachable: accepted and parked, as DESIGN.md §2 documents.
    assert [status for status, _, _ in answers] == [202] * 5, answers
    assert {body["status"] for _, body, _ in answers} == {"queued"}
    parked = [body["transaction_id"] for _, body, _ in answers]

    def all_terminal():
        statuses = {tid: payment_record(outputs, tid)["status"] for tid in parked}
        return statuses if set(statuses.values()) == {"succeeded"} else None

    eventually(all_terminal, "every parked payment succeeding after the restart", timeout=180)
    for tid in parked:
        assert payment_event_types(payment_record(outputs, tid)) == ["payment.created", "payment.queued", "payment.succeeded"]
        assert_contiguous(outputs, aws_client, tid)
    intents = [payment_record(outputs, tid)["payment_intent_id"] for tid in parked]
    assert len(set(intents)) == 5 and all(stripe_client.v1.payment_intents.retrieve(pi).status == "succeeded" for pi in intents)

    # What Stripe held before the stop survived it: the earlier payment's PaymentIntent, refundable.
    assert stripe_client.v1.payment_intents.retrieve(before["payment_intent_id"]).amount == before["amount"]
    status, refund, _ = call(outputs, "POST", f"/payments/{before['transaction_id']}/refunds", {},
                             {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, refund
    assert eventually(lambda: payment_record(outputs, before["transaction_id"])["status"] == "refunded",
                      "the earlier payment refunded", timeout=30)
    assert json.loads((state_dir / "stack.json").read_text())["pids"]["stripe"] != restart.pid
