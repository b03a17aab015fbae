"""`paystream-ops dlq` (paystream_ops.cli / paystream_ops.dlq) on in-process moto: depths and ages listed, both
envelopes and the failure reasons decoded, messages left in place by every read, a redrive that deletes only
what it sent (an injected send failure half-way loses nothing and a re-run finishes, each message delivered
once), the event-bus target DLQ re-published with PutEvents (rejected entries kept), purge only when confirmed,
and the exit codes a script relies on."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from paystream_ops import cli, dlq
from paystream_ops.environment import Environment

REGION = "us-east-1"
BUS = "paystream-test"


def _queue(sqs, name: str, dlq_url: str | None = None, max_receive_count: int = 3) -> str:
    attributes = {}
    if dlq_url:
        arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


@pytest.fixture()
def stack(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(dlq, "RECEIVE_WAIT_SECONDS", 0)  # moto answers at once; keeps the tests fast
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        process_dlq = _queue(sqs, "ps-process-payment-dlq")
        process = _queue(sqs, "ps-process-payment", process_dlq)
        relay_dlq = _queue(sqs, "ps-relay-failures-dlq")
        relay = _queue(sqs, "ps-relay-failures", relay_dlq, max_receive_count=5)
        target_dlq = _queue(sqs, f"ps-{BUS}-target-dlq")
        observer = _queue(sqs, "observer")  # what the bus delivers, for the re-publish tests
        events.create_event_bus(Name=BUS)
        events.put_rule(Name="payments", EventBusName=BUS, EventPattern=json.dumps({"source": ["paystream.payments"]}))
        observer_arn = sqs.get_queue_attributes(QueueUrl=observer, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_targets(Rule="payments", EventBusName=BUS, Targets=[{"Id": "sqs", "Arn": observer_arn}])
        outputs = tmp_path / "outputs.json"  # the local stack's shape (plain values)
        outputs.write_text(json.dumps({
            "region": REGION, "bus_name": BUS,
            "queue_urls": {"process-payment": process, "relay-failures": relay},
            "dlq_urls": {"process-payment": process_dlq, "relay-failures": relay_dlq, "event-bus-targets": target_dlq,
                         "relay-failures-destination": relay},
        }))
        yield {"sqs": sqs, "events": events, "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
               "outputs": str(outputs), "process": process, "process_dlq": process_dlq, "relay": relay,
               "relay_dlq": relay_dlq, "target_dlq": target_dlq, "observer": observer}


def run(stack, *args: str) -> int:
    return cli.main(["--outputs", stack["outputs"], "dlq", *args])


def event(n: int, detail_type: str = "payment.succeeded") -> dict:
    return {"version": "0", "id": f"bus-{n}", "source": "paystream.payments", "detail-type": detail_type,
            "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": REGION, "resources": [],
            "detail": {"event_id": f"ev-{n}", "transaction_id": f"tx-{n}", "amount": 1000 + n}}


def dead_letter_event(stack, n: int, body: str | None = None) -> None:
    """What EventBridge writes to a target's DLQ: the original event, the failure in message attributes."""
    attributes = {"ERROR_CODE": "SQSQueueDoesNotExist", "ERROR_MESSAGE": "queue gone",
                  "RULE_ARN": f"arn:aws:events:{REGION}:123456789012:rule/{BUS}/payments",
                  "TARGET_ARN": f"arn:aws:sqs:{REGION}:123456789012:ps-notifications", "RETRY_ATTEMPTS": "185"}
    stack["sqs"].send_message(QueueUrl=stack["target_dlq"], MessageBody=body or json.dumps(event(n)),
                              MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()})


def drain(sqs, url: str) -> list[dict]:
    messages = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                       MessageAttributeNames=["All"]).get("Messages", []):
        messages += batch
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                       for i, m in enumerate(batch)])
    return messages


def depth(sqs, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def row(output: str, key: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"│ {key} "))
    return [cell.strip() for cell in line.strip("│").split("│")]


class Recording:
    """An SQS client that records sends and deletes, and fails the Nth send_message_batch."""

    def __init__(self, client, fail_send_call: int | None = None):
        self._client, self.fail_send_call, self.log, self.send_calls = client, fail_send_call, [], 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def send_message_batch(self, **kw):
        self.send_calls += 1
        if self.send_calls == self.fail_send_call:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, "SendMessageBatch")
        self.log += [("sent", e["MessageBody"]) for e in kw["Entries"]]
        return self._client.send_message_batch(**kw)

    def delete_message_batch(self, QueueUrl, Entries):
        self.log += [("deleted", h["ReceiptHandle"]) for h in Entries]
        return self._client.delete_message_batch(QueueUrl=QueueUrl, Entries=Entries)


