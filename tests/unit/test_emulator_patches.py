"""The emulator's moto patches, in process: each upstream behaviour a patch assumes is still there
(so a moto upgrade that fixes or moves it fails here), and the patch changes exactly that.

The running-server side of each patch is in tests/integration/test_emulator.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import moto
import pytest
from moto import mock_aws
from moto.awslambda.models import LambdaBackend
import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoResult
from moto.events.models import Replay
from moto.events.utils import EventTemplateParser
from moto.kinesis.models import Stream
from moto.sqs.models import Queue, sqs_backends

from localdev.emulator import patches

REGION = "us-east-1"
ACCOUNT = "123456789012"  # mock_aws's default account
PATCHED_ATTRIBUTES = [
    (Queue, "lambda_event_source_mappings"),
    (Table, "lambda_event_source_mappings"),
    (Stream, "lambda_event_source_mappings"),
    (Queue, "attributes"),
    (Queue, "BASE_ATTRIBUTES"),
    (Queue, "redrive_allow_policy"),
    (EventTemplateParser, "parse"),
    (DynamoHandler, "call_action"),
    (DynamoDBStreamsHandler, "call_action"),
    (DynamoDBBackend, "transact_write_items"),
    (dynamodb_models, "copy"),
    (Replay, "replay_events"),
    (DynamoResult, "execute_result"),
    (Table, "all_items"),
    (Table, "scan"),
]
_MISSING = object()


@pytest.fixture()
def patched(monkeypatch):
    """apply_patches() for one test, then moto restored exactly, so other tests see stock moto."""
    saved = {(owner, name): owner.__dict__.get(name, _MISSING) for owner, name in PATCHED_ATTRIBUTES}
    monkeypatch.setattr(patches, "_applied", False)
    monkeypatch.setattr(patches, "UPSTREAM", {})
    patches.apply_patches()
    yield
    for (owner, name), value in saved.items():
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)


@pytest.fixture()
def dispatched(monkeypatch):
    """Records every event-source dispatch moto makes instead of running the function (which needs Docker)."""
    calls: list[str] = []
    monkeypatch.setattr(LambdaBackend, "send_sqs_batch", lambda self, *a, **k: calls.append("sqs") or True)
    monkeypatch.setattr(LambdaBackend, "send_dynamodb_items", lambda self, *a, **k: calls.append("dynamodb") or True)
    monkeypatch.setattr(LambdaBackend, "send_kinesis_message", lambda self, *a, **k: calls.append("kinesis"))
    return calls


def _client(service: str):
    return boto3.client(service, region_name=REGION)


def _map_all_sources_and_produce() -> str:
    """A function mapped from a queue, a table stream and a Kinesis stream; one record written to each."""
    role = _client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = _client("lambda")
    lam.create_function(FunctionName="fn", Runtime="python3.12", Role=role, Handler="h.h", Code={"ZipFile": b"PK\x05\x06" + bytes(18)})

    sqs = _client("sqs")
    queue_url = sqs.create_queue(QueueName="q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    ddb = _client("dynamodb")
    stream_arn = ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]
    kinesis = _client("kinesis")
    kinesis.create_stream(StreamName="k", ShardCount=1)
    kinesis_arn = kinesis.describe_stream_summary(StreamName="k")["StreamDescriptionSummary"]["StreamARN"]
    for source in (queue_arn, stream_arn, kinesis_arn):
        lam.create_event_source_mapping(EventSourceArn=source, FunctionName="fn", StartingPosition="TRIM_HORIZON")

    sqs.send_message(QueueUrl=queue_url, MessageBody="m")
    ddb.put_item(TableName="t", Item={"pk": {"S": "k1"}})
    kinesis.put_record(StreamName="k", Data=b"d", PartitionKey="p")
    return queue_url


# --- (a) event source dispatch -----------------------------------------------------------------


@mock_aws
def test_upstream_moto_dispatches_mappings_inside_the_producer_request(dispatched):
    _map_all_sources_and_produce()
    assert dispatched == ["sqs", "dynamodb", "kinesis"]


def test_upstream_dispatch_is_reached_only_through_lambda_event_source_mappings():
    """The patch empties that attribute on Queue, Table and Stream: a new reader elsewhere would escape it."""
    moto_root = Path(moto.__file__).parent
    readers = {
        str(path.relative_to(moto_root))
        for path in moto_root.rglob("*.py")
        if "lambda_event_source_mappings" in path.read_text(encoding="utf-8")
    }
    assert readers == {"awslambda/models.py", "sqs/models.py", "dynamodb/models/table.py", "kinesis/models.py"}


@mock_aws
def test_patched_moto_stores_mappings_but_never_dispatches_them(patched, dispatched):
    queue_url = _map_all_sources_and_produce()

    assert dispatched == []
    assert len(_client("lambda").list_event_source_mappings(FunctionName="fn")["EventSourceMappings"]) == 3
    message = _client("sqs").receive_message(QueueUrl=queue_url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    # Upstream empties the stream buffer once a dispatch "succeeded"; the record must stay for GetRecords.
    assert [record.to_json()["eventName"] for record in dynamodb_backends[ACCOUNT][REGION].get_table("t").stream_shard.items] == ["INSERT"]


# --- (b) EventBridge envelope ------------------------------------------------------------------


def _event() -> dict:
    return {
        "version": "0",
        "id": "e-1",
        "detail-type": "payment.created",
        "source": "paystream.payments",
        "account": "000000000000",
        "time": 1_700_000_000.5,
        "region": REGION,
        "resources": ["arn:aws:events:us-east-1:000000000000:thing"],
        "detail": {"note": "see <id>"},
        "ingestion-time": 1_700_000_000.6,
    }


def test_upstream_default_envelope_still_lacks_account():
    envelope = EventTemplateParser.parse(input_template=None, input_paths_map={}, event=_event())
    assert "account" not in envelope
    assert envelope["source"] == "paystream.payments"


def test_patched_default_envelope_is_the_aws_one(patched):
    envelope = EventTemplateParser.parse(input_template=None, input_paths_map={}, event=_event())
    expected = {key: value for key, value in _event().items() if key != "ingestion-time"}
    assert envelope == expected
    assert list(envelope) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]


def test_patched_input_transformer_still_uses_moto(patched):
    transformed = EventTemplateParser.parse(
        input_template='{"who": "<src>"}', input_paths_map={"src": "$.source"}, event=_event()
    )
    assert transformed == {"who": "paystream.payments"}


# --- (c) compact SQS JSON attributes -----------------------------------------------------------


def _queue_with_redrive_and_policy() -> Queue:
    sqs = _client("sqs")
    dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}
    sqs.create_queue(
        QueueName="q",
        Attributes={"RedrivePolicy": json.dumps(redrive, separators=(",", ":")), "Policy": json.dumps(policy, separators=(",", ":"))},
    )
    return sqs_backends[ACCOUNT][REGION].get_queue("q")


@mock_aws
def test_upstream_queue_json_attributes_still_have_spaces():
    attributes = _queue_with_redrive_and_policy().attributes
    assert '", "' in attributes["RedrivePolicy"]
    assert '", "' in attributes["Policy"]


@mock_aws
def test_patched_queue_json_attributes_are_compact(patched):
    attributes = _queue_with_redrive_and_policy().attributes
    for name in ("RedrivePolicy", "Policy"):
        assert attributes[name] == json.dumps(json.loads(attributes[name]), separators=(",", ":"))


def _dlq_with_redrive_allow_policy():
    sqs = _client("sqs")
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    allow = {"redrivePermission": "byQueue", "sourceQueueArns": [f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": json.dumps(allow)})
    return sqs, url, allow


@mock_aws
def test_upstream_queue_does_not_return_redrive_allow_policy():
    sqs, url, _ = _dlq_with_redrive_allow_policy()
    assert "RedriveAllowPolicy" not in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    with pytest.raises(sqs.exceptions.InvalidAttributeName):
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])


@mock_aws
def test_patched_queue_returns_redrive_allow_policy_compact_and_only_when_set(patched):
    sqs, url, allow = _dlq_with_redrive_allow_policy()
    by_name = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
    assert by_name == {"RedriveAllowPolicy": json.dumps(allow, separators=(",", ":"))}
    other_url = sqs.create_queue(QueueName="other")["QueueUrl"]
    assert "RedriveAllowPolicy" not in sqs.get_queue_attributes(QueueUrl=other_url, AttributeNames=["All"])["Attributes"]


# --- apply_patches -----------------------------------------------------------------------------


def test_apply_patches_is_idempotent(patched):
    parse, attributes = EventTemplateParser.__dict__["parse"], Queue.__dict__["attributes"]
    upstream = dict(patches.UPSTREAM)
    patches.apply_patches()
    assert EventTemplateParser.__dict__["parse"] is parse
    assert Queue.__dict__["attributes"] is attributes
    assert patches.UPSTREAM == upstream
    assert patches.UPSTREAM["Queue.attributes"] is not attributes


def test_upstream_transactions_still_roll_back_by_restoring_a_table_copy_without_a_lock():
    # The shape serialize_dynamodb_requests() guards against: no lock, whole-table copy put back on failure.
    import inspect

    source = inspect.getsource(DynamoDBBackend.transact_write_items)
    assert "original_table_state" in source and "deepcopy" in source
    assert "lock" not in source.lower()
    assert "call_action" in DynamoHandler.__dict__ and "call_action" not in DynamoDBStreamsHandler.__dict__


def test_patched_dynamodb_requests_hold_one_lock(patched, monkeypatch):
    seen = []

    def transact(self, transact_items):
        # The lock is held by this thread while the backend works (RLock: re-entrant, so acquire succeeds here
        # only because we own it; another thread's acquire would block).
        seen.append(patches.DYNAMODB_LOCK._is_owned())

    monkeypatch.setitem(patches.UPSTREAM, "DynamoDBBackend.transact_write_items", transact)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        client.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}}])
    assert seen == [True]


def _cancelled_transaction_after_a_reader_opened_the_stream():
    """A table with a stream and one committed item; a reader holds its stream shard (as an open iterator
    does); a transaction writes one item and fails on the next; then a write commits. Returns (keys the
    held shard has after the first record, keys of the table's shard now, sequence numbers now, items)."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    ddb.put_item(TableName="t", Item={"pk": {"S": "first"}})
    held = dynamodb_backends[ACCOUNT][REGION].tables["t"].stream_shard
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "phantom"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "first"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    ddb.put_item(TableName="t", Item={"pk": {"S": "committed"}})
    current = dynamodb_backends[ACCOUNT][REGION].tables["t"].stream_shard
    keys = lambda shard: [r.record["dynamodb"]["Keys"]["pk"]["S"] for r in shard.items[1:]]
    sequences = [r.record["dynamodb"]["SequenceNumber"] for r in current.items]
    return keys(held), keys(current), sequences, {i["pk"]["S"] for i in ddb.scan(TableName="t")["Items"]}


def test_upstream_rollback_leaves_phantom_stream_records_for_open_iterators():
    with mock_aws():
        held, current, sequences, items = _cancelled_transaction_after_a_reader_opened_the_stream()
    assert held == ["phantom"]  # what an open iterator reads; the committed write went to a copy of the shard
    assert current == ["committed"] and items == {"first", "committed"}


def test_patched_rollback_keeps_the_stream_without_phantoms(patched):
    with mock_aws():
        held, current, sequences, items = _cancelled_transaction_after_a_reader_opened_the_stream()
    assert held == current == ["committed"]
    assert len(set(sequences)) == 2 and items == {"first", "committed"}


def _cancelled_transaction_over_existing_items(ddb) -> None:
    ddb.create_table(TableName="r", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    ddb.create_table(TableName="h", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    ddb.put_item(TableName="r", Item={"pk": {"S": "A"}, "sk": {"S": "1"}, "x": {"N": "1"}})
    ddb.put_item(TableName="h", Item={"pk": {"S": "P"}, "v": {"N": "1"}})
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": "r", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}}, "UpdateExpression": "SET x = :v",
                        "ExpressionAttributeValues": {":v": {"N": "2"}}}},
            {"Put": {"TableName": "r", "Item": {"pk": {"S": "B"}, "sk": {"S": "1"}}}},
            {"Put": {"TableName": "h", "Item": {"pk": {"S": "P"}, "v": {"N": "9"}}}},
            {"ConditionCheck": {"TableName": "h", "Key": {"pk": {"S": "missing"}}, "ConditionExpression": "attribute_exists(pk)"}},
        ])


