"""Event source mapping pollers against the emulator, one test per Lambda semantic.

Most tests drive PollerManager in-process with mapping dicts and a recording fake `invoke`, so each
isolates one behaviour; the last tests go through CreateEventSourceMapping and the real data plane.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Callable

import pytest

from conftest import ACCOUNT_ID, REGION
from localdev.dataplane.pollers import PollerManager, discover_mappings
from localdev.dataplane.types import InvokeResult

pytestmark = pytest.mark.integration

FAKE_FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:recorder"


def eventually(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Recorder:
    """A fake `invoke`: records each batch's records; `respond(records)` decides the outcome (default: success)."""

    def __init__(self, respond: Callable[[list[dict]], InvokeResult] | None = None):
        self.batches: list[list[dict]] = []
        self.lock = threading.Lock()
        self.respond = respond or (lambda records: ok())

    def __call__(self, function_arn: str, payload: bytes) -> InvokeResult:
        assert function_arn == FAKE_FUNCTION_ARN
        records = json.loads(payload)["Records"]
        with self.lock:
            self.batches.append(records)
        return self.respond(records)

    def snapshot(self) -> list[list[dict]]:
        with self.lock:
            return list(self.batches)

    def bodies(self) -> list[list[str]]:
        return [[r["body"] for r in batch] for batch in self.snapshot()]

    def payloads(self) -> list[list[str]]:
        """Kinesis data, decoded."""
        return [[base64.b64decode(r["kinesis"]["data"]).decode() for r in batch] for batch in self.snapshot()]


def ok(document: object = None) -> InvokeResult:
    return InvokeResult(ok=True, payload=json.dumps(document).encode())


def failed() -> InvokeResult:
    return InvokeResult(ok=False, payload=b'{"errorMessage": "boom", "errorType": "ValueError"}', error_type="ValueError")


def mapping(source_arn: str, **config) -> dict:
    return {"UUID": str(uuid.uuid4()), "FunctionArn": FAKE_FUNCTION_ARN, "EventSourceArn": source_arn,
            "State": "Enabled", **config}


@pytest.fixture()
def run_pollers(aws):
    """run_pollers(recorder, *mappings, clock=…) -> a started PollerManager, stopped after the test."""
    managers: list[PollerManager] = []

    def run(recorder: Recorder, *mappings: dict, clock: Callable[[], float] = time.time) -> PollerManager:
        manager = PollerManager(aws, recorder, clock=clock)
        managers.append(manager)
        manager.sync(list(mappings))
        return manager

    yield run
    for manager in managers:
        manager.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- SQS -------------------------------------------------------------------------------------------

def make_queue(aws, **attributes) -> tuple[str, str]:
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName=unique("q"), Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def queue_depth(aws, url: str) -> int:
    attrs = aws("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def in_flight(aws, url: str) -> int:
    attrs = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


def send(aws, url: str, *bodies: str) -> None:
    for body in bodies:
        aws("sqs").send_message(QueueUrl=url, MessageBody=body)


def test_sqs_record_has_lambdas_shape(aws, run_pollers):
    url, arn = make_queue(aws)
    aws("sqs").send_message(QueueUrl=url, MessageBody="hello", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "test"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
    })
    recorder = Recorder()
    run_pollers(recorder, mapping(arn, BatchSize=10))
    record = eventually(recorder.snapshot, what="an invocation")[0][0]
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn and record["awsRegion"] == REGION
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "test", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x01\x02").decode()
    assert record["messageId"] and record["receiptHandle"]


def test_sqs_batch_size_splits_a_backlog_and_success_deletes_each_batch(aws, run_pollers):
    url, arn = make_queue(aws)
    send(aws, url, *[f"m{i}" for i in range(5)])
    recorder = Recorder()
    run_pollers(recorder, mapping(arn, BatchSize=2))
    eventually(lambda: sum(map(len, recorder.snapshot())) == 5, what="all five messages")
    assert sorted(map(len, recorder.bodies())) == [1, 2, 2]
    assert sorted(b for batch in recorder.bodies() for b in batch) == [f"m{i}" for i in range(5)]
    eventually(lambda: queue_depth(aws, url) == 0, what="the queue to be empty (batches deleted)")


