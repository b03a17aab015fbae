"""lambdas/process_payment through SQS events, on in-process moto (table, process-payment queue, ops-alerts topic)."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from lambda_testing import LambdaContext, create_transactions_table

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.models import PaymentRequest
from paystream.payments import append_event
from paystream.states import apply, created_event
from paystream.store import EventStore

HANDLER = Path(__file__).resolve().parents[2] / "lambdas" / "process_payment" / "handler.py"
REGION = "us-east-1"
REQUEST = PaymentRequest(amount=5000, currency="usd", customer_id="cus_1", payment_method_id="pm_1", order_id="o-1")


def Context() -> LambdaContext:
    return LambdaContext("process_payment", 20_000)


@pytest.fixture()
def stack(monkeypatch):
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_transactions_table(ddb)
        sqs = boto3.client("sqs", region_name=REGION)
        queue_url = sqs.create_queue(QueueName="process-payment")["QueueUrl"]
        alerts_url = sqs.create_queue(QueueName="ops-alerts-subscriber")["QueueUrl"]
        sns = boto3.client("sns", region_name=REGION)
        topic_arn = sns.create_topic(Name="ops-alerts")["TopicArn"]
        alerts_arn = sqs.get_queue_attributes(QueueUrl=alerts_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=alerts_arn, Attributes={"RawMessageDelivery": "true"})
        for key, value in {
            "TRANSACTIONS_TABLE": "transactions", "OPS_ALERTS_TOPIC_ARN": topic_arn,
            "PROCESS_PAYMENT_QUEUE_URL": queue_url, "UNMATCHED_RETRY_RECEIVES": "3",
            "UNMATCHED_RETRY_DELAY_SECONDS": "30", "POWERTOOLS_SERVICE_NAME": "process_payment",
        }.items():
            monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("process_payment_under_test", HANDLER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        store = EventStore(DynamoDBTransactionsTable(ddb, "transactions"))
        yield {"handler": module, "store": store, "ddb": ddb, "sqs": sqs, "queue_url": queue_url,
               "alerts_url": alerts_url}


def new_payment(store: EventStore, transaction_id: str = "tx-1", payment_intent_id: str = "pi_1"):
    first = created_event(transaction_id, REQUEST)
    projection = apply(None, first)
    store.create(projection, first)
    return append_event(store, projection, "payment.processing", {"payment_intent_id": payment_intent_id})


def bus_body(event_type: str, data_object: dict, event_id: str) -> str:
    event = {"id": event_id, "object": "event", "type": event_type, "data": {"object": data_object}}
    return json.dumps({"version": "0", "id": f"bus-{event_id}", "source": "paystream.stripe",
                       "detail-type": f"stripe.{event_type}", "detail": {
                           "event_id": event_id, "stripe_event_id": event_id, "stripe_event_type": event_type,
                           "object_id": data_object.get("id"), "event": event}})


def record(body: str, message_id: str, receive_count: int = 1, receipt_handle: str = "rh") -> dict:
    return {"messageId": message_id, "receiptHandle": receipt_handle, "body": body,
            "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1700000000000",
                           "SenderId": "x", "ApproximateFirstReceiveTimestamp": "1700000000000"},
            "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:process-payment", "awsRegion": REGION}


def succeeded(event_id: str, transaction_id: str = "tx-1") -> str:
    return bus_body("payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent", "status": "succeeded",
                                                 "metadata": {"transaction_id": transaction_id}}, event_id)


def emf_counts(captured: str) -> dict[str, float]:
    """Each EMF metric's total over the captured output (one blob per invocation, values listed per add)."""
    totals: dict[str, float] = {}
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    values = blob[metric["Name"]]
                    totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values if isinstance(values, list) else [values])
    return totals


def test_a_batch_applies_good_records_and_fails_only_the_malformed_ones(stack, capsys):
    new_payment(stack["store"])
    event = {"Records": [
        record(succeeded("evt_1"), "m-good"),
        record("this is not json", "m-not-json"),
        record(json.dumps({"source": "paystream.payments", "detail-type": "payment.created", "detail": {}}), "m-wrong-source"),
        record(succeeded("evt_2"), "m-duplicate"),
    ]}
    log_lines = io.StringIO()
    stack["handler"].logger.registered_handler.setStream(log_lines)
    capsys.readouterr()
    result = stack["handler"].handler(event, Context())
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["m-not-json", "m-wrong-source"]
    projection, events = stack["store"].load("tx-1")
    assert projection.status == "succeeded"
    assert [e.event_type for e in events] == ["payment.created", "payment.processing", "payment.succeeded"]
    out = capsys.readouterr().out
    counts = emf_counts(out)
    assert (counts["WebhooksProcessed"], counts["PaymentEventsAppended"], counts["WebhooksMalformed"]) == (2, 1, 2)
    logs = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    malformed = [log for log in logs if log["message"].startswith("malformed record")]
    assert {(log["level"], log["message_id"]) for log in malformed} == {("ERROR", "m-not-json"), ("ERROR", "m-wrong-source")}
    assert all("stripe_event_id" not in log for log in malformed)  # no key left over from the record before
    processed = [log for log in logs if log["message"] == "Stripe event processed"]
    assert [(log["transaction_id"], log["stripe_event_id"], log["outcome"]) for log in processed] == [
        ("tx-1", "evt_1", "applied"), ("tx-1", "evt_2", "no_change")]


