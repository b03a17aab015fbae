"""Chaos drills on the data plane (localdev.dataplane.chaos): a function worker killed mid-invocation fails it
as a crashed Lambda sandbox does (Runtime.ExitError), and the event source mapping's retry brings the batch back."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from conftest import function_sources

pytestmark = pytest.mark.integration

TOOLBOX = function_sources("toolbox")
# Prints each SQS message body with its pid, then works for a while: long enough to be killed in the middle.
SLOW_CONSUMER = """
import os, time

def handler(event, context):
    for record in event["Records"]:
        print(f"got {record['body']} in {os.getpid()}", flush=True)
    time.sleep(1.5)
    return {"batchItemFailures": []}
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def eventually(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s")


def chaos(dataplane, body: dict | None = None, method: str = "POST"):
    path = "/_dataplane/chaos/kill-worker" if method == "POST" else "/_dataplane/chaos"
    status, _, answer = dataplane._request(method, path, json.dumps(body).encode() if body is not None else b"")
    return status, json.loads(answer)


def function_status(dataplane, name: str) -> dict:
    return {f["name"]: f for f in dataplane.status()["functions"]}[name]


def test_the_next_invocation_is_killed_mid_run_and_fails_as_a_crashed_sandbox(deploy_function, dataplane):
    name = unique("kill-next")
    deploy_function(name, TOOLBOX, timeout=10)
    dataplane.reload()
    before = json.loads(dataplane.invoke(name, {})[2])
    status, armed = chaos(dataplane, {"function": name, "when": "next-invocation", "after_ms": 200})
    assert status == 202 and armed == {"armed": 1, "function": name}
    status, headers, body = dataplane.invoke(name, {"action": "sleep", "seconds": 5})
    assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
    error = json.loads(body)
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")
    state = chaos(dataplane, method="GET")[1]
    assert state["kills"] == {name: 1} and state["armed"] == {}
    assert state["recent"][-1]["pid"] == before["pid"] and state["recent"][-1]["when"] == "next-invocation"
    assert dataplane.status()["chaos"]["kills"] == {name: 1}
    after = json.loads(dataplane.invoke(name, {})[2])  # a fresh worker serves the next one
    assert after["pid"] != before["pid"] and after["invocations"] == 1


def test_an_invocation_that_ends_before_its_moment_is_spared_and_the_kill_waits(deploy_function, dataplane):
    name = unique("kill-later")
    deploy_function(name, TOOLBOX, timeout=10)
    dataplane.reload()
    chaos(dataplane, {"function": name, "when": "next-invocation", "after_ms": 1500})
    quick = dataplane.invoke(name, {})
    assert "x-amz-function-error" not in quick[1]
    assert chaos(dataplane, method="GET")[1]["armed"] == {name: 1}
    slow = dataplane.invoke(name, {"action": "sleep", "seconds": 6})
    assert json.loads(slow[2])["errorType"] == "Runtime.ExitError"
    assert chaos(dataplane, method="GET")[1]["kills"].get(name) == 1


def test_now_kills_the_worker_running_an_invocation(deploy_function, dataplane):
    name = unique("kill-now")
    deploy_function(name, TOOLBOX, timeout=20)
    dataplane.reload()
    status, answer = chaos(dataplane, {"function": name, "when": "now"})
    assert status == 409 and "no invocation of" in answer["message"]  # nothing runs yet
    outcome = {}
    caller = threading.Thread(target=lambda: outcome.setdefault("r", dataplane.invoke(name, {"action": "sleep", "seconds": 15})))
    caller.start()
    killed = eventually(lambda: (lambda r: r[1] if r[0] == 200 else None)(chaos(dataplane, {"function": name, "when": "now"})),
                        what="an invocation to be running")
    caller.join(20)
    assert killed["killed"]["function"] == name and killed["killed"]["when"] == "now"
    assert json.loads(outcome["r"][2])["errorType"] == "Runtime.ExitError"


def test_kill_worker_refuses_what_it_cannot_do(dataplane):
    assert chaos(dataplane, {"function": "no-such-function", "when": "now"})[0] == 404
    for body in ({"function": "x"}, {"function": "x", "when": "later"}, {"function": "x", "when": "now", "count": 0},
                 {"function": "x", "when": "now", "extra": 1}):
        status, answer = chaos(dataplane, body)
        assert status == 400 and "next-invocation" in answer["message"], body


def test_delete_disarms_kills_not_yet_done(deploy_function, dataplane):
    name = unique("disarm")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    chaos(dataplane, {"function": name, "when": "next-invocation", "count": 2})
    assert chaos(dataplane, method="DELETE") == (200, {"armed": {}, "kills": {}, "recent": []})
    assert "x-amz-function-error" not in dataplane.invoke(name, {"action": "sleep", "seconds": 0.5})[1]


def test_a_killed_sqs_batch_comes_back_after_the_visibility_timeout_and_is_processed(aws, deploy_function, dataplane):
    sqs, lam = aws("sqs"), aws("lambda")
    queue_url = sqs.create_queue(QueueName=unique("chaos"), Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    name = unique("kill-batch")
    arn = deploy_function(name, {"handler.py": SLOW_CONSUMER}, timeout=10)
    lam.create_event_source_mapping(FunctionName=arn, EventSourceArn=queue_arn, BatchSize=10,
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    dataplane.reload()
    chaos(dataplane, {"function": name, "when": "next-invocation", "after_ms": 300})
    body = unique("message")
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    eventually(lambda: dataplane.function_log(name).count(f"got {body}") == 2, what="the batch to be delivered again")
    eventually(lambda: function_status(dataplane, name)["invocations"] == 2, what="the retried batch to end")
    fn = function_status(dataplane, name)
    assert fn["errors"] == 1 and fn["last_error"] == "Runtime.ExitError"
    def left() -> tuple[str, str]:
        found = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        return found["ApproximateNumberOfMessages"], found["ApproximateNumberOfMessagesNotVisible"]

    eventually(lambda: left() == ("0", "0"), what="the message to be deleted after its second delivery")
    assert chaos(dataplane, method="GET")[1]["kills"] == {name: 1}