def test_sqs_batching_window_gathers_messages_until_the_batch_is_full(aws, run_pollers):
    url, arn = make_queue(aws)
    recorder = Recorder()
    run_pollers(recorder, mapping(arn, BatchSize=3, MaximumBatchingWindowInSeconds=60))
    send(aws, url, "first")
    eventually(lambda: in_flight(aws, url) == 1, what="the poller to receive the first message")
    send(aws, url, "second", "third")
    eventually(recorder.snapshot, what="a batch")
    assert recorder.bodies() == [["first", "second", "third"]], "the window must hold the first message until the batch is full"


def test_sqs_batching_window_ends_a_partial_batch(aws, run_pollers):
    url, arn = make_queue(aws)
    recorder = Recorder()
    run_pollers(recorder, mapping(arn, BatchSize=10, MaximumBatchingWindowInSeconds=1))
    send(aws, url, "alone")
    eventually(recorder.snapshot, what="the window to close")
    assert recorder.bodies() == [["alone"]]


def test_sqs_function_error_deletes_nothing(aws, run_pollers):
    url, arn = make_queue(aws, VisibilityTimeout=1)
    attempts = []

    def respond(records):
        attempts.append([r["body"] for r in records])
        return failed() if len(attempts) == 1 else ok()

    recorder = Recorder(respond)
    send(aws, url, "a", "b")
    run_pollers(recorder, mapping(arn, BatchSize=10))
    eventually(lambda: queue_depth(aws, url) == 0, what="the retried batch to succeed")
    assert sorted(attempts[0]) == ["a", "b"]
    assert sorted(b for batch in attempts[1:] for b in batch) == ["a", "b"], "a failed batch must come back whole"
    receive_counts = {r["body"]: r["attributes"]["ApproximateReceiveCount"] for r in recorder.snapshot()[-1]}
    assert set(receive_counts.values()) == {"2"}


