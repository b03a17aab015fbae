"""`paystream-ops rebuild` against the running stack: a projection corrupted on purpose is found by a dry run
(exit 3, the fields named) and restored by a whole-table rebuild, after which GET /payments shows the payment
as its events say and a dry run finds nothing (exit 0).

The payment is settled first (its localstripe webhook processed, fraud.scored appended, every event relayed),
and corrupted to a status no later delivery can move (canceled), so nothing but the rebuild writes it while
the test runs. Whatever happens, the test puts the original projection back if it is still corrupted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .test_payments_api import call, eventually, pay

pytestmark = pytest.mark.e2e


def rebuild(outputs_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paystream_ops.cli", "--outputs", str(outputs_path), "rebuild", *args],
                          capture_output=True, text=True, timeout=600)


def _stripe_webhooks_processed(outputs: dict, aws_client, transaction_id: str) -> bool:
    """At least one localstripe webhook about the payment stored and processed (its outcome noted)."""
    ddb = aws_client("dynamodb")
    request = {"TableName": outputs["table_names"]["transactions"],
               "FilterExpression": "item_type = :t AND transaction_id = :id",
               "ExpressionAttributeValues": {":t": {"S": "stripe_event"}, ":id": {"S": transaction_id}}}
    while True:
        page = ddb.scan(**request)
        if any("processing_status" in item for item in page.get("Items", [])):
            return True
        if "LastEvaluatedKey" not in page:
            return False
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _settled(outputs: dict, aws_client, transaction_id: str) -> bool:
    ddb = aws_client("dynamodb")
    events = ddb.query(TableName=outputs["table_names"]["transactions"], ConsistentRead=True,
                       KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
                       ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}})["Items"]
    types = {item["event_type"]["S"] for item in events}
    return ({"payment.succeeded", "fraud.scored"} <= types and all("relayed_at" in item for item in events)
            and _stripe_webhooks_processed(outputs, aws_client, transaction_id))


def test_a_corrupted_projection_is_found_and_restored_by_rebuild(outputs, outputs_path, aws_client, payment_method):
    created = pay(outputs, payment_method, amount=4321, customer_id="cus_e2e_rebuild")
    transaction_id = created["transaction_id"]
    eventually(lambda: _settled(outputs, aws_client, transaction_id), "the payment to settle", timeout=90)
    status, original, _ = call(outputs, "GET", f"/payments/{transaction_id}")
    assert status == 200 and (original["status"], original["amount"]) == ("succeeded", 4321), original

    ddb, table = aws_client("dynamodb"), outputs["table_names"]["transactions"]
    key = {"pk": {"S": f"TXN#{transaction_id}"}, "sk": {"S": "PROJECTION"}}
    saved = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET #s = :s, amount = :a",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": "canceled"}, ":a": {"N": "1"}})
    try:
        status, corrupted, _ = call(outputs, "GET", f"/payments/{transaction_id}")
        assert (corrupted["status"], corrupted["amount"]) == ("canceled", 1)  # the API serves the projection

        found = rebuild(outputs_path, "--payment", transaction_id, "--dry-run")
        assert found.returncode == 3, found.stdout + found.stderr
        assert "status: canceled → succeeded" in found.stdout and "amount: 1 → 4321" in found.stdout, found.stdout
        assert "would change: different" in found.stdout

        applied = rebuild(outputs_path, "--yes")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        status, restored, _ = call(outputs, "GET", f"/payments/{transaction_id}")
        assert status == 200 and (restored["status"], restored["amount"]) == ("succeeded", 4321), restored
        assert restored == original  # every field, the events listed, exactly as before the corruption

        again = rebuild(outputs_path, "--dry-run", "--payment", transaction_id)
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        try:  # leave the shared stack as found, even when the rebuild did not restore it
            ddb.put_item(TableName=table, Item=saved, ConditionExpression="amount = :a",
                         ExpressionAttributeValues={":a": {"N": "1"}})
        except ddb.exceptions.ConditionalCheckFailedException:
            pass
