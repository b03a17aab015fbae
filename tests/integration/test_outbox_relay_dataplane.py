"""The outbox relay deployed into the local data plane, driven by a real DynamoDB stream mapping with
the relay's filter: stored events and webhooks reach the bus exactly once each, events get `relayed_at` (inbox
items are not marked: process_payment's outcome shows them through); projection items and MODIFYs (the relay's
own marks among them) never reach the function."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from conftest import PROJECT_ROOT, zip_files

pytestmark = pytest.mark.integration

RELAY_FILTER = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"item_type": {"S": ["event", "stripe_event"]}}}}
CORE = PROJECT_ROOT / "layers" / "core" / "python"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def core_layer(aws) -> str:
    """The paystream package as the core layer ships it (under python/): workers cannot import the editable install."""
    files = {f"python/{p.relative_to(CORE)}": p.read_bytes() for p in sorted((CORE / "paystream").rglob("*.py"))}
    return aws("lambda").publish_layer_version(LayerName=unique("core"), Content={"ZipFile": zip_files(files)},
                                               CompatibleRuntimes=["python3.12"])["LayerVersionArn"]


def event_item(transaction_id: str, sequence: int, event_type: str) -> dict:
    return {
        "pk": {"S": f"TXN#{transaction_id}"}, "sk": {"S": f"EVENT#{sequence:010d}"}, "item_type": {"S": "event"},
        "event_id": {"S": str(uuid.uuid4())}, "event_type": {"S": event_type}, "source": {"S": "paystream.payments"},
        "sequence": {"N": str(sequence)}, "occurred_at": {"S": "2026-11-22T10:00:00.000Z"},
        "transaction_id": {"S": transaction_id}, "amount": {"N": "1250"}, "currency": {"S": "eur"},
        "customer_id": {"S": "cus_1"}, "detail": {"M": {}},
    }


def test_relay_publishes_stored_events_once_through_the_stream_mapping(aws, deploy_function, dataplane):
    ddb, sqs, events, kinesis, lam = aws("dynamodb"), aws("sqs"), aws("events"), aws("kinesis"), aws("lambda")
    table = unique("transactions")
    stream_arn = ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    bus = unique("payments")
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=unique("observer"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": "paystream."}]}))
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "observer", "Arn": queue_arn}])
    fraud_stream = unique("fraud")
    kinesis.create_stream(StreamName=fraud_stream, ShardCount=1)

    handler = (PROJECT_ROOT / "lambdas" / "outbox_relay" / "handler.py").read_text()
    function_arn = deploy_function(
        unique("outbox-relay"), {"handler.py": handler}, timeout=30, layers=[core_layer(aws)],
        env={"EVENT_BUS_NAME": bus, "FRAUD_STREAM_NAME": fraud_stream, "TRANSACTIONS_TABLE": table,
             "POWERTOOLS_SERVICE_NAME": "outbox_relay"})
    mapping_uuid = lam.create_event_source_mapping(
        FunctionName=function_arn, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON", BatchSize=10,
        FilterCriteria={"Filters": [{"Pattern": json.dumps(RELAY_FILTER)}]},
        FunctionResponseTypes=["ReportBatchItemFailures"])["UUID"]
    dataplane.reload()

    items = [event_item("A", 1, "payment.created"), event_item("A", 2, "payment.processing"),
             event_item("B", 1, "payment.created"), event_item("A", 3, "payment.succeeded")]
    inbox = {"pk": {"S": "STRIPE_EVENT#evt_1"}, "sk": {"S": "INBOX"}, "item_type": {"S": "stripe_event"},
             "event_id": {"S": "evt_1"}, "event_type": {"S": "payment_intent.succeeded"}, "object_id": {"S": "pi_1"},
             "payload": {"S": json.dumps({"id": "evt_1", "type": "payment_intent.succeeded",
                                          "data": {"object": {"id": "pi_1"}}})}}
    projection = {"pk": {"S": "TXN#A"}, "sk": {"S": "PROJECTION"}, "item_type": {"S": "projection"},
                  "status": {"S": "created"}}
    for item in (*items[:2], projection, items[2], inbox, items[3]):
        ddb.put_item(TableName=table, Item=item)
    # A MODIFY of an event item, as a (hypothetical) later correction would make: never re-published.
    ddb.update_item(TableName=table, Key={"pk": items[0]["pk"], "sk": items[0]["sk"]},
                    UpdateExpression="SET note = :n", ExpressionAttributeValues={":n": {"S": "touched"}})

    published = [*items, inbox]

    def stored(item):
        return ddb.get_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]}, ConsistentRead=True)["Item"]

    eventually(lambda: all("relayed_at" in stored(item) for item in items), what="relayed_at on every event")

    # Done when the mapping has read past the last record written (the relay's own marks come last).
    def last_sequence_number():
        streams = aws("dynamodbstreams")
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return streams.get_records(ShardIterator=iterator)["Records"][-1]["dynamodb"]["SequenceNumber"]

    def mapping_status():
        return next(m for m in dataplane.status()["mappings"] if m["uuid"] == mapping_uuid)

    eventually(lambda: mapping_status()["shards"][0]["checkpoint"] == last_sequence_number(),
               what="the mapping to read past every record, the relay's marks included")

    delivered = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        delivered += [json.loads(m["Body"]) for m in batch]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    assert sorted(d["detail"]["event_id"] for d in delivered) == sorted(i["event_id"]["S"] for i in published)
    by_id = {d["detail"]["event_id"]: d for d in delivered}
    assert by_id["evt_1"]["detail-type"] == "stripe.payment_intent.succeeded"
    assert by_id["evt_1"]["source"] == "paystream.stripe"
    assert [by_id[i["event_id"]["S"]]["detail"]["sequence"] for i in (items[0], items[1], items[3])] == [1, 2, 3]
    for item in items:
        assert stored(item)["bus_event_id"]["S"] == by_id[item["event_id"]["S"]]["id"]
    assert stored(inbox) == inbox  # published, not marked
    assert "relayed_at" not in stored(projection)

    status = mapping_status()
    # projection INSERT, the MODIFY, and the relay's four marks (events only): all rejected by the filter
    assert status["filtered"] == 6 and status["failed_invocations"] == 0, status

    shard = kinesis.list_shards(StreamName=fraud_stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=fraud_stream, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert sorted(json.loads(r["Data"])["event_id"] for r in records) == sorted(
        i["event_id"]["S"] for i in (items[0], items[2]))