def test_sqs_partial_batch_failure_returns_only_the_failed_message(aws, run_pollers):
    url, arn = make_queue(aws, VisibilityTimeout=1)
    failures_sent = []

    def respond(records):
        bad = [r["messageId"] for r in records if r["body"] == "bad"]
        if bad and not failures_sent:
            failures_sent.append(bad)
            return ok({"batchItemFailures": [{"itemIdentifier": bad[0]}]})
        return ok({"batchItemFailures": []})

    recorder = Recorder(respond)
    send(aws, url, "good-1", "bad", "good-2")
    run_pollers(recorder, mapping(arn, BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"]))
    eventually(lambda: len(recorder.snapshot()) >= 2, what="the failed message to come back")
    first, second = recorder.bodies()[:2]
    assert sorted(first) == ["bad", "good-1", "good-2"]
    assert second == ["bad"]
    assert recorder.snapshot()[1][0]["attributes"]["ApproximateReceiveCount"] == "2"
    eventually(lambda: queue_depth(aws, url) == 0, what="the queue to drain")


def test_sqs_invalid_batch_item_failures_response_fails_the_whole_batch(aws, run_pollers):
    url, arn = make_queue(aws, VisibilityTimeout=1)
    calls = []

    def respond(records):
        calls.append(1)
        if len(calls) == 1:
            return ok({"batchItemFailures": [{"itemIdentifier": "no-such-message"}]})
        return ok(None)

    recorder = Recorder(respond)
    send(aws, url, "x", "y")
    run_pollers(recorder, mapping(arn, BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"]))
    eventually(lambda: queue_depth(aws, url) == 0, what="the retried batch to succeed")
    assert sorted(b for batch in recorder.bodies()[1:] for b in batch) == ["x", "y"]


def test_sqs_poison_message_reaches_the_dlq_after_max_receive_count(aws, run_pollers):
    dlq_url, dlq_arn = make_queue(aws)
    url, arn = make_queue(aws, VisibilityTimeout=1,
                          RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}))
    recorder = Recorder(lambda records: failed())
    send(aws, url, "poison")
    run_pollers(recorder, mapping(arn, BatchSize=1))
    eventually(lambda: queue_depth(aws, dlq_url) == 1, what="the poison message in the DLQ")
    assert recorder.bodies() == [["poison"]] * 3, "exactly maxReceiveCount deliveries, then the queue's redrive"
    assert [b[0]["attributes"]["ApproximateReceiveCount"] for b in recorder.snapshot()] == ["1", "2", "3"]
    assert queue_depth(aws, url) == 0


def test_sqs_filter_criteria_deletes_unmatched_messages_without_invoking(aws, run_pollers):
    url, arn = make_queue(aws)
    send(aws, url, json.dumps({"type": "payment.created", "amount": 10}),
         json.dumps({"type": "payment.failed"}), "not json at all", json.dumps({"type": "payment.created", "amount": 500}))
    criteria = {"Filters": [{"Pattern": json.dumps({"body": {"type": ["payment.created"], "amount": [{"numeric": [">", 100]}]}})}]}
    recorder = Recorder()
    run_pollers(recorder, mapping(arn, BatchSize=10, FilterCriteria=criteria))
    eventually(lambda: queue_depth(aws, url) == 0, what="every message to be consumed")
    delivered = [json.loads(b) for batch in recorder.bodies() for b in batch]
    assert delivered == [{"type": "payment.created", "amount": 500}]


# -- Kinesis ---------------------------------------------------------------------------------------

def make_stream(aws, shards: int = 1) -> tuple[str, str]:
    kinesis = aws("kinesis")
    name = unique("s")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    arn = kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
    return name, arn


def put(aws, stream: str, *payloads: str, hash_key: str | None = None) -> list[dict]:
    kwargs = {"ExplicitHashKey": hash_key} if hash_key is not None else {}
    return [aws("kinesis").put_record(StreamName=stream, Data=p.encode(), PartitionKey="pk", **kwargs) for p in payloads]


def shards_reading(manager: PollerManager) -> bool:
    return all(m.get("shards") and all(s["state"] == "reading" for s in m["shards"]) for m in manager.status())


def test_kinesis_records_are_delivered_in_order_per_shard_in_lambdas_shape(aws, run_pollers):
    name, arn = make_stream(aws, shards=2)
    low, high = "0", str(2**127 + 1)  # one hash key in each shard's range
    sent = {}
    for i in range(12):
        (response,) = put(aws, name, f"r{i}", hash_key=low if i % 2 else high)
        sent.setdefault(response["ShardId"], []).append(response["SequenceNumber"])
    assert len(sent) == 2
    recorder = Recorder()
    run_pollers(recorder, mapping(arn, BatchSize=2, StartingPosition="TRIM_HORIZON"))
    eventually(lambda: sum(map(len, recorder.snapshot())) == 12, what="all twelve records")
    delivered: dict[str, list[str]] = {}
    for batch in recorder.snapshot():
        assert len(batch) <= 2
        for record in batch:
            shard_id, sequence = record["eventID"].split(":")
            assert sequence == record["kinesis"]["sequenceNumber"]
            delivered.setdefault(shard_id, []).append(sequence)
    assert delivered == sent, "each shard's records in order, none missing or repeated"
    record = recorder.snapshot()[0][0]
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventSourceARN"] == arn and record["awsRegion"] == REGION and record["eventVersion"] == "1.0"
    assert record["kinesis"]["kinesisSchemaVersion"] == "1.0" and record["kinesis"]["partitionKey"] == "pk"
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)
    assert "invokeIdentityArn" in record


@pytest.mark.parametrize("position", ["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"])
def test_kinesis_starting_position(aws, run_pollers, position):
    name, arn = make_stream(aws)
    put(aws, name, "before")
    config = {"StartingPosition": position}
    if position == "AT_TIMESTAMP":
        eventually(lambda: time.time() > aws("kinesis").describe_stream(StreamName=name)["StreamDescription"]
                   ["StreamCreationTimestamp"].timestamp(), what="clock past the stream creation")
        config["StartingPositionTimestamp"] = time.time()
    recorder = Recorder()
    manager = run_pollers(recorder, mapping(arn, BatchSize=10, **config))
    eventually(lambda: shards_reading(manager), what="the shard iterators")
    put(aws, name, "after")
    eventually(lambda: "after" in sum(recorder.payloads(), []), what="the new record")
    expected = ["before", "after"] if position == "TRIM_HORIZON" else ["after"]
    assert sum(recorder.payloads(), []) == expected


def test_stream_function_error_does_not_advance_the_checkpoint(aws, run_pollers):
    name, arn = make_stream(aws)
    put(aws, name, "a", "b")
    allow = threading.Event()
    recorder = Recorder(lambda records: ok() if allow.is_set() else failed())
    manager = run_pollers(recorder, mapping(arn, BatchSize=10, StartingPosition="TRIM_HORIZON"))
    eventually(lambda: len(recorder.snapshot()) >= 2, what="a retry")
    put(aws, name, "c")
    eventually(lambda: len(recorder.snapshot()) >= 4, what="more retries")
    shard = manager.status()[0]["shards"][0]
    assert shard["checkpoint"] is None, "no checkpoint while the first batch keeps failing"
    assert all(batch == ["a", "b"] for batch in recorder.payloads()), "the same records are retried, nothing after them"
    allow.set()
    eventually(lambda: "c" in sum(recorder.payloads(), []), what="the next record after success")
    last = [r for r in recorder.snapshot()[-1]][-1]["kinesis"]["sequenceNumber"]
    eventually(lambda: manager.status()[0]["shards"][0]["checkpoint"] == last, what="the checkpoint to move")


def test_stream_retry_attempts_exhausted_sends_the_record_pointer_to_on_failure_destination(aws, run_pollers):
    name, arn = make_stream(aws)
    dest_url, dest_arn = make_queue(aws)
    responses = [put(aws, name, p)[0] for p in ("x1", "x2", "x3")]
    recorder = Recorder(lambda records: failed() if "x1" in _decoded(records) else ok())
    run_pollers(recorder, mapping(arn, BatchSize=10, StartingPosition="TRIM_HORIZON", MaximumRetryAttempts=2,
                                  DestinationConfig={"OnFailure": {"Destination": dest_arn}}))
    message = eventually(lambda: aws("sqs").receive_message(QueueUrl=dest_url, WaitTimeSeconds=1).get("Messages"),
                         what="the on-failure message")[0]
    assert recorder.payloads() == [["x1", "x2", "x3"]] * 3, "one invocation plus MaximumRetryAttempts retries"
    document = json.loads(message["Body"])
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["requestContext"]["functionArn"] == FAKE_FUNCTION_ARN
    assert document["responseContext"]["functionError"] == "Unhandled"
    assert document["version"] == "1.0"
    info = document["KinesisBatchInfo"]
    assert info["shardId"] == responses[0]["ShardId"]
    assert info["startSequenceNumber"] == responses[0]["SequenceNumber"]
    assert info["endSequenceNumber"] == responses[2]["SequenceNumber"]
    assert info["batchSize"] == 3 and info["streamArn"] == arn
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    put(aws, name, "next")
    eventually(lambda: ["next"] in recorder.payloads(), what="the record after the discarded batch")


def _decoded(records: list[dict]) -> list[str]:
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in records]


