"""POST /payments and GET /payments/{id} through the local stack's REST API, with localstripe behind it."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

pytestmark = pytest.mark.e2e


def call(outputs: dict, method: str, path: str, body: dict | bytes | None = None, headers: dict | None = None,
         api_key: bool = True) -> tuple[int, dict, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **({"x-api-key": outputs["api_key"]} if api_key else {}), **(headers or {})}
    req = urllib.request.Request(f"{outputs['api_url']}{path}", data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def payment(payment_method: str, **overrides) -> dict:
    return {"amount": 4200, "currency": "USD", "customer_id": "cus_e2e", "payment_method_id": payment_method,
            "order_id": f"order-{uuid.uuid4().hex[:8]}", **overrides}


def pay(outputs: dict, payment_method: str, **fields) -> dict:
    """POST /payments with a fresh Idempotency-Key; the payment must be accepted (201)."""
    status, body, _ = call(outputs, "POST", "/payments", payment(payment_method, **fields),
                           {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, body
    return body


def payment_event_types(got: dict) -> list[str]:
    """The types of a GET /payments/{id} body's events without `fraud.scored`: the fraud scorer appends it
    asynchronously (Kinesis → fraud_scorer), anywhere after `payment.created`."""
    return [e["type"] for e in got["events"] if e["type"] != "fraud.scored"]


def eventually(check, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def test_a_payment_is_taken_recorded_and_relayed(outputs, aws_client, stripe_client, payment_method):
    status, body, _ = call(outputs, "POST", "/payments", payment(payment_method), {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201, body
    assert body["status"] == "succeeded" and body["amount"] == 4200 and body["currency"] == "usd"
    intent = stripe_client.v1.payment_intents.retrieve(body["payment_intent_id"])
    assert intent.metadata["transaction_id"] == body["transaction_id"] and intent.amount == 4200

    status, got, _ = call(outputs, "GET", f"/payments/{body['transaction_id']}")
    assert status == 200 and got["status"] == "succeeded"
    assert payment_event_types(got) == ["payment.created", "payment.succeeded"]

    # The outbox relay publishes every stored event and marks it.
    ddb = aws_client("dynamodb")

    def relayed():
        items = ddb.query(
            TableName=outputs["table_names"]["transactions"], KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
            ExpressionAttributeValues={":p": {"S": f"TXN#{body['transaction_id']}"}, ":e": {"S": "EVENT#"}},
            ConsistentRead=True,
        )["Items"]
        payment_events = [i for i in items if i["event_type"]["S"] != "fraud.scored"]
        return len(payment_events) == 2 and all("relayed_at" in i for i in items)

    eventually(relayed, "relaying both events")


def test_replay_conflict_and_missing_key(outputs, payment_method):
    key = uuid.uuid4().hex
    request = payment(payment_method)
    first = call(outputs, "POST", "/payments", request, {"Idempotency-Key": key})
    again = call(outputs, "POST", "/payments", request, {"Idempotency-Key": key})
    other = call(outputs, "POST", "/payments", {**request, "amount": 4300}, {"Idempotency-Key": key})
    assert first[0] == 201
    assert again[0] == 200 and again[1] == first[1] and again[2].get("Idempotent-Replayed") == "true"
    assert other[0] == 422 and other[1]["error"] == "idempotency_key_reused"
    missing = call(outputs, "POST", "/payments", request)
    assert missing[0] == 400 and missing[1]["details"][0]["field"] == "Idempotency-Key"


def test_api_key_is_required(outputs, payment_method):
    status, body, _ = call(outputs, "POST", "/payments", payment(payment_method), {"Idempotency-Key": "k"}, api_key=False)
    assert status == 403
    assert call(outputs, "GET", "/payments/whatever", api_key=False)[0] == 403


def test_bad_input_is_a_4xx_with_a_message(outputs, payment_method):
    bad = call(outputs, "POST", "/payments", payment(payment_method, amount=0, currency="zzz"), {"Idempotency-Key": "bad-1"})
    assert bad[0] == 400 and {d["field"] for d in bad[1]["details"]} == {"amount", "currency"}
    big = call(outputs, "POST", "/payments", payment(payment_method, description="x" * 70_000), {"Idempotency-Key": "bad-2"})
    assert big[0] == 413
    assert call(outputs, "GET", f"/payments/{uuid.uuid4()}")[0] == 404


def test_fifty_concurrent_requests_with_one_key_make_one_payment(outputs, stripe_client, payment_method):
    key = uuid.uuid4().hex
    request = payment(payment_method)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def send():
        status, body, _ = call(outputs, "POST", "/payments", request, {"Idempotency-Key": key})
        with lock:
            results.append((status, body))

    threads = [threading.Thread(target=send) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, statuses
    transaction_ids = {body["transaction_id"] for status, body in results if status in (200, 201)}
    assert len(transaction_ids) == 1
    (transaction_id,) = transaction_ids
    intents = [pi for pi in stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if pi.metadata and pi.metadata.to_dict().get("transaction_id") == transaction_id]
    assert len(intents) == 1
    assert payment_event_types(call(outputs, "GET", f"/payments/{transaction_id}")[1]) == [
        "payment.created", "payment.succeeded"]


def test_a_crash_after_the_stripe_call_then_retries_make_one_payment_intent(outputs, stripe_client, payment_method):
    # The local environment lets a request crash initiate_payment between the Stripe call and the
    # event append (X-Paystream-Fault); the client then retries as it would after any 5xx.
    key = uuid.uuid4().hex
    request = payment(payment_method)
    crashed = call(outputs, "POST", "/payments", request, {"Idempotency-Key": key, "X-Paystream-Fault": "after_stripe_call"})
    assert crashed[0] == 502
    deadline = time.monotonic() + 60
    while True:  # 409 while the crashed attempt's idempotency record is still in progress (up to the timeout)
        status, body, _ = call(outputs, "POST", "/payments", request, {"Idempotency-Key": key})
        if status != 409 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert status == 201, body
    assert body["status"] == "succeeded"
    intents = [pi for pi in stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
               if pi.metadata and pi.metadata.to_dict().get("transaction_id") == body["transaction_id"]]
    assert [pi.id for pi in intents] == [body["payment_intent_id"]]
    events = payment_event_types(call(outputs, "GET", f"/payments/{body['transaction_id']}")[1])
    assert events == ["payment.created", "payment.succeeded"]