def use_sqs(monkeypatch, client) -> None:
    original = Environment.client
    monkeypatch.setattr(Environment, "client", lambda self, service: client if service == "sqs" else original(self, service))


# ------------------------------------------------------------------------------------------------------ list


def test_list_shows_every_dlq_with_depth_age_and_source_and_exits_3_when_any_holds_messages(stack, capsys):
    sqs = stack["sqs"]
    assert run(stack, "list") == 0  # all empty
    for n in range(3):
        sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody=json.dumps(event(n)))
    sqs.receive_message(QueueUrl=stack["process_dlq"], MaxNumberOfMessages=1, VisibilityTimeout=300)  # in flight
    dead_letter_event(stack, 9)
    capsys.readouterr()

    assert run(stack, "list") == 3
    out, err = capsys.readouterr()
    name, kind, total, visible, in_flight, oldest, source = row(out, "process-payment")
    assert (kind, total, visible, in_flight, source) == ("sqs-dlq", "3", "2", "1", "queue process-payment")
    assert oldest.endswith("(sample)")  # moto has no SQS metrics: the age comes from a sample's SentTimestamp
    assert row(out, "event-bus-targets")[1:4] == ["event-bus-target-dlq", "1", "1"]
    assert row(out, "event-bus-targets")[6] == f"rule targets on {BUS}"
    assert row(out, "relay-failures-destination")[1:3] == ["on-failure-destination", "0"]
    assert row(out, "relay-failures-destination")[6].startswith("on-failure of outbox_relay")
    assert "2 DLQ(s) hold messages" in err
    assert depth(sqs, stack["process_dlq"]) == (2, 1)  # the sample went back: nothing consumed


def test_list_does_not_sample_a_queue_with_its_own_redrive_policy(stack, capsys):
    # Sampling the on-failure destination would count receives toward its maxReceiveCount (5) and push its
    # messages into its own DLQ.
    stack["sqs"].send_message(QueueUrl=stack["relay"], MessageBody="{}")
    assert run(stack, "list") == 3
    assert row(capsys.readouterr().out, "relay-failures-destination")[5] == "not sampled"
    message = stack["sqs"].receive_message(QueueUrl=stack["relay"], AttributeNames=["All"])["Messages"][0]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this receive is the first


def test_oldest_age_prefers_the_cloudwatch_metric(stack):
    environment = Environment.load(stack["outputs"])
    queue = dlq.resolve(environment, "process-payment")
    now = datetime.now(timezone.utc)
    stack["cloudwatch"].put_metric_data(Namespace="AWS/SQS", MetricData=[{
        "MetricName": "ApproximateAgeOfOldestMessage", "Dimensions": [{"Name": "QueueName", "Value": queue.name}],
        "Value": 5400, "Timestamp": now - timedelta(minutes=1)}])
    age, basis = dlq.oldest_age(environment, stack["sqs"], queue, False, now)
    assert (age, basis) == (timedelta(seconds=5400), "metric")


# ------------------------------------------------------------------------------------------------------ peek


def test_peek_decodes_eventbridge_and_sns_envelopes_and_failure_reasons_and_leaves_messages(stack, capsys):
    sqs = stack["sqs"]
    dead_letter_event(stack, 1)
    sns = {"Type": "Notification", "MessageId": "sns-1", "TopicArn": f"arn:aws:sns:{REGION}:123456789012:ops-alerts",
           "Subject": "hello", "Message": json.dumps(event(2, "payment.failed")), "Timestamp": "2026-11-22T10:00:00Z"}
    sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody=json.dumps(sns))

    assert run(stack, "peek", "event-bus-targets") == 0
    out = capsys.readouterr().out
    assert "eventbridge · paystream.payments · payment.succeeded · bus-1" in out
    assert "SQSQueueDoesNotExist: queue gone (rule arn:aws:events" in out and "185 retries" in out
    assert run(stack, "peek", "ps-process-payment-dlq") == 0  # by queue name too
    out = capsys.readouterr().out
    assert "sns · paystream.payments · payment.failed · bus-2" in out and "ops-alerts" in out
    assert depth(sqs, stack["target_dlq"]) == (1, 0) and depth(sqs, stack["process_dlq"]) == (1, 0)

    decoded = dlq.decode(sqs.receive_message(QueueUrl=stack["process_dlq"], MessageAttributeNames=["All"],
                                             AttributeNames=["All"])["Messages"][0])
    assert decoded["kind"] == "sns" and decoded["message"]["detail"]["event_id"] == "ev-2"
    assert decoded["subject"] == "hello"