def test_stream_bisect_isolates_the_bad_record(aws, run_pollers):
    name, arn = make_stream(aws)
    dest_url, dest_arn = make_queue(aws)
    responses = {p: put(aws, name, p)[0] for p in ("g1", "g2", "bad", "g3", "g4")}
    recorder = Recorder(lambda records: failed() if "bad" in _decoded(records) else ok())
    run_pollers(recorder, mapping(arn, BatchSize=10, StartingPosition="TRIM_HORIZON", BisectBatchOnFunctionError=True,
                                  MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": dest_arn}}))
    message = eventually(lambda: aws("sqs").receive_message(QueueUrl=dest_url, WaitTimeSeconds=1).get("Messages"),
                         what="the on-failure message")[0]
    eventually(lambda: any("g4" in batch and "bad" not in batch for batch in recorder.payloads()),
               what="the last good record, delivered without the bad one")
    succeeded = [p for batch in recorder.payloads() if "bad" not in batch for p in batch]
    assert sorted(succeeded) == ["g1", "g2", "g3", "g4"], "every good record of the failing batch is processed once"
    info = json.loads(message["Body"])["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == responses["bad"]["SequenceNumber"]
    assert info["batchSize"] == 1


def test_stream_report_batch_item_failures_checkpoints_before_the_first_failure(aws, run_pollers):
    name, arn = make_stream(aws)
    responses = [put(aws, name, p)[0] for p in ("r1", "r2", "r3", "r4", "r5")]
    reported = []

    def respond(records):
        if not reported:
            reported.append(1)
            return ok({"batchItemFailures": [{"itemIdentifier": responses[4]["SequenceNumber"]},
                                             {"itemIdentifier": responses[2]["SequenceNumber"]}]})
        return ok({"batchItemFailures": []})

    recorder = Recorder(respond)
    manager = run_pollers(recorder, mapping(arn, BatchSize=10, StartingPosition="TRIM_HORIZON",
                                            FunctionResponseTypes=["ReportBatchItemFailures"]))
    eventually(lambda: len(recorder.snapshot()) >= 2, what="the retry")
    assert recorder.payloads()[:2] == [["r1", "r2", "r3", "r4", "r5"], ["r3", "r4", "r5"]]
    eventually(lambda: manager.status()[0]["shards"][0]["checkpoint"] == responses[4]["SequenceNumber"],
               what="the checkpoint at the last record")


def test_stream_maximum_record_age_discards_old_records_to_the_destination(aws, run_pollers):
    name, arn = make_stream(aws)
    dest_url, dest_arn = make_queue(aws)
    responses = [put(aws, name, p)[0] for p in ("old1", "old2")]
    recorder = Recorder()
    an_hour_later = lambda: time.time() + 3600  # noqa: E731 - the records look an hour old to the poller
    manager = run_pollers(recorder, mapping(arn, BatchSize=10, StartingPosition="TRIM_HORIZON", MaximumRecordAgeInSeconds=60,
                                            DestinationConfig={"OnFailure": {"Destination": dest_arn}}), clock=an_hour_later)
    message = eventually(lambda: aws("sqs").receive_message(QueueUrl=dest_url, WaitTimeSeconds=1).get("Messages"),
                         what="the on-failure message")[0]
    document = json.loads(message["Body"])
    assert document["requestContext"]["condition"] == "RecordAgeExceeded"
    assert document["requestContext"]["approximateInvokeCount"] == 0
    assert document["KinesisBatchInfo"]["startSequenceNumber"] == responses[0]["SequenceNumber"]
    assert document["KinesisBatchInfo"]["endSequenceNumber"] == responses[1]["SequenceNumber"]
    eventually(lambda: manager.status()[0]["shards"][0]["checkpoint"] == responses[1]["SequenceNumber"],
               what="the checkpoint past the discarded records")
    assert recorder.snapshot() == [], "records older than MaximumRecordAgeInSeconds are never invoked"


# -- DynamoDB Streams ------------------------------------------------------------------------------

def make_table(aws) -> tuple[str, str]:
    name = unique("t")
    table = aws("dynamodb").create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return name, table["TableDescription"]["LatestStreamArn"]


def test_dynamodb_stream_insert_and_modify_images(aws, run_pollers):
    table, stream_arn = make_table(aws)
    ddb = aws("dynamodb")
    ddb.put_item(TableName=table, Item={"pk": {"S": "p1"}, "status": {"S": "created"}, "raw": {"B": b"\x00\x01"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "p1"}, "status": {"S": "succeeded"}, "amount": {"N": "500"}})
    recorder = Recorder()
    run_pollers(recorder, mapping(stream_arn, BatchSize=10, StartingPosition="TRIM_HORIZON"))
    records = eventually(lambda: sum(recorder.snapshot(), []) if sum(map(len, recorder.snapshot())) >= 2 else None,
                         what="both stream records")
    insert, modify = records
    assert [insert["eventName"], modify["eventName"]] == ["INSERT", "MODIFY"]
    for record in records:
        assert record["eventSource"] == "aws:dynamodb" and record["eventSourceARN"] == stream_arn
        assert record["awsRegion"] == REGION and record["eventID"] and record["eventVersion"]
        assert record["dynamodb"]["Keys"] == {"pk": {"S": "p1"}}
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], (int, float))
        assert record["dynamodb"]["SequenceNumber"] and record["dynamodb"]["SizeBytes"] > 0
    assert insert["dynamodb"]["NewImage"]["status"] == {"S": "created"}
    assert insert["dynamodb"]["NewImage"]["raw"] == {"B": base64.b64encode(b"\x00\x01").decode()}
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "created"}
    assert modify["dynamodb"]["NewImage"]["amount"] == {"N": "500"}