def test_upstream_transactions_copy_the_tables_they_touch():
    import gc

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        _cancelled_transaction_over_existing_items(ddb)
        gc.collect()
        assert sum(isinstance(obj, Table) for obj in gc.get_objects()) > 2  # the copies a transaction made


def test_patched_transactions_roll_back_item_by_item_without_copying_tables(patched):
    import gc

    def tables_alive() -> int:
        gc.collect()
        return sum(isinstance(obj, Table) for obj in gc.get_objects())

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        before = tables_alive()
        _cancelled_transaction_over_existing_items(ddb)
        table = dynamodb_backends[ACCOUNT][REGION].tables["r"]
        ddb.transact_write_items(TransactItems=[{"Put": {"TableName": "r", "Item": {"pk": {"S": "C"}, "sk": {"S": "1"}}}}])
        assert tables_alive() == before + 2  # the two tables created, no copies of them
        assert dynamodb_backends[ACCOUNT][REGION].tables["r"] is table
        assert sorted((i["pk"]["S"], i.get("x", {}).get("N")) for i in ddb.scan(TableName="r")["Items"]) == [
            ("A", "1"), ("C", None)]  # the update undone, the put undone, the later commit kept
        assert ddb.scan(TableName="h")["Items"] == [{"pk": {"S": "P"}, "v": {"N": "1"}}]