def test_peek_decodes_a_lambda_on_failure_record_and_warns_that_reads_count(stack, capsys):
    record = {"version": "1.0", "timestamp": "2026-11-22T10:00:00Z",
              "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:1:function:relay",
                                 "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
              "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
              "DDBStreamBatchInfo": {"shardId": "shard-1", "startSequenceNumber": "100", "endSequenceNumber": "100",
                                     "batchSize": 1}}
    stack["sqs"].send_message(QueueUrl=stack["relay"], MessageBody=json.dumps(record))
    assert run(stack, "peek", "relay-failures-destination") == 0
    out, err = capsys.readouterr()
    assert "RetryAttemptsExhausted: function error Unhandled (status 200) after 11 invocation(s)" in out
    assert '"shardId": "shard-1"' in out
    assert "has its own redrive policy (maxReceiveCount 5)" in err


# --------------------------------------------------------------------------------------------------- redrive


def test_redrive_moves_every_message_once_deleting_only_after_the_send_and_a_rerun_finishes(stack, monkeypatch, capsys):
    sqs = stack["sqs"]
    bodies = {json.dumps(event(n)) for n in range(25)}
    for body in bodies:
        sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody=body)
    flaky = Recording(sqs, fail_send_call=2)  # moto lacks StartMessageMoveTask: the receive/send/delete path
    use_sqs(monkeypatch, flaky)

    assert run(stack, "redrive", "process-payment", "--yes") == 1
    err = capsys.readouterr().err
    assert "sending failed after 10 message(s) moved" in err and "run the redrive again" in err
    assert "StartMessageMoveTask is not available" in err
    assert depth(sqs, stack["process_dlq"]) == (15, 0)  # the unsent ones are visible again at once
    # Every delete followed the send of the same message.
    sent = [body for what, body in flaky.log if what == "sent"]
    assert len(sent) == 10 and sum(what == "deleted" for what, _ in flaky.log) == 10
    assert flaky.log.index(("sent", sent[-1])) < next(i for i, (what, _) in enumerate(flaky.log) if what == "deleted")

    flaky.fail_send_call = None
    assert run(stack, "redrive", "process-payment", "--yes") == 0
    assert "15 message(s) redriven from ps-process-payment-dlq to ps-process-payment" in capsys.readouterr().out
    delivered = [m["Body"] for m in drain(sqs, stack["process"])]
    assert sorted(delivered) == sorted(bodies)  # nothing lost, nothing twice
    assert depth(sqs, stack["process_dlq"]) == (0, 0)
    points = stack["cloudwatch"].get_metric_statistics(
        Namespace="paystream", MetricName="DLQRedriven", Dimensions=[{"Name": "Queue", "Value": "ps-process-payment-dlq"}],
        StartTime=datetime.now(timezone.utc) - timedelta(minutes=5), EndTime=datetime.now(timezone.utc) + timedelta(minutes=1),
        Period=3600, Statistics=["Sum"])["Datapoints"]
    assert sum(p["Sum"] for p in points) == 25


class Interrupting(Recording):
    """Ctrl-C (KeyboardInterrupt) inside the Nth call of `operation`: the batch it holds is in hand."""

    def __init__(self, client, operation: str, call: int):
        super().__init__(client)
        self.operation, self.call, self.calls = operation, call, 0

    def _maybe_interrupt(self, operation: str) -> None:
        if operation == self.operation:
            self.calls += 1
            if self.calls == self.call:
                raise KeyboardInterrupt

    def send_message_batch(self, **kw):
        self._maybe_interrupt("send")
        return super().send_message_batch(**kw)

    def delete_message_batch(self, QueueUrl, Entries):
        self._maybe_interrupt("delete")
        return super().delete_message_batch(QueueUrl=QueueUrl, Entries=Entries)