def test_dynamodb_stream_filter_criteria_skips_unmatched_records_and_moves_the_checkpoint(aws, run_pollers):
    table, stream_arn = make_table(aws)
    ddb = aws("dynamodb")
    for pk, status in (("a", "keep"), ("b", "skip"), ("c", "keep"), ("d", "skip")):
        ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "status": {"S": status}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "status": {"S": "keep"}, "v": {"N": "2"}})  # a MODIFY
    pattern = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["keep"]}}}}
    recorder = Recorder()
    manager = run_pollers(recorder, mapping(stream_arn, BatchSize=10, StartingPosition="TRIM_HORIZON",
                                            FilterCriteria={"Filters": [{"Pattern": json.dumps(pattern)}]}))
    shards = aws("dynamodbstreams").describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    last = aws("dynamodbstreams").get_records(ShardIterator=aws("dynamodbstreams").get_shard_iterator(
        StreamArn=stream_arn, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"])["Records"][-1]
    eventually(lambda: manager.status()[0]["shards"][0]["checkpoint"] == last["dynamodb"]["SequenceNumber"],
               what="the checkpoint past the filtered records")
    delivered = [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for batch in recorder.snapshot() for r in batch]
    assert delivered == [("INSERT", "a"), ("INSERT", "c")]
    assert manager.status()[0]["filtered"] == 3


# -- mappings from the emulator and the real data plane --------------------------------------------

RECORDING_HANDLER = '''
import json, os
import boto3

def handler(event, context):
    sqs = boto3.client("sqs")
    failures = []
    for record in event["Records"]:
        if record["body"] == "poison":
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            sqs.send_message(QueueUrl=os.environ["OUT_QUEUE_URL"], MessageBody=record["body"])
    return {"batchItemFailures": failures}
'''


def test_discover_and_sync_follow_the_emulators_mappings(aws, deploy_function):
    function_arn = deploy_function(unique("esm-sync"), {"handler.py": "def handler(event, context):\n    return None\n"})
    _, queue_arn = make_queue(aws)
    lam = aws("lambda")
    created = lam.create_event_source_mapping(FunctionName=function_arn, EventSourceArn=queue_arn, BatchSize=5)
    mappings = discover_mappings(lam, [function_arn])
    assert [m["UUID"] for m in mappings] == [created["UUID"]]
    manager = PollerManager(aws, Recorder())
    try:
        summary = manager.sync(mappings)
        assert summary["started"] == [created["UUID"]]
        assert [(s["uuid"], s["state"]) for s in manager.status()] == [(created["UUID"], "running")]
        lam.update_event_source_mapping(UUID=created["UUID"], Enabled=False)
        summary = manager.sync(discover_mappings(lam, [function_arn]))
        assert summary["stopped"] == [created["UUID"]]
        assert [(s["uuid"], s["state"]) for s in manager.status()] == [(created["UUID"], "disabled")]
        lam.delete_event_source_mapping(UUID=created["UUID"])
        manager.sync(discover_mappings(lam, [function_arn]))
        assert manager.status() == []
    finally:
        manager.stop()


def test_discover_finds_mappings_created_by_function_name_or_arn(aws, deploy_function):
    # moto files a mapping under the FunctionName it was given (the CLI usually passes the name).
    name = unique("esm-by-name")
    function_arn = deploy_function(name, {"handler.py": "def handler(event, context):\n    return None\n"})
    other_arn = deploy_function(unique("esm-other"), {"handler.py": "def handler(event, context):\n    return None\n"})
    _, queue_a = make_queue(aws)
    _, queue_b = make_queue(aws)
    _, queue_c = make_queue(aws)
    lam = aws("lambda")
    by_name = lam.create_event_source_mapping(FunctionName=name, EventSourceArn=queue_a)["UUID"]
    by_arn = lam.create_event_source_mapping(FunctionName=function_arn, EventSourceArn=queue_b)["UUID"]
    lam.create_event_source_mapping(FunctionName=other_arn, EventSourceArn=queue_c)
    assert sorted(m["UUID"] for m in discover_mappings(lam, [function_arn])) == sorted([by_name, by_arn])


def test_sqs_mapping_runs_a_real_function_with_partial_batch_failures(aws, deploy_function, dataplane):
    out_url, _ = make_queue(aws)
    dlq_url, dlq_arn = make_queue(aws)
    in_url, in_arn = make_queue(aws, VisibilityTimeout=1,
                                RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    function_arn = deploy_function(unique("esm-real"), {"handler.py": RECORDING_HANDLER}, env={"OUT_QUEUE_URL": out_url},
                                   timeout=10)
    mapping_uuid = aws("lambda").create_event_source_mapping(
        FunctionName=function_arn, EventSourceArn=in_arn, BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"])["UUID"]
    dataplane.reload()
    send(aws, in_url, "one", "poison", "two")
    eventually(lambda: queue_depth(aws, dlq_url) == 1, timeout=60, what="the poison message in the DLQ")
    received: list[str] = []

    def both_processed():
        received.extend(m["Body"] for m in aws("sqs").receive_message(
            QueueUrl=out_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []))
        return len(received) >= 2

    eventually(both_processed, what="the function's output")
    assert sorted(received) == ["one", "two"]
    dlq_body = aws("sqs").receive_message(QueueUrl=dlq_url)["Messages"][0]["Body"]
    assert dlq_body == "poison"
    status = next(m for m in dataplane.status()["mappings"] if m["uuid"] == mapping_uuid)
    assert status["state"] == "running" and status["batches"] >= 2


def test_kinesis_child_shards_are_read_only_after_their_parent(aws, run_pollers):
    name, arn = make_stream(aws)
    kinesis = aws("kinesis")
    put(aws, name, "p1", "p2")
    kinesis.split_shard(StreamName=name, ShardToSplit="shardId-000000000000", NewStartingHashKey=str(2**127))
    parent_may_succeed = threading.Event()
    recorder = Recorder(lambda records: ok() if parent_may_succeed.is_set() else failed())
    manager = run_pollers(recorder, mapping(arn, BatchSize=10, StartingPosition="TRIM_HORIZON"))
    eventually(lambda: len(recorder.snapshot()) >= 2, what="the parent's batch to be retried")
    shards = {s["shard_id"]: s["state"] for s in manager.status()[0]["shards"]}
    assert shards == {"shardId-000000000000": "reading"}, "no child is read while its parent has unprocessed records"
    parent_may_succeed.set()
    eventually(lambda: {s["shard_id"]: s["state"] for s in manager.status()[0]["shards"]} == {
        "shardId-000000000000": "finished", "shardId-000000000001": "reading", "shardId-000000000002": "reading"},
        what="the children to be read once the parent is finished")
    assert recorder.payloads()[-1] == ["p1", "p2"]


def test_pollers_survive_transient_emulator_errors(aws, run_pollers):
    url, arn = make_queue(aws)
    send(aws, url, "survivor")
    failures_left = [2]

    class FlakySqs:
        """Fails the first ReceiveMessage calls as an emulator restart would."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            attribute = getattr(self.real, name)
            if name != "receive_message":
                return attribute

            def receive_message(**kwargs):
                if failures_left[0] > 0:
                    failures_left[0] -= 1
                    raise ConnectionError("emulator is restarting")
                return attribute(**kwargs)

            return receive_message

    recorder = Recorder()
    manager = PollerManager(lambda service: FlakySqs(aws(service)) if service == "sqs" else aws(service), recorder)
    try:
        manager.sync([mapping(arn, BatchSize=10)])
        eventually(recorder.snapshot, what="delivery after the errors")
        assert recorder.bodies() == [["survivor"]]
        assert "emulator is restarting" in manager.status()[0]["last_error"]
        assert manager.status()[0]["state"] == "running"
    finally:
        manager.stop()


def test_stop_ends_every_poller_thread(aws):
    _, queue_arn = make_queue(aws)
    _, stream_arn = make_stream(aws, shards=2)
    manager = PollerManager(aws, Recorder())
    manager.sync([mapping(queue_arn), mapping(stream_arn, StartingPosition="LATEST")])
    eventually(lambda: len([t for t in threading.enumerate() if t.name.startswith("poller-")]) == 4,
               what="one SQS thread, one stream thread and two shard threads")
    manager.stop()
    assert [t.name for t in threading.enumerate() if t.name.startswith("poller-")] == []
    assert manager.status() == []


def test_a_stream_iterator_gone_stale_is_replaced_and_nothing_is_skipped(aws, run_pollers):
    """moto's iterators can go stale (return nothing while the shard grows); the consumer swaps an iterator
    that stayed empty for a fresh one after the last record read. Here the stale iterator is forced: one
    pointing far past the end of the shard."""
    table, stream_arn = make_table(aws)
    ddb = aws("dynamodb")
    ddb.put_item(TableName=table, Item={"pk": {"S": "first"}})
    recorder = Recorder()
    manager = run_pollers(recorder, mapping(stream_arn, BatchSize=10, StartingPosition="TRIM_HORIZON"))
    eventually(lambda: sum(map(len, recorder.snapshot())) >= 1, what="the first record")
    (_, poller), = manager._pollers.values()
    (consumer,), = [list(poller.consumers.values())]
    streams = aws("dynamodbstreams")
    far_ahead = str(int(consumer.last_read) + 1000)
    consumer.iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=consumer.shard_id,
                                                   ShardIteratorType="AT_SEQUENCE_NUMBER",
                                                   SequenceNumber=far_ahead)["ShardIterator"]
    ddb.put_item(TableName=table, Item={"pk": {"S": "second"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "third"}})
    records = eventually(lambda: sum(recorder.snapshot(), []) if sum(map(len, recorder.snapshot())) >= 3 else None,
                         what="the records written after the iterator went stale", timeout=30)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["first", "second", "third"]