# --- archive replay ------------------------------------------------------------------------------------


def _archived_bus_with_two_rules():
    """A bus with an archive and two rules each sending everything to its own queue; one event archived at
    epoch 1000, one at 5000 (PutEvents Time). Returns (events client, sqs client, bus ARN, archive ARN,
    {rule name: (rule ARN, queue URL)})."""
    events, sqs = _client("events"), _client("sqs")
    bus_arn = events.create_event_bus(Name="b")["EventBusArn"]
    archive_arn = events.create_archive(ArchiveName="all", EventSourceArn=bus_arn)["ArchiveArn"]
    rules = {}
    for name in ("first", "second"):
        url = sqs.create_queue(QueueName=f"q-{name}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = events.put_rule(Name=name, EventBusName="b", EventPattern=json.dumps({"source": ["s"]}))["RuleArn"]
        events.put_targets(Rule=name, EventBusName="b", Targets=[{"Id": "q", "Arn": queue_arn}])
        rules[name] = (rule_arn, url)
    for at in (1000, 5000):
        events.put_events(Entries=[{"EventBusName": "b", "Source": "s", "DetailType": "t", "Time": at,
                                    "Detail": json.dumps({"at": at})}])
    for _, url in rules.values():  # the live deliveries, drained
        while sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            sqs.purge_queue(QueueUrl=url)
    return events, sqs, bus_arn, archive_arn, rules


def _bodies(sqs, url: str) -> list[dict]:
    return [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]


def test_upstream_replay_sends_the_whole_archive_to_every_rule():
    with mock_aws():
        events, sqs, bus_arn, archive_arn, rules = _archived_bus_with_two_rules()
        events.start_replay(ReplayName="r", EventSourceArn=archive_arn, EventStartTime=4000, EventEndTime=6000,
                            Destination={"Arn": bus_arn, "FilterArns": [rules["first"][0]]})
        assert len(_bodies(sqs, rules["first"][1])) == 2  # the event at 1000 too
        assert len(_bodies(sqs, rules["second"][1])) == 2  # a rule FilterArns left out


def test_patched_replay_sends_only_the_window_to_the_chosen_rules_with_the_aws_envelope(patched):
    with mock_aws():
        events, sqs, bus_arn, archive_arn, rules = _archived_bus_with_two_rules()
        events.start_replay(ReplayName="r", EventSourceArn=archive_arn, EventStartTime=4000, EventEndTime=6000,
                            Destination={"Arn": bus_arn, "FilterArns": [rules["first"][0]]})
        assert events.describe_replay(ReplayName="r")["State"] == "COMPLETED"
        [replayed] = _bodies(sqs, rules["first"][1])
        assert replayed["detail"] == {"at": 5000} and replayed["replay-name"] == "r"
        assert replayed["account"] == ACCOUNT and replayed["source"] == "s"
        assert _bodies(sqs, rules["second"][1]) == []
        # Without FilterArns every rule gets the window; replayed events are not archived again.
        events.start_replay(ReplayName="r2", EventSourceArn=archive_arn, EventStartTime=0, EventEndTime=6000,
                            Destination={"Arn": bus_arn})
        assert sorted(b["detail"]["at"] for b in _bodies(sqs, rules["second"][1])) == [1000, 5000]
        assert events.describe_archive(ArchiveName="all")["EventCount"] == 2


# --- DynamoDB read responses -----------------------------------------------------------------------------


def _reads(client) -> dict:
    """The same reads, answered by whichever serializer is in place: their parsed results and content type."""
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    answers = {
        "scan": client.scan(TableName="t"),
        "scan_page": client.scan(TableName="t", Limit=1, Segment=0, TotalSegments=1),
        "query": client.query(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}},
                              ReturnConsumedCapacity="TOTAL"),
        "get": client.get_item(TableName="t", Key=key, ConsistentRead=True),
        "get_missing": client.get_item(TableName="t", Key={"pk": {"S": "none"}, "sk": {"S": "1"}}),
        "batch": client.batch_get_item(RequestItems={"t": {"Keys": [key]}}),
        "count": client.scan(TableName="t", Select="COUNT"),
    }
    for answer in answers.values():
        metadata = answer.pop("ResponseMetadata")
        answer["content-type"] = metadata["HTTPHeaders"]["content-type"]
    return answers


