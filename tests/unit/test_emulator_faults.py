"""The emulator's fault switches (`/_localdev/faults`, localdev.emulator.faults), in process: moto's WSGI app
wrapped in the emulator's extensions, with boto3 sending through it (a botocore `before-send` handler),
so the SDK's own retries meet the faults exactly as the functions' clients do."""

from __future__ import annotations

import json
import uuid
import zlib
from urllib.parse import urlsplit

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from moto.core.botocore_stubber import MockRawResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.test import Client

from localdev.emulator.extensions import LocalDevExtensions
from localdev.emulator.faults import FaultSwitches

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account in this process
DATAPLANE_UA = "Boto3/1.44.5 localdev-dataplane"
TERRAFORM_UA = "APN/1.0 HashiCorp/1.0 Terraform/1.11.4 (+https://www.terraform.io) terraform-provider-aws/5.100.0"


class Emulator:
    """The emulator's WSGI stack in this process; `client(service, …)` gives boto3 clients that go through it."""

    def __init__(self) -> None:
        self.app = LocalDevExtensions(DomainDispatcherApplication(create_backend_app), account_id=ACCOUNT)
        self.http = Client(self.app)
        self.attempts: list[str] = []  # the X-Amz-Target of every request boto3 sent, retries included

    def _send(self, request, **_):
        url = urlsplit(request.url)
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        self.attempts.append(headers.get("X-Amz-Target", ""))
        body = request.body.read() if hasattr(request.body, "read") else (request.body or b"")
        answer = self.http.open(path=url.path or "/", query_string=url.query, method=request.method,
                                headers=headers, data=body)
        return AWSResponse(request.url, answer.status_code, dict(answer.headers), MockRawResponse(answer.get_data()))

    def client(self, service: str, retries: dict | None = None, user_agent_extra: str | None = None,
               app_id: str | None = None):
        config = Config(retries=retries or {"total_max_attempts": 1, "mode": "standard"},
                        user_agent_extra=user_agent_extra, user_agent_appid=app_id)
        client = boto3.client(service, region_name=REGION, endpoint_url="http://localhost",
                              aws_access_key_id="test", aws_secret_access_key="test", config=config)
        client.meta.events.register("before-send", self._send)
        return client

    def faults(self, method: str = "GET", body: dict | None = None, query: str = "") -> tuple[int, dict]:
        answer = self.http.open(f"/_localdev/faults{query}", method=method,
                                data=json.dumps(body) if body is not None else None)
        return answer.status_code, answer.get_json()


@pytest.fixture()
def emulator():
    emulator = Emulator()
    emulator.http.post("/moto-api/reset")
    yield emulator
    emulator.http.post("/moto-api/reset")


@pytest.fixture()
def no_sleep(monkeypatch):
    """The SDK's retry backoff, recorded instead of slept (standard mode backs off up to seconds per retry)."""
    slept: list[float] = []

    class Clock:
        sleep = staticmethod(slept.append)

    monkeypatch.setattr(botocore.endpoint, "time", Clock)
    return slept


def bus_to_queue(emulator: Emulator, bus: str = "payments") -> str:
    """A bus whose every event goes to a new queue; the queue's URL."""
    events, sqs = emulator.client("events"), emulator.client("sqs")
    if bus != "default":
        events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["test"]}))
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    return queue_url


def delivered(emulator: Emulator, queue_url: str) -> list[int]:
    """The `n` of every event the queue received, sorted."""
    sqs, found = emulator.client("sqs"), []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return sorted(found)
        found += [json.loads(m["Body"])["detail"]["n"] for m in messages]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def entries(count: int, bus: str = "payments", start: int = 0) -> list[dict]:
    return [{"Source": "test", "DetailType": "t", "Detail": json.dumps({"n": n}), "EventBusName": bus}
            for n in range(start, start + count)]


