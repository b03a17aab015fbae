"""`paystream-ops reconcile` against the local stack: a payment changed directly in localstripe while no webhook
can reach the platform is found (refund mismatch, exit 3), `--fix --yes` appends the reconciliation event and
stores the undelivered `charge.refunded` in the webhook inbox once, GET /payments/{id} then shows the payment
refunded, and a second reconcile over the window no longer lists it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest

pytestmark = pytest.mark.e2e

UNREACHABLE = "http://127.0.0.1:9/webhooks/stripe"  # the discard port: nothing listens, every delivery fails


def call(outputs: dict, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", "x-api-key": outputs["api_key"], **(headers or {})}
    req = urllib.request.Request(f"{outputs['api_url']}{path}", data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def eventually(check, what: str, timeout: float = 60, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def reconcile(outputs_path, *args: str) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "paystream_ops.cli", "--outputs", str(outputs_path), "reconcile",
                             *args, "--json"], capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode in (0, 1, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def failed_events(stripe_client, since: int) -> list:
    return list(stripe_client.v1.events.list(params={"delivery_success": False, "created": {"gte": since},
                                                     "limit": 100}).auto_paging_iter())


def test_a_refund_made_directly_in_localstripe_is_found_and_fixed(outputs, outputs_path, stripe_client, aws_client):
    from localdev.stripe_server import is_healthy, register_webhook, webhook_endpoints

    if outputs.get("stripe_mode") == "test-mode" or not is_healthy(outputs["stripe_api_base"]):
        pytest.skip("needs the local Stripe launcher (localstripe), not real Stripe")
    base, secret = outputs["stripe_api_base"], outputs["webhook_secret"]
    dynamodb, table = aws_client("dynamodb"), outputs["table_names"]["transactions"]
    start = datetime.now(timezone.utc) - timedelta(seconds=1)

    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id
    status, payment = call(outputs, "POST", "/payments", {
        "amount": 4200, "currency": "usd", "customer_id": "cus_e2e_reconcile", "payment_method_id": method,
        "order_id": f"order-{uuid.uuid4().hex[:8]}"}, {"Idempotency-Key": uuid.uuid4().hex})
    assert status == 201 and payment["status"] == "succeeded", payment
    tid, pid = payment["transaction_id"], payment["payment_intent_id"]
    # localstripe's own payment_intent.succeeded reaches the platform first (it is sent 1 s after the charge).
    eventually(lambda: [e for e in stripe_client.v1.events.list(params={
        "delivery_success": True, "created": {"gte": int(start.timestamp())}, "limit": 100}).auto_paging_iter()
        if e.type == "payment_intent.succeeded" and e.data.object.id == pid], "the success webhook delivered")

    endpoint = webhook_endpoints(base)["paystream"]
    try:
        # No webhook reaches the platform while the PaymentIntent's charge is refunded directly at localstripe.
        register_webhook(base, "paystream", UNREACHABLE, secret)
        refund = stripe_client.v1.refunds.create(params={"payment_intent": pid})
        undelivered = eventually(lambda: [e for e in failed_events(stripe_client, int(start.timestamp()))
                                          if e.type == "charge.refunded" and e.data.object.id == refund.charge],
                                 "the charge.refunded event")[0]
        time.sleep(3)  # localstripe sends after 1 s; the connection is refused at once
    finally:
        register_webhook(base, "paystream", endpoint["url"], secret)
    assert webhook_endpoints(base)["paystream"]["url"] == endpoint["url"]
    assert call(outputs, "GET", f"/payments/{tid}")[1]["status"] == "succeeded"  # the platform heard nothing

    window = ["--from", iso(start), "--to", iso(datetime.now(timezone.utc) + timedelta(seconds=1))]
    code, report = reconcile(outputs_path, *window)
    assert code == 3
    mine = [m for m in report["mismatches"] if m["transaction_id"] == tid]
    assert [(m["kind"], m["fixable"]) for m in mine] == [("refund", True)], mine
    assert (mine[0]["platform"], mine[0]["stripe"]) == ("amount_refunded 0", "amount_refunded 4200")
    listed = {e["id"]: e for e in report["failed_deliveries"]["events"]}
    assert listed[undelivered.id]["here"] is False and listed[undelivered.id]["type"] == "charge.refunded"

    code, fixed = reconcile(outputs_path, *window, "--fix", "--yes")
    assert code == 0, fixed["fix"]
    assert {"transaction_id": tid, "appended": ["payment.refunded"], "dry_run": False} in fixed["fix"]["appended"]
    assert undelivered.id in fixed["failed_deliveries"]["ingested"]

    got = eventually(lambda: (lambda body: body if body["status"] == "refunded" else None)(
        call(outputs, "GET", f"/payments/{tid}")[1]), "the payment refunded")
    assert got["amount_refunded"] == 4200
    assert [e["type"] for e in got["events"]].count("payment.refunded") == 1
    events = dynamodb.query(TableName=table, KeyConditionExpression="pk = :pk",
                            ExpressionAttributeValues={":pk": {"S": f"TXN#{tid}"}}, ConsistentRead=True)["Items"]
    refunded = [e for e in events if e.get("event_type", {}).get("S") == "payment.refunded"]
    assert refunded[0]["detail"]["M"]["reconciled"]["BOOL"] is True

    # The undelivered event is in the webhook inbox once; relayed and processed like any webhook, it finds
    # the refund already recorded and appends nothing.
    key = {"pk": {"S": f"STRIPE_EVENT#{undelivered.id}"}, "sk": {"S": "INBOX"}}
    item = eventually(lambda: (lambda i: i if i and i.get("processing_status") else None)(
        dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")), "the ingested event processed")
    assert item["event_type"]["S"] == "charge.refunded" and item["processing_status"]["S"] == "no_change"

    code, again = reconcile(outputs_path, *window)
    assert not [m for m in again["mismatches"] if m["transaction_id"] == tid]
    assert {e["id"]: e["here"] for e in again["failed_deliveries"]["events"]}[undelivered.id] is True
    assert code == 0, again["mismatches"]
