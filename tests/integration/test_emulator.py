"""The embedded emulator as other components see it: the `/_localdev/` extensions, Invoke forwarding and
the fidelity patches, against a running `python -m localdev emulator`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCOUNT_ID, PROJECT_ROOT, free_port

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def make_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture()
def function(aws):
    """A Lambda function (its code never runs here) and the zip it was created from."""
    role = aws("iam").create_role(RoleName=unique("role"), AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = make_zip({"handler.py": f"def handler(event, context):\n    return {uuid.uuid4().hex!r}\n"})
    name = unique("fn")
    aws("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler", Code={"ZipFile": code})
    return name, code


@pytest.fixture()
def emulator_region_client(emulator_endpoint):
    """Like `aws`, for another region than the default one."""

    def client(service: str, region: str):
        config = Config(retries={"max_attempts": 1, "mode": "standard"})
        return boto3.client(service, endpoint_url=emulator_endpoint, region_name=region, config=config)

    return client


def receive_all(sqs, queue_url: str, expected: int) -> list[dict]:
    """Receive until `expected` messages arrived or the deadline passes (without deleting them)."""
    messages: list[dict] = []
    deadline = time.monotonic() + 10
    while len(messages) < expected and time.monotonic() < deadline:
        messages += sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
    return messages


# --- extensions --------------------------------------------------------------------------------


def test_health_reports_one_instance_id_per_process(emulator_endpoint):
    first = json.loads(http("GET", f"{emulator_endpoint}/_localdev/health")[2])
    second = json.loads(http("GET", f"{emulator_endpoint}/_localdev/health")[2])
    assert first["status"] == "ok"
    assert uuid.UUID(first["instance_id"]).version == 4
    assert second["instance_id"] == first["instance_id"]


def test_function_code_is_the_uploaded_zip_with_its_sha(aws, emulator_endpoint, function):
    name, code = function
    status, headers, body = http("GET", f"{emulator_endpoint}/_localdev/lambda/functions/{name}/code")
    assert status == 200
    assert body == code
    code_sha = aws("lambda").get_function(FunctionName=name)["Configuration"]["CodeSha256"]
    assert headers["X-Code-Sha256"] == code_sha == base64.b64encode(hashlib.sha256(code).digest()).decode()


def test_function_code_is_looked_up_in_the_region_asked_for(emulator_endpoint, emulator_region_client):
    lam, iam = emulator_region_client("lambda", "eu-west-1"), emulator_region_client("iam", "eu-west-1")
    role = iam.create_role(RoleName=unique("role"), AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    name, code = unique("fn"), make_zip({"handler.py": "def handler(e, c):\n    return 'eu'\n"})
    lam.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler", Code={"ZipFile": code})

    assert http("GET", f"{emulator_endpoint}/_localdev/lambda/functions/{name}/code?region=eu-west-1")[2] == code
    assert http("GET", f"{emulator_endpoint}/_localdev/lambda/functions/{name}/code")[0] == 404


def test_unknown_function_code_is_a_404_saying_so(emulator_endpoint):
    status, headers, body = http("GET", f"{emulator_endpoint}/_localdev/lambda/functions/no-such-fn/code")
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert "no-such-fn" in json.loads(body)["message"]


def test_layer_content_is_the_published_zip(aws, emulator_endpoint):
    name, content = unique("layer"), make_zip({"python/lib.py": "X = 1\n"})
    aws("lambda").publish_layer_version(LayerName=name, Content={"ZipFile": make_zip({"python/lib.py": "X = 0\n"})})
    version = aws("lambda").publish_layer_version(LayerName=name, Content={"ZipFile": content})["Version"]

    status, _, body = http("GET", f"{emulator_endpoint}/_localdev/lambda/layers/{name}/{version}/content")
    assert (status, body) == (200, content)
    assert http("GET", f"{emulator_endpoint}/_localdev/lambda/layers/{name}/{version + 1}/content")[0] == 404


# --- Invoke forwarding -------------------------------------------------------------------------


class FakeDataPlane:
    """An Invoke API that records what reached it and answers with a canned function error."""

    def __init__(self):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.headers.get("X-Amz-Invocation-Type") == "Event":
                    self.send_response(202)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = json.dumps({"errorMessage": "boom", "errorType": "ValueError"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Amz-Function-Error", "Unhandled")
                self.send_header("X-Amz-Executed-Version", "$LATEST")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def registered(emulator_endpoint):
    """Register a data plane URL for one test, always unregistering after it (the emulator is shared)."""

    def register(url: str | None) -> None:
        status, _, body = http("POST", f"{emulator_endpoint}/_localdev/dataplane", {"invoke_url": url})
        assert status == 200, body

    yield register
    register(None)


def test_invoke_is_forwarded_to_the_registered_data_plane(aws, registered):
    with FakeDataPlane() as fake:
        registered(fake.url)
        client_context = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
        response = aws("lambda").invoke(
            FunctionName="payments-fn", Qualifier="live", Payload=b'{"n": 1}', LogType="Tail", ClientContext=client_context
        )
        event = aws("lambda").invoke(FunctionName="payments-fn", InvocationType="Event", Payload=b"{}")

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read()) == {"errorMessage": "boom", "errorType": "ValueError"}
    assert event["StatusCode"] == 202
    sync = fake.requests[0]
    assert sync["path"] == "/2015-03-31/functions/payments-fn/invocations?Qualifier=live"
    assert sync["body"] == b'{"n": 1}'
    assert sync["headers"]["X-Amz-Log-Type"] == "Tail"
    assert sync["headers"]["X-Amz-Client-Context"] == client_context
    assert fake.requests[1]["headers"]["X-Amz-Invocation-Type"] == "Event"


def test_invoke_without_a_data_plane_is_a_service_exception_saying_what_to_do(aws, registered):
    registered(None)
    with pytest.raises(ClientError) as raised:
        aws("lambda").invoke(FunctionName="payments-fn", Payload=b"{}")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert error["Error"]["Code"] == "ServiceException"
    assert "no Lambda data plane is running at none: start the local stack with `make local-up`" in error["Error"]["Message"]


def test_invoke_with_an_unreachable_data_plane_names_its_url(aws, registered):
    url = f"http://127.0.0.1:{free_port()}"
    registered(url)
    with pytest.raises(ClientError) as raised:
        aws("lambda").invoke(FunctionName="payments-fn", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ServiceException"
    assert f"no Lambda data plane is running at {url}" in raised.value.response["Error"]["Message"]


def test_data_plane_registration_is_shown_and_an_empty_body_unregisters(emulator_endpoint, registered):
    registered("http://127.0.0.1:4568/")
    assert json.loads(http("GET", f"{emulator_endpoint}/_localdev/dataplane")[2]) == {"invoke_url": "http://127.0.0.1:4568"}
    request = urllib.request.Request(f"{emulator_endpoint}/_localdev/dataplane", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert json.loads(resp.read()) == {"invoke_url": None}
    assert json.loads(http("GET", f"{emulator_endpoint}/_localdev/dataplane")[2]) == {"invoke_url": None}


def test_data_plane_registration_rejects_a_non_http_url(emulator_endpoint):
    status, _, body = http("POST", f"{emulator_endpoint}/_localdev/dataplane", {"invoke_url": "ftp://x"})
    assert status == 400
    assert "http://host:port" in json.loads(body)["message"]


# --- patch (a): moto does not dispatch event source mappings itself ----------------------------


def test_sqs_mapping_leaves_messages_to_the_poller(aws, function):
    sqs = aws("sqs")
    dlq_url = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    queue_url = sqs.create_queue(QueueName=unique("q"), Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("lambda").create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=function[0], BatchSize=10)

    for n in range(5):
        sqs.send_message(QueueUrl=queue_url, MessageBody=f"m{n}")

    messages = receive_all(sqs, queue_url, 5)
    assert sorted(m["Body"] for m in messages) == [f"m{n}" for n in range(5)]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in messages} == {"1"}
    assert sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"] == {
        "ApproximateNumberOfMessages": "0"
    }


def test_dynamodb_stream_mapping_keeps_the_stream_readable(aws, function):
    ddb, streams = aws("dynamodb"), aws("dynamodbstreams")
    table = unique("tbl")
    stream_arn = ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    aws("lambda").create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=function[0], StartingPosition="TRIM_HORIZON")

    for n in range(3):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{n}"}})

    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [("INSERT", f"k{n}") for n in range(3)]


def test_kinesis_mapping_leaves_records_in_the_stream(aws, function):
    kinesis = aws("kinesis")
    stream = unique("stream")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    aws("lambda").create_event_source_mapping(EventSourceArn=stream_arn, FunctionName=function[0], StartingPosition="TRIM_HORIZON")

    kinesis.put_record(StreamName=stream, Data=b"r1", PartitionKey="p")

    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [b"r1"]
    # moto's own dispatch would have tried to run the function, creating its log group on the way.
    assert aws("logs").describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{function[0]}")["logGroups"] == []


# --- patch (b): EventBridge deliveries carry the AWS envelope ----------------------------------


def test_eventbridge_to_sqs_delivery_is_the_aws_envelope(aws):
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    events, sqs = aws("events"), aws("sqs")
    bus, rule = unique("bus"), unique("rule")
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=unique("q"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": ["paystream.payments"]}))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    # Text shaped like moto's template placeholders must come through untouched.
    detail = {"transaction_id": "t-1", "description": "order <id> at <time>"}
    entry = {"Source": "paystream.payments", "DetailType": "payment.created", "Detail": json.dumps(detail), "EventBusName": bus}
    event_id = events.put_events(Entries=[entry])["Entries"][0]["EventId"]

    [message] = receive_all(sqs, queue_url, 1)
    body = json.loads(message["Body"])
    assert list(body) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    parsed = EventBridgeModel.model_validate(body)
    assert parsed.account == ACCOUNT_ID
    assert (parsed.id, parsed.detail_type, parsed.source, parsed.region) == (event_id, "payment.created", "paystream.payments", "us-east-1")
    assert parsed.detail == detail
    assert body["time"].endswith("Z")


# --- patch (c): JSON queue attributes are compact ----------------------------------------------


def test_sqs_json_attributes_come_back_compact(aws):
    sqs = aws("sqs")
    dlq_url = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": "*"}]}
    queue_url = sqs.create_queue(
        QueueName=unique("q"),
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}), "Policy": json.dumps(policy)},
    )["QueueUrl"]

    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["RedrivePolicy"] == f'{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":3}}'
    assert attributes["Policy"] == json.dumps(policy, separators=(",", ":"))
    named = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"]
    assert named["RedrivePolicy"] == attributes["RedrivePolicy"]


def test_sqs_redrive_allow_policy_is_returned_compact(aws):
    sqs = aws("sqs")
    dlq_url = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    source_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:source"
    allow = {"redrivePermission": "byQueue", "sourceQueueArns": [source_arn]}
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": json.dumps(allow)})

    compact = json.dumps(allow, separators=(",", ":"))
    by_name = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
    assert by_name == {"RedriveAllowPolicy": compact}
    assert sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]["RedriveAllowPolicy"] == compact
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": ""})
    assert "RedriveAllowPolicy" not in sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]


# --- bad input ---------------------------------------------------------------------------------


def test_a_taken_port_is_one_line_saying_what_to_do(emulator_endpoint):
    port = emulator_endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "localdev", "emulator", "--host", "127.0.0.1", "--port", port],
        capture_output=True, text=True, timeout=30, cwd=PROJECT_ROOT,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"emulator: 127.0.0.1:{port} is already in use — stop what holds it (make local-down) or choose another port\n"
    )


def test_concurrent_conditional_transactions_have_exactly_one_winner(aws):
    # A's event store relies on this: two writers can never both append sequence N.
    import threading
    import uuid

    ddb = aws("dynamodb")
    table = f"race-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}])
    for round_no in range(20):
        pk = f"TXN#{round_no}"
        winners: list[str] = []
        barrier = threading.Barrier(8)

        def writer(name: str) -> None:
            barrier.wait()
            try:
                ddb.transact_write_items(TransactItems=[
                    {"Put": {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": "EVENT#1"}, "by": {"S": name}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": "PROJECTION"}, "by": {"S": name}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ])
                winners.append(name)
            except ddb.exceptions.TransactionCanceledException:
                pass

        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        items = ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                          ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)["Items"]
        assert len(winners) == 1, f"round {round_no}: {winners}"
        assert {i["by"]["S"] for i in items} == set(winners) and len(items) == 2


def test_requests_are_counted_by_caller_and_operation(aws, emulator_endpoint):
    from botocore.config import Config as BotoConfig

    assert http("DELETE", f"{emulator_endpoint}/_localdev/requests")[0] == 200
    queue_url = aws("sqs").create_queue(QueueName=unique("counted"))["QueueUrl"]
    aws("sqs").send_message(QueueUrl=queue_url, MessageBody="one")
    aws("sqs").send_message(QueueUrl=queue_url, MessageBody="two")
    topic_arn = aws("sns").create_topic(Name=unique("counted"))["TopicArn"]  # query protocol: Action in the form
    assert aws("sns").get_topic_attributes(TopicArn=topic_arn)["Attributes"]["TopicArn"] == topic_arn  # body still reaches moto
    as_dataplane = boto3.client("sqs", endpoint_url=emulator_endpoint, region_name="us-east-1",
                                config=BotoConfig(user_agent_extra="localdev-dataplane"))
    as_dataplane.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0)
    as_function = boto3.client("sqs", endpoint_url=emulator_endpoint, region_name="us-east-1",
                               config=BotoConfig(user_agent_appid="paystream-local-notifier"))
    as_function.send_message(QueueUrl=queue_url, MessageBody="three")

    status, _, body = http("GET", f"{emulator_endpoint}/_localdev/requests")
    assert status == 200
    assert json.loads(body)["requests"] == {
        "clients": {"sns.CreateTopic": 1, "sns.GetTopicAttributes": 1, "sqs.CreateQueue": 1, "sqs.SendMessage": 3},
        "dataplane": {"sqs.ReceiveMessage": 1},
    }
    by_function = json.loads(http("GET", f"{emulator_endpoint}/_localdev/requests?by=app")[2])["requests"]
    assert by_function == {"paystream-local-notifier": {"sqs.SendMessage": 1}}
    assert http("DELETE", f"{emulator_endpoint}/_localdev/requests")[0] == 200
    assert json.loads(http("GET", f"{emulator_endpoint}/_localdev/requests")[2])["requests"] == {}