def make_table(emulator: Emulator, name: str, billing: str = "PAY_PER_REQUEST") -> None:
    extra = {"ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}} if billing == "PROVISIONED" else {}
    emulator.client("dynamodb").create_table(
        TableName=name, BillingMode=billing, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **extra)


def item(pk: str) -> dict:
    return {"pk": {"S": pk}}


# ---------------------------------------------------------------- off by default, control endpoint

def test_no_switch_is_on_at_start_and_nothing_is_failed(emulator):
    assert emulator.faults() == (200, {"faults": {}, "injected": {"put_events_failures": 0, "dynamodb_write_throttling": 0},
                                       "eligible": {"put_events_failures": 0, "dynamodb_write_throttling": 0}})
    queue_url = bus_to_queue(emulator)
    answer = emulator.client("events").put_events(Entries=entries(5))
    assert answer["FailedEntryCount"] == 0 and all("EventId" in e for e in answer["Entries"])
    assert delivered(emulator, queue_url) == [0, 1, 2, 3, 4]
    make_table(emulator, "t")
    emulator.client("dynamodb").put_item(TableName="t", Item=item("a"))
    assert emulator.faults()[1]["injected"] == {"put_events_failures": 0, "dynamodb_write_throttling": 0}


@pytest.mark.parametrize("body, message", [
    ({"kind": "disk_full", "ratio": 1}, "kind must be one of"),
    ({"kind": "put_events_failures"}, 'exactly one of "ratio"'),
    ({"kind": "put_events_failures", "ratio": 0.5, "every": 2}, 'exactly one of "ratio"'),
    ({"kind": "put_events_failures", "ratio": 1.5}, "0 < ratio <= 1"),
    ({"kind": "put_events_failures", "every": 0}, "every must be an integer >= 1"),
    ({"kind": "put_events_failures", "every": 1, "table": "t"}, "unknown field(s) table"),
    ({"kind": "dynamodb_write_throttling", "every": 1, "callers": ["robots"]}, "callers must be"),
    ({"kind": "dynamodb_write_throttling", "every": 1, "error": "InternalFailure"}, "error must be one of"),
    ({"kind": "dynamodb_write_throttling", "every": 1, "duration_s": 0}, "duration_s must be"),
])
def test_a_wrong_switch_is_refused_with_what_to_send(emulator, body, message):
    status, answer = emulator.faults("POST", body)
    assert status == 400 and message in answer["message"], answer
    assert emulator.faults()[1]["faults"] == {}


def test_delete_turns_every_switch_off_and_keeps_the_counts(emulator, no_sleep):
    queue_url = bus_to_queue(emulator)
    make_table(emulator, "t")
    emulator.faults("POST", {"kind": "put_events_failures", "every": 1})
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 1})
    emulator.client("events").put_events(Entries=entries(2))
    with pytest.raises(emulator.client("dynamodb").exceptions.ThrottlingException):
        emulator.client("dynamodb").put_item(TableName="t", Item=item("a"))
    status, after = emulator.faults("DELETE")
    assert status == 200 and after["faults"] == {}
    assert after["injected"] == {"put_events_failures": 2, "dynamodb_write_throttling": 1}
    assert emulator.client("events").put_events(Entries=entries(2, start=10))["FailedEntryCount"] == 0
    emulator.client("dynamodb").put_item(TableName="t", Item=item("a"))
    assert delivered(emulator, queue_url) == [10, 11]
    # Setting a kind again starts its counts again.
    assert emulator.faults("POST", {"kind": "put_events_failures", "every": 3})[1]["injected"]["put_events_failures"] == 0


def test_delete_of_one_kind_leaves_the_other_on(emulator):
    emulator.faults("POST", {"kind": "put_events_failures", "every": 1})
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 1})
    status, after = emulator.faults("DELETE", query="?kind=put_events_failures")
    assert status == 200 and list(after["faults"]) == ["dynamodb_write_throttling"]


# ---------------------------------------------------------------- PutEvents partial failures

