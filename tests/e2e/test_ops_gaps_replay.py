"""`paystream-ops gaps` and `paystream-ops replay` against the running stack.

- A relay outage (the outbox relay's event source mapping disabled) leaves stored events unpublished:
  `gaps` lists them (exit 3), `replay --source table` publishes them through the relay's code, the
  consumers then do their work (the fraud scorer scores the payments), and `gaps` no longer lists them.
- An archive replay with a pattern re-delivers the window's events to the rules those events reach and
  only to them, once, marked with the replay's name.

Each test uses its own customer id, so fraud velocity counts and observers see only its own payments, and
restores what it changed (the mapping re-enabled, the observer rule removed) whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from .test_payments_api import call, eventually, pay

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ops(stack_state_dir):
    path = Path(os.environ["PAYSTREAM_E2E_OUTPUTS"]) if stack_state_dir is None else stack_state_dir / "outputs.json"

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "paystream_ops.cli", "--outputs", str(path), *args],
                              capture_output=True, text=True, timeout=timeout)

    return run


def _iso(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stored_items(aws_client, outputs, transaction_id: str) -> list[dict]:
    return aws_client("dynamodb").query(
        TableName=outputs["table_names"]["transactions"], KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}}, ConsistentRead=True,
    )["Items"]


def _set_relay_mapping(outputs, aws_client, enabled: bool) -> None:
    """Enable or disable the outbox relay's stream mapping and wait until the local data plane follows."""
    lam = aws_client("lambda")
    function_name = outputs["function_names"]["outbox_relay"]
    [mapping] = [m for page in lam.get_paginator("list_event_source_mappings").paginate()
                 for m in page["EventSourceMappings"] if m["FunctionArn"].split(":")[-1] == function_name]
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)
    if not outputs.get("dataplane_url"):  # LocalStack runs the mappings itself
        time.sleep(5)
        return
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(f"{outputs['dataplane_url']}/_dataplane/reload", data=b"{}",
                                            method="POST"), timeout=60) as response:
        response.read()

    def following() -> bool:
        with opener.open(f"{outputs['dataplane_url']}/_dataplane/status", timeout=30) as response:
            mappings = json.loads(response.read())["mappings"]
        states = [m["state"] for m in mappings if m.get("uuid") == mapping["UUID"]]
        return bool(states) and ((states[0] == "disabled") != enabled)

    eventually(following, f"the data plane to {'run' if enabled else 'stop'} the relay's mapping", timeout=60)


def test_a_relay_outage_leaves_gaps_that_gaps_lists_and_replay_from_the_table_closes(
        outputs, aws_client, payment_method, ops):
    customer = f"cus_outage_{uuid.uuid4().hex[:10]}"
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    _set_relay_mapping(outputs, aws_client, enabled=False)
    try:
        payments = [pay(outputs, payment_method, customer_id=customer)["transaction_id"] for _ in range(3)]
        time.sleep(3)  # nothing relays them: give a working relay time it would have needed
        ours = {txn: _stored_items(aws_client, outputs, txn) for txn in payments}
        assert all(items and not any("relayed_at" in i for i in items) for items in ours.values()), \
            "events were relayed while the relay's mapping was disabled"
        event_ids = {i["event_id"]["S"] for items in ours.values() for i in items}

        listed = ops("gaps", "--grace", "0s", "--json")
        assert listed.returncode == 3, listed.stderr
        unrelayed = {gap["event_id"] for gap in json.loads(listed.stdout)["unrelayed"]}
        assert event_ids <= unrelayed

        replayed = ops("--yes", "replay", "--source", "table", "--from", _iso(start))
        assert replayed.returncode == 0, replayed.stderr + replayed.stdout

        after = ops("gaps", "--grace", "0s", "--json")
        assert after.returncode in (0, 3), after.stderr
        assert not event_ids & {gap["event_id"] for gap in json.loads(after.stdout)["unrelayed"]}
        # Published for real: the fraud scorer got each payment.created from the fraud stream and scored it.
        for txn in payments:
            eventually(lambda: any(e["type"] == "fraud.scored" for e in call(outputs, "GET", f"/payments/{txn}")[1]["events"]),
                       f"payment {txn} to be scored after the replay", timeout=60)
            status, got, _ = call(outputs, "GET", f"/payments/{txn}")
            assert status == 200 and got["status"] == "succeeded"
    finally:
        _set_relay_mapping(outputs, aws_client, enabled=True)


def test_an_archive_replay_with_a_pattern_redelivers_the_window_once_to_the_rules_it_reaches(
        outputs, aws_client, payment_method, ops):
    events, sqs = aws_client("events"), aws_client("sqs")
    suffix = uuid.uuid4().hex[:10]
    customer, bus = f"cus_replay_{suffix}", outputs["bus_name"]
    queue = sqs.create_queue(QueueName=f"e2e-replay-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"e2e-replay-observer-{suffix}"
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(
        {"detail-type": ["payment.succeeded"], "detail": {"customer_id": [customer]}}))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "observer", "Arn": queue_arn}])

    def received(wait: int = 1) -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
        for m in messages:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in messages]

    try:
        start = datetime.now(timezone.utc) - timedelta(seconds=1)
        transaction_id = pay(outputs, payment_method, customer_id=customer)["transaction_id"]
        [live] = eventually(received, "the live payment.succeeded at the observer", timeout=30)
        assert live["detail"]["transaction_id"] == transaction_id and "replay-name" not in live
        time.sleep(1)
        end = datetime.now(timezone.utc)

        name = f"e2e-{suffix}"
        result = ops("--yes", "replay", "--from", _iso(start), "--to", _iso(end), "--name", name,
                     "--pattern", json.dumps({"detail": {"customer_id": [customer]}}))
        assert result.returncode == 0, result.stderr + result.stdout
        assert events.describe_replay(ReplayName=name)["State"] == "COMPLETED"
        [again] = eventually(received, "the replayed payment.succeeded at the observer", timeout=30)
        assert again["detail"]["event_id"] == live["detail"]["event_id"] and again["replay-name"] == name
        assert received(wait=2) == []  # once, and nothing from outside the window
        # The consumers absorbed the second delivery: the payment's history is unchanged.
        status, got, _ = call(outputs, "GET", f"/payments/{transaction_id}")
        assert status == 200 and got["status"] == "succeeded"
        assert [e["type"] for e in got["events"]].count("payment.succeeded") == 1
    finally:
        events.remove_targets(Rule=rule, EventBusName=bus, Ids=["observer"])
        events.delete_rule(Name=rule, EventBusName=bus)
        sqs.delete_queue(QueueUrl=queue)