@pytest.mark.parametrize("operation", ["send", "delete"])
def test_an_interrupted_redrive_leaves_the_batch_in_hand_visible_so_a_rerun_finishes(stack, monkeypatch, capsys,
                                                                                    operation):
    # Found by the e2e drill (tests/e2e/test_ops_dlq_drill.py): Ctrl-C while a received batch was being sent
    # left it invisible for the read visibility (60 s), so the re-run missed it, exited 0, and the messages
    # reappeared in the DLQ a minute later.
    sqs = stack["sqs"]
    bodies = {json.dumps(event(n)) for n in range(25)}
    for body in bodies:
        sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody=body)
    use_sqs(monkeypatch, Interrupting(sqs, operation, call=2))  # the second batch of ten is in hand

    assert run(stack, "redrive", "process-payment", "--yes") == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "paystream-ops dlq redrive: interrupted; run it again to finish (see its --help for what an interruption "
        "leaves)")
    assert depth(sqs, stack["process_dlq"]) == (15, 0)  # nothing left invisible: a re-run sees all of it

    use_sqs(monkeypatch, sqs)
    assert run(stack, "redrive", "process-payment", "--yes") == 0
    assert "15 message(s) redriven" in capsys.readouterr().out
    assert depth(sqs, stack["process_dlq"]) == (0, 0)
    delivered = [m["Body"] for m in drain(sqs, stack["process"])]
    assert set(delivered) == bodies  # nothing lost
    # Interrupted before its delete, a sent batch is sent again by the re-run (at least once, as documented).
    assert len(delivered) == (25 if operation == "send" else 35)


def test_redrive_max_and_dry_run(stack, capsys):
    sqs = stack["sqs"]
    for n in range(5):
        sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody=json.dumps(event(n)))
    assert run(stack, "redrive", "process-payment", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "Would redrive 5 message(s) from ps-process-payment-dlq to ps-process-payment" in out and "ev-3" in out
    assert depth(sqs, stack["process_dlq"]) == (5, 0) and depth(sqs, stack["process"]) == (0, 0)
    assert run(stack, "redrive", "process-payment", "--max", "2", "--rate", "100", "--yes") == 0
    assert depth(sqs, stack["process_dlq"]) == (3, 0) and depth(sqs, stack["process"]) == (2, 0)


def test_redrive_splits_batches_over_the_256_kib_request_limit(stack, capsys):
    sqs = stack["sqs"]
    # SQS takes 1 MiB per message and per batch request (moto 5.2.5 too): three of 400 KB need two requests.
    bodies = {json.dumps({"n": n, "pad": "x" * 400_000}) for n in range(3)}
    for body in bodies:
        sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody=body)
    assert run(stack, "redrive", "process-payment", "--yes") == 0
    assert sorted(m["Body"] for m in drain(sqs, stack["process"])) == sorted(bodies)


def test_redrive_uses_start_message_move_task_where_sqs_has_it(stack, monkeypatch, capsys):
    sqs = stack["sqs"]
    sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody="x")
    calls = []

    class WithMoveTasks(Recording):
        def start_message_move_task(self, **kw):
            calls.append(kw)
            return {"TaskHandle": "t-1"}

        def list_message_move_tasks(self, **kw):
            return {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 1,
                                 "ApproximateNumberOfMessagesToMove": 1}]}

    client = WithMoveTasks(sqs)
    use_sqs(monkeypatch, client)
    assert run(stack, "redrive", "process-payment", "--rate", "7", "--yes") == 0
    assert calls == [{"SourceArn": "arn:aws:sqs:us-east-1:123456789012:ps-process-payment-dlq",
                      "DestinationArn": "arn:aws:sqs:us-east-1:123456789012:ps-process-payment",
                      "MaxNumberOfMessagesPerSecond": 7}]
    assert client.log == []  # SQS moved it: no receive/send/delete of our own
    assert "1 message(s) redriven" in capsys.readouterr().out