def test_an_unmatched_event_comes_back_soon_then_is_recorded_and_alerted(stack, capsys):
    sqs, ddb = stack["sqs"], stack["ddb"]
    body = bus_body("charge.refunded", {"id": "ch_9", "object": "charge", "amount_refunded": 100,
                                        "payment_intent": "pi_foreign"}, "evt_foreign")
    ddb.put_item(TableName="transactions", Item={"pk": {"S": "STRIPE_EVENT#evt_foreign"}, "sk": {"S": "INBOX"},
                                                 "item_type": {"S": "stripe_event"}, "payload": {"S": "{}"}})
    sqs.send_message(QueueUrl=stack["queue_url"], MessageBody=body)
    message = sqs.receive_message(QueueUrl=stack["queue_url"], VisibilityTimeout=0)["Messages"][0]

    first = stack["handler"].handler({"Records": [record(body, "m-1", 1, message["ReceiptHandle"])]}, Context())
    assert first == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    # Its visibility was set to the retry delay (30 s × 1 here): not visible right away.
    assert not sqs.receive_message(QueueUrl=stack["queue_url"]).get("Messages")
    assert not sqs.receive_message(QueueUrl=stack["alerts_url"]).get("Messages")

    capsys.readouterr()
    last = stack["handler"].handler({"Records": [record(body, "m-1", 3)]}, Context())
    assert last == {"batchItemFailures": []}
    [alert] = sqs.receive_message(QueueUrl=stack["alerts_url"], WaitTimeSeconds=1)["Messages"]
    message = json.loads(alert["Body"])
    assert (message["alert"], message["stripe_event_id"], message["stripe_event_type"], message["object_id"]) == (
        "unmatched_stripe_event", "evt_foreign", "charge.refunded", "ch_9")
    inbox = ddb.get_item(TableName="transactions", Key={"pk": {"S": "STRIPE_EVENT#evt_foreign"}, "sk": {"S": "INBOX"}})["Item"]
    assert inbox["processing_status"] == {"S": "unmatched"} and "processed_at" in inbox
    assert emf_counts(capsys.readouterr().out)["WebhooksUnmatched"] == 1


def test_a_charge_event_racing_the_link_is_matched_on_a_later_delivery(stack):
    store = stack["store"]
    first = created_event("tx-1", REQUEST)
    projection = apply(None, first)
    store.create(projection, first)
    body = bus_body("charge.dispute.created", {"id": "dp_1", "object": "dispute", "amount": 5000, "charge": "ch_1",
                                               "payment_intent": "pi_1", "reason": "fraudulent"}, "evt_dispute")
    assert stack["handler"].handler({"Records": [record(body, "m-1", 1)]}, Context())["batchItemFailures"]
    append_event(store, projection, "payment.succeeded", {"payment_intent_id": "pi_1"})
    assert stack["handler"].handler({"Records": [record(body, "m-1", 2)]}, Context()) == {"batchItemFailures": []}
    assert store.get_projection("tx-1").status == "disputed"


def test_a_record_that_fails_for_any_other_reason_is_logged_with_its_event_id(stack, capsys):
    # A bad deploy: the function points at a table that does not exist (the DLQ drill's fault).
    stack["ddb"].delete_table(TableName="transactions")
    log_lines = io.StringIO()
    stack["handler"].logger.registered_handler.setStream(log_lines)
    capsys.readouterr()
    result = stack["handler"].handler({"Records": [record(succeeded("evt_9"), "m-9", receive_count=2)]}, Context())
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["m-9"]
    logs = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    [failed] = [log for log in logs if log["message"].startswith("record failed")]
    assert (failed["level"], failed["stripe_event_id"], failed["record_id"]) == ("ERROR", "evt_9", "m-9")
    assert "ResourceNotFoundException" in failed["exception"]
    # The failures the handler logs itself (unmatched for now, malformed) are not logged a second time.
    log_lines.truncate(0)
    log_lines.seek(0)
    stack["handler"].handler({"Records": [record("not json", "m-10")]}, Context())
    assert [json.loads(line)["message"][:16] for line in log_lines.getvalue().splitlines()
            if json.loads(line)["level"] == "ERROR"] == ["malformed record"]
