"""Fraud scoring through the local stack: POST /payments → outbox relay → Kinesis fraud stream →
fraud_scorer → `fraud.scored` appended to the payment (GET /payments/{id} shows it and its risk score).

A card-testing burst is flagged, an ordinary customer is not, and a malformed record put straight onto
the stream ends in the scorer's on-failure queue while later records of its shard are still scored."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .test_payments_api import call, eventually, pay

pytestmark = pytest.mark.e2e


def scored(outputs: dict, transaction_id: str) -> dict | None:
    got = call(outputs, "GET", f"/payments/{transaction_id}")[1]
    return got if "fraud.scored" in [e["type"] for e in got["events"]] and got["risk_score"] is not None else None


def fraud_scored_detail(outputs: dict, aws_client, transaction_id: str) -> dict:
    items = aws_client("dynamodb").query(
        TableName=outputs["table_names"]["transactions"], KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
        ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}}, ConsistentRead=True,
    )["Items"]
    (item,) = [i for i in items if i["event_type"]["S"] == "fraud.scored"]
    assert item["source"]["S"] == "paystream.fraud"
    detail = item["detail"]["M"]
    return {"risk_score": int(detail["risk_score"]["N"]),
            "codes": [factor["M"]["code"]["S"] for factor in detail["risk_factors"]["L"]]}


def test_an_ordinary_customers_payments_are_scored_below_review(outputs, aws_client, payment_method):
    customer = f"cus_ordinary_{uuid.uuid4().hex[:8]}"
    bodies = [pay(outputs, payment_method, customer_id=customer, amount=amount, device_id="laptop-1",
                  ip_address="192.0.2.10", country="DE") for amount in (4200, 3900, 4500)]

    results = [eventually(lambda tid=body["transaction_id"]: scored(outputs, tid), "fraud.scored on the payment",
                          timeout=60) for body in bodies]

    assert [result["risk_score"] for result in results] == [0, 0, 0]
    assert all(result["status"] == "succeeded" for result in results)  # a score below review never holds one
    assert fraud_scored_detail(outputs, aws_client, bodies[0]["transaction_id"]) == {"risk_score": 0, "codes": []}


def test_a_card_testing_burst_is_flagged_and_alerted_once_per_payment(outputs, aws_client, payment_method,
                                                                      subscribe_to_topic):
    alerts_url = subscribe_to_topic("fraud-alerts")
    customer, device = f"cus_tester_{uuid.uuid4().hex[:8]}", f"device-{uuid.uuid4().hex[:8]}"
    bodies = [pay(outputs, payment_method, customer_id=customer, amount=100 + 5 * i, device_id=device,
                  ip_address="198.51.100.23", country="US") for i in range(20)]

    scores = {body["transaction_id"]: eventually(lambda tid=body["transaction_id"]: scored(outputs, tid),
                                                 "fraud.scored on the payment", timeout=90)["risk_score"]
              for body in bodies}

    # Every payment is scored once; from its third small payment on the customer (and the device) is
    # card testing: the first payment scored has no history and scores 0.
    assert min(scores.values()) == 0
    flagged = {tid for tid, score in scores.items() if score >= 70}
    assert len(flagged) >= 18, scores
    last = fraud_scored_detail(outputs, aws_client, bodies[-1]["transaction_id"])
    assert last["risk_score"] >= 70
    assert {"card_testing_customer", "card_testing_device", "velocity"} <= set(last["codes"])

    # One alert per flagged payment on fraud-alerts (none for the others), with the score and its reasons.
    # With automatic capture the money had moved before the score arrived: the alert says so.
    alerts: dict[str, list[dict]] = {}

    def receive() -> bool:
        sqs = aws_client("sqs")
        for message in sqs.receive_message(QueueUrl=alerts_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            alert = json.loads(json.loads(message["Body"])["Message"])
            if alert["transaction_id"] in scores:
                alerts.setdefault(alert["transaction_id"], []).append(alert)
            sqs.delete_message(QueueUrl=alerts_url, ReceiptHandle=message["ReceiptHandle"])
        return set(alerts) >= flagged

    eventually(receive, "an alert for every flagged payment", timeout=90)
    deadline = time.monotonic() + 5  # and no second alert for any of them
    while time.monotonic() < deadline:
        receive()
    assert set(alerts) == flagged
    assert all(len(received) == 1 for received in alerts.values()), {t: len(a) for t, a in alerts.items()}
    sample = alerts[bodies[-1]["transaction_id"]][0]
    assert (sample["risk_score"], sample["action"], sample["status"]) == (scores[bodies[-1]["transaction_id"]],
                                                                        "already_captured", "succeeded")
    assert {f["code"] for f in sample["risk_factors"]} == set(last["codes"])
    assert all(call(outputs, "GET", f"/payments/{tid}")[1]["status"] == "succeeded" for tid in scores)


def test_a_malformed_record_goes_to_the_on_failure_queue_without_blocking_its_shard(outputs, aws_client,
                                                                                   payment_method):
    sqs, kinesis = aws_client("sqs"), aws_client("kinesis")
    failures_url = outputs["dlq_urls"]["fraud-scoring-failures-destination"]
    customer = f"cus_after_poison_{uuid.uuid4().hex[:8]}"
    # The relay's partition key is the customer id: the poison record and the customer's payment share a shard.
    poison = kinesis.put_record(StreamName=outputs["stream_name"], PartitionKey=customer,
                                Data=b'{"transaction_id": "not a payment record"}')

    body = pay(outputs, payment_method, customer_id=customer, device_id="phone-1", country="FR")

    assert eventually(lambda: scored(outputs, body["transaction_id"]), "the later payment to be scored", timeout=120)

    def poison_reported() -> dict | None:
        for message in sqs.receive_message(QueueUrl=failures_url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=5).get("Messages", []):
            document = json.loads(message["Body"])
            info = document.get("KinesisBatchInfo") or {}
            if info.get("shardId") == poison["ShardId"] and info.get("startSequenceNumber") == poison["SequenceNumber"]:
                sqs.delete_message(QueueUrl=failures_url, ReceiptHandle=message["ReceiptHandle"])
                return document
        return None

    document = eventually(poison_reported, "the poison record in the on-failure queue", timeout=120)
    assert document["KinesisBatchInfo"]["batchSize"] == 1
    assert document["requestContext"]["functionArn"].endswith(outputs["function_names"]["fraud_scorer"])