def test_every_nth_entry_fails_as_aws_reports_a_partial_failure_and_is_not_delivered(emulator):
    queue_url = bus_to_queue(emulator)
    status, state = emulator.faults("POST", {"kind": "put_events_failures", "every": 2})
    assert status == 200 and state["faults"]["put_events_failures"]["every"] == 2
    answer = emulator.client("events").put_events(Entries=entries(5))
    assert answer["FailedEntryCount"] == 2
    results = answer["Entries"]
    assert len(results) == 5  # one result per entry, in the request's order
    for index in (1, 3):
        assert set(results[index]) == {"ErrorCode", "ErrorMessage"} and results[index]["ErrorCode"] == "InternalFailure"
    for index in (0, 2, 4):
        assert set(results[index]) == {"EventId"}
    assert delivered(emulator, queue_url) == [0, 2, 4]
    # The count runs on across calls: the 6th entry overall is the next to fail.
    second = emulator.client("events").put_events(Entries=entries(2, start=5))
    assert [("ErrorCode" in e) for e in second["Entries"]] == [True, False]
    assert emulator.faults()[1]["injected"]["put_events_failures"] == 3


def test_ratio_one_fails_every_entry_and_delivers_nothing(emulator):
    queue_url = bus_to_queue(emulator)
    emulator.faults("POST", {"kind": "put_events_failures", "ratio": 1, "error": "ThrottlingException"})
    answer = emulator.client("events").put_events(Entries=entries(3))
    assert answer["FailedEntryCount"] == 3
    assert {e["ErrorCode"] for e in answer["Entries"]} == {"ThrottlingException"}
    assert delivered(emulator, queue_url) == []


def test_a_seeded_ratio_fails_the_same_entries_each_time(emulator):
    bus_to_queue(emulator)
    outcomes = []
    for _ in range(2):
        emulator.faults("POST", {"kind": "put_events_failures", "ratio": 0.5, "seed": 7})
        answer = emulator.client("events").put_events(Entries=entries(10))
        outcomes.append([("ErrorCode" in e) for e in answer["Entries"]])
    assert outcomes[0] == outcomes[1] and 0 < sum(outcomes[0]) < 10


def test_only_the_named_bus_and_the_callers_chosen_are_failed(emulator):
    payments_queue = bus_to_queue(emulator, "payments")
    default_queue = bus_to_queue(emulator, "default")
    emulator.faults("POST", {"kind": "put_events_failures", "every": 1, "bus": "payments"})
    answer = emulator.client("events").put_events(Entries=entries(2, bus="payments") + entries(2, bus="default", start=2))
    assert [("ErrorCode" in e) for e in answer["Entries"]] == [True, True, False, False]
    assert delivered(emulator, payments_queue) == [] and delivered(emulator, default_queue) == [2, 3]
    # The data plane and Terraform are left alone unless named in `callers`.
    for user_agent in (DATAPLANE_UA, TERRAFORM_UA):
        events = emulator.client("events", user_agent_extra=user_agent)
        assert events.put_events(Entries=entries(1, start=9))["FailedEntryCount"] == 0
    emulator.faults("POST", {"kind": "put_events_failures", "every": 1, "callers": ["dataplane"]})
    assert emulator.client("events", user_agent_extra=DATAPLANE_UA).put_events(Entries=entries(1))["FailedEntryCount"] == 1
    assert emulator.client("events").put_events(Entries=entries(1))["FailedEntryCount"] == 0


def test_apps_limits_the_failures_to_the_named_functions(emulator):
    bus_to_queue(emulator)
    emulator.faults("POST", {"kind": "put_events_failures", "every": 1, "apps": ["outbox_relay"]})
    assert emulator.client("events", app_id="outbox_relay").put_events(Entries=entries(1))["FailedEntryCount"] == 1
    assert emulator.client("events", app_id="notifier").put_events(Entries=entries(1))["FailedEntryCount"] == 0
    assert emulator.client("events").put_events(Entries=entries(1))["FailedEntryCount"] == 0


# ---------------------------------------------------------------- DynamoDB write throttling

def test_a_throttled_write_to_an_on_demand_table_is_a_throttling_exception_in_aws_shape(emulator):
    make_table(emulator, "ondemand")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 1})
    dynamodb = emulator.client("dynamodb")
    answer = emulator.http.post("/", headers={
        "X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Type": "application/x-amz-json-1.0",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
    }, data=json.dumps({"TableName": "ondemand", "Item": item("a")}))
    assert answer.status_code == 400
    assert answer.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert answer.headers["x-amz-crc32"] == str(zlib.crc32(answer.get_data()))
    assert json.loads(answer.get_data()) == {
        "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "message": "Rate of requests exceeds the allowed throughput.",
        "throttlingReasons": [{"reason": "TableWriteKeyRangeThroughputExceeded",
                               "resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ondemand"}],
    }
    with pytest.raises(dynamodb.exceptions.ThrottlingException) as raised:
        dynamodb.put_item(TableName="ondemand", Item=item("b"))
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    emulator.faults("DELETE")
    assert "Item" not in dynamodb.get_item(TableName="ondemand", Key=item("a"))  # nothing was written