def test_redrive_of_the_bus_target_dlq_republishes_with_put_events_and_keeps_rejected_entries(stack, monkeypatch, capsys):
    sqs, events = stack["sqs"], stack["events"]
    for n in range(3):
        dead_letter_event(stack, n)
    dead_letter_event(stack, 99, body="not an event")
    real_put_events, put = events.put_events, []

    def put_events(Entries):  # EventBridge rejects one entry of the batch
        put.extend(Entries)
        results = real_put_events(Entries=[e for e in Entries if "tx-1" not in e["Detail"]])["Entries"]
        return {"FailedEntryCount": 1, "Entries": [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} if "tx-1" in e["Detail"] else results.pop(0)
            for e in Entries]}

    monkeypatch.setattr(events, "put_events", put_events)
    original = Environment.client
    monkeypatch.setattr(Environment, "client", lambda self, s: events if s == "events" else original(self, s))

    assert run(stack, "redrive", "event-bus-targets", "--yes") == 1
    assert "2 message(s) could not be sent and stay in the DLQ (2 moved)" in capsys.readouterr().err
    assert {(e["Source"], e["DetailType"], e["EventBusName"]) for e in put} == {("paystream.payments", "payment.succeeded", BUS)}
    delivered = sorted((json.loads(m["Body"]) for m in drain(sqs, stack["observer"])), key=lambda e: e["detail"]["event_id"])
    assert [(e["source"], e["detail-type"], e["detail"]) for e in delivered] == [
        (e["source"], e["detail-type"], e["detail"]) for e in (event(0), event(2))]
    left = sorted(m["Body"] for m in drain(sqs, stack["target_dlq"]))
    assert left == sorted([json.dumps(event(1)), "not an event"])


# ------------------------------------------------------------------------------------------- export / purge


def test_export_writes_jsonl_and_leaves_the_messages(stack, tmp_path, capsys):
    for n in range(3):
        dead_letter_event(stack, n)
    target = tmp_path / "dlq.jsonl"
    assert run(stack, "export", "event-bus-targets", str(target)) == 0
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(line["decoded"]["detail"]["event_id"] for line in lines) == ["ev-0", "ev-1", "ev-2"]
    assert all(line["message"]["MessageAttributes"]["ERROR_CODE"]["StringValue"] == "SQSQueueDoesNotExist" for line in lines)
    assert depth(stack["sqs"], stack["target_dlq"]) == (3, 0)


def test_purge_needs_confirmation(stack, monkeypatch, capsys):
    sqs = stack["sqs"]
    sqs.send_message(QueueUrl=stack["process_dlq"], MessageBody="x")
    assert run(stack, "purge", "process-payment") == 2  # no terminal to ask on
    assert "pass --yes" in capsys.readouterr().err
    assert run(stack, "purge", "process-payment", "--dry-run") == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert run(stack, "purge", "process-payment") == 1
    assert depth(sqs, stack["process_dlq"]) == (1, 0)
    monkeypatch.setattr("builtins.input", lambda prompt: "process-payment")
    assert run(stack, "purge", "process-payment") == 0
    assert depth(sqs, stack["process_dlq"]) == (0, 0)
    sqs.send_message(QueueUrl=stack["target_dlq"], MessageBody="y")  # (SQS allows one purge a minute per queue)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert cli.main(["--outputs", stack["outputs"], "--yes", "dlq", "purge", "event-bus-targets"]) == 0  # global
    assert depth(sqs, stack["target_dlq"]) == (0, 0)


# ------------------------------------------------------------------------------------------------ exit codes


def test_usage_and_environment_errors_exit_2_with_one_line(stack, tmp_path, capsys):
    assert run(stack, "peek", "nope") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no DLQ named 'nope'; known: event-bus-targets, process-payment" in err
    assert run(stack, "redrive", "relay-failures-destination", "--yes") == 2
    assert "Lambda on-failure records" in capsys.readouterr().err
    assert cli.main(["--outputs", str(tmp_path / "missing.json"), "dlq", "list"]) == 2
    assert "no outputs at" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dlq", "peek", "x", "--max", "0"])
    assert exit_.value.code == 2


def test_deployed_environments_are_read_from_terraform_output(stack, monkeypatch, capsys):
    wrapped = {k: {"sensitive": False, "type": "x", "value": v} for k, v in json.loads(open(stack["outputs"]).read()).items()}
    seen = []

    def terraform(command, **kw):
        seen.append(command)
        return type("Done", (), {"returncode": 0, "stdout": json.dumps(wrapped), "stderr": ""})()

    monkeypatch.setattr(cli.subprocess, "run", terraform)
    assert cli.main(["--env", "staging", "dlq", "list"]) == 0
    assert seen == [["terraform", f"-chdir={cli.PROJECT_ROOT}/terraform/environments/staging", "output", "-json"]]
    monkeypatch.setattr(cli.subprocess, "run", lambda command, **kw: type("Failed", (), {
        "returncode": 1, "stdout": "", "stderr": "Error: Backend initialization required\n"})())
    assert cli.main(["--env", "prod", "dlq", "list"]) == 2
    assert "terraform output failed" in capsys.readouterr().err