def test_patched_dynamodb_reads_answer_exactly_what_the_upstream_serializer_answers(patched):
    with mock_aws():
        client = _client("dynamodb")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        every_type = {"s": {"S": "é <x> \"q\""}, "n": {"N": "-12.50"}, "b": {"B": b"\x00\xffbin"},
                      "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\x01", b"\x02"]},
                      "bool": {"BOOL": False}, "null": {"NULL": True},
                      "m": {"M": {"nested": {"L": [{"S": "v"}, {"N": "3"}, {"B": b"\x07"}, {"M": {}}]}}}}
        for pk, sk in (("a", "1"), ("a", "2"), ("b", "1")):
            client.put_item(TableName="t", Item={"pk": {"S": pk}, "sk": {"S": sk}, **every_type})
        fast = _reads(client)
        fast_path = DynamoResult.__dict__["execute_result"]
        del DynamoResult.execute_result  # moto's own serializer again, for the same reads
        try:
            assert _reads(client) == fast
        finally:
            DynamoResult.execute_result = fast_path
        assert fast["get"]["Item"]["b"] == {"B": b"\x00\xffbin"} and "LastEvaluatedKey" in fast["scan_page"]
        assert fast["get_missing"] == {"content-type": "application/x-amz-json-1.0"}


def test_patched_table_items_keep_the_upstream_order(patched):
    with mock_aws():
        client = _client("dynamodb")
        for name, range_type in (("strings", "S"), ("numbers", "N")):
            client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                      {"AttributeName": "sk", "AttributeType": range_type}],
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                           {"AttributeName": "sk", "KeyType": "RANGE"}])
            for pk in ("b", "a", "TXN#9", "TXN#10", "é"):
                for sk in ("10", "9", "-1.5", "100", "2e1"):
                    client.put_item(TableName=name, Item={"pk": {"S": pk}, "sk": {range_type: sk}})
            table = dynamodb_backends[ACCOUNT][REGION].get_table(name)
            patched_order = [(i.hash_key.value, i.range_key.value) for i in table.all_items()]
            upstream_order = [(i.hash_key.value, i.range_key.value) for i in patches.UPSTREAM["Table.all_items"](table)]
            assert patched_order == upstream_order and len(patched_order) == 25
            assert patched_order[0][0] == "TXN#10"  # text order, not numeric