def test_a_provisioned_table_gets_provisioned_throughput_exceeded(emulator):
    make_table(emulator, "provisioned", billing="PROVISIONED")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 1})
    dynamodb = emulator.client("dynamodb")
    with pytest.raises(dynamodb.exceptions.ProvisionedThroughputExceededException) as raised:
        dynamodb.update_item(TableName="provisioned", Key=item("a"), UpdateExpression="SET v = :v",
                             ExpressionAttributeValues={":v": {"N": "1"}})
    assert raised.value.response["ThrottlingReasons"] == [
        {"reason": "TableWriteProvisionedThroughputExceeded", "resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/provisioned"}]


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_the_sdk_retries_a_throttled_write_through(emulator, no_sleep, mode):
    make_table(emulator, "t")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 2})
    dynamodb = emulator.client("dynamodb", retries={"mode": mode, "total_max_attempts": 4})
    emulator.attempts.clear()
    dynamodb.put_item(TableName="t", Item=item("first"))  # the 1st write goes through
    dynamodb.put_item(TableName="t", Item=item("second"))  # the 2nd is throttled, its retry (the 3rd) goes through
    assert emulator.attempts == ["DynamoDB_20120810.PutItem"] * 3 and len(no_sleep) == 1
    assert "Item" in dynamodb.get_item(TableName="t", Key=item("second"))
    assert emulator.faults()[1]["injected"]["dynamodb_write_throttling"] == 1


def test_ratio_one_outlasts_the_sdk_retries(emulator, no_sleep):
    make_table(emulator, "t")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "ratio": 1})
    dynamodb = emulator.client("dynamodb", retries={"mode": "standard", "total_max_attempts": 4})
    with pytest.raises(dynamodb.exceptions.ThrottlingException) as raised:
        dynamodb.put_item(TableName="t", Item=item("a"))
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert emulator.faults()[1]["injected"]["dynamodb_write_throttling"] == 4


def test_reads_are_never_throttled(emulator):
    make_table(emulator, "t")
    emulator.client("dynamodb").put_item(TableName="t", Item=item("a"))
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "ratio": 1})
    dynamodb = emulator.client("dynamodb")
    assert dynamodb.get_item(TableName="t", Key=item("a"))["Item"] == item("a")
    assert dynamodb.query(TableName="t", KeyConditionExpression="pk = :a",
                          ExpressionAttributeValues={":a": {"S": "a"}})["Count"] == 1
    assert dynamodb.batch_get_item(RequestItems={"t": {"Keys": [item("a")]}})["Responses"]["t"] == [item("a")]
    assert emulator.faults()[1]["eligible"]["dynamodb_write_throttling"] == 0


def test_a_table_switch_throttles_every_kind_of_write_to_that_table_only(emulator):
    make_table(emulator, "hot")
    make_table(emulator, "cold")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 1, "table": "hot"})
    dynamodb = emulator.client("dynamodb")
    throttled = dynamodb.exceptions.ThrottlingException
    with pytest.raises(throttled):
        dynamodb.put_item(TableName="hot", Item=item("a"))
    with pytest.raises(throttled):
        dynamodb.delete_item(TableName=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/hot", Key=item("a"))
    with pytest.raises(throttled):
        dynamodb.batch_write_item(RequestItems={"hot": [{"PutRequest": {"Item": item("b")}}]})
    with pytest.raises(throttled):
        dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "cold", "Item": item("c")}},
                                                     {"Put": {"TableName": "hot", "Item": item("c")}}])
    dynamodb.put_item(TableName="cold", Item=item("a"))
    dynamodb.transact_write_items(TransactItems=[{"Put": {"TableName": "cold", "Item": item("d")}}])
    assert emulator.faults()[1]["injected"]["dynamodb_write_throttling"] == 4
    assert "Item" not in dynamodb.get_item(TableName="cold", Key=item("c"))  # the refused transaction wrote nothing


def test_a_duration_ends_the_switch_by_itself(emulator):
    now = [100.0]
    emulator.app.faults = FaultSwitches(ACCOUNT, clock=lambda: now[0])
    make_table(emulator, "t")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "every": 1, "duration_s": 30})
    dynamodb = emulator.client("dynamodb")
    now[0] += 29.5
    assert emulator.faults()[1]["faults"]["dynamodb_write_throttling"]["remaining_s"] == 0.5
    with pytest.raises(dynamodb.exceptions.ThrottlingException):
        dynamodb.put_item(TableName="t", Item=item("a"))
    now[0] += 0.5
    dynamodb.put_item(TableName="t", Item=item("a"))
    state = emulator.faults()[1]
    assert state["faults"]["dynamodb_write_throttling"]["active"] is False
    assert state["injected"]["dynamodb_write_throttling"] == 1


def test_terraform_and_the_data_plane_are_not_throttled_by_default(emulator):
    make_table(emulator, "t")
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "ratio": 1})
    for user_agent in (TERRAFORM_UA, DATAPLANE_UA):
        emulator.client("dynamodb", user_agent_extra=user_agent).put_item(TableName="t", Item=item(user_agent))
    emulator.faults("POST", {"kind": "dynamodb_write_throttling", "ratio": 1, "callers": ["terraform"]})
    terraform = emulator.client("dynamodb", user_agent_extra=TERRAFORM_UA)
    with pytest.raises(terraform.exceptions.ThrottlingException):
        terraform.put_item(TableName="t", Item=item("x"))


# ---------------------------------------------------------------- the chaos runner's client (localdev.faults)

@pytest.fixture()
def served(emulator):
    """The in-process emulator on a local port, as the client reaches a stack: outputs naming it."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, emulator.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    yield {"aws_endpoint_url": url, "dataplane_url": url}
    server.shutdown()
    thread.join(5)


def test_the_client_sets_reads_and_clears_the_emulator_switches(emulator, served):
    from localdev import faults

    make_table(emulator, "t")
    state = faults.set_dynamodb_write_throttling(served, 0.5, table="t", duration_s=60, seed=3)
    switch = state["faults"]["dynamodb_write_throttling"]
    assert {name: value for name, value in switch.items() if name != "remaining_s"} == {
        "callers": ["clients"], "active": True, "ratio": 0.5, "seed": 3, "duration_s": 60.0, "table": "t"}
    assert 0 < switch["remaining_s"] <= 60
    assert faults.set_put_events_failures(served, every=2)["faults"]["put_events_failures"]["every"] == 2
    with pytest.raises(ValueError, match="exactly one of ratio"):
        faults.set_put_events_failures(served, 0.5, every=2)
    with pytest.raises(ValueError, match="0 < ratio <= 1"):
        faults.set_put_events_failures(served, 2.0)
    # This server has no data plane behind it: the parts that need one say so in one line.
    with pytest.raises(faults.FaultsUnsupported, match="has no fault switches"):
        faults.kill_worker(served, "process_payment")
    assert emulator.faults()[1]["faults"].keys() == {"put_events_failures", "dynamodb_write_throttling"}
    with pytest.raises(faults.FaultsUnsupported):
        faults.clear(served)  # the emulator's switches went off before the data plane was asked
    assert emulator.faults()[1]["faults"] == {}


def test_the_client_says_when_a_stack_has_no_switches():
    from localdev import faults

    with pytest.raises(faults.FaultsUnsupported, match="not AWS"):
        faults.set_put_events_failures({"api_url": "https://example.execute-api.us-east-1.amazonaws.com/v1"}, 0.5)
    with pytest.raises(faults.FaultsUnsupported, match="not reachable"):
        faults.injected({"aws_endpoint_url": "http://127.0.0.1:9", "dataplane_url": "http://127.0.0.1:9"})