def test_patched_scan_pages_are_the_upstream_pages(patched):
    def pages(client, **request) -> list:
        found, request = [], {"TableName": "pages", **request}
        while True:
            page = client.scan(**request)
            found.append((page["Count"], page["ScannedCount"], page.get("Items"), page.get("LastEvaluatedKey")))
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with mock_aws():
        client = _client("dynamodb")
        client.create_table(TableName="pages", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "N"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        for n in range(60):
            for sk in (3, 1, 20, 2):
                client.put_item(TableName="pages", Item={"pk": {"S": f"TXN#{n}"}, "sk": {"N": str(sk)},
                                                         "kind": {"S": "event" if sk != 20 else "projection"},
                                                         "pad": {"S": "x" * (n * 500)}})  # pages of 1 MB too
        requests = [{}, {"Limit": 7}, {"Segment": 1, "TotalSegments": 4, "Limit": 5},
                    {"Segment": 3, "TotalSegments": 4}, {"FilterExpression": "kind = :k", "Limit": 9,
                                                         "ExpressionAttributeValues": {":k": {"S": "event"}}}]
        patched_pages = [pages(client, **request) for request in requests]
        patched_functions = {name: Table.__dict__[name] for name in ("scan", "all_items")}
        Table.scan, Table.all_items = patches.UPSTREAM["Table.scan"], patches.UPSTREAM["Table.all_items"]
        try:
            upstream_pages = [pages(client, **request) for request in requests]
        finally:
            Table.scan, Table.all_items = patched_functions["scan"], patched_functions["all_items"]
        assert patched_pages == upstream_pages
        assert len(patched_pages[0]) > 1 and len(patched_pages[1]) == 35  # paginated by size, then by Limit
        assert sum(len(p[2]) for p in patched_pages[0]) == 240
