"""The local alarm evaluator against the emulator: DLQ alarms change state and notify their SNS actions,
which deliver to subscribed SQS queues, as CloudWatch and SNS do on AWS."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from localdev.dataplane.alarms import AlarmEvaluator

pytestmark = pytest.mark.integration


@pytest.fixture()
def setup(aws):
    """A DLQ with an alarm like the alarms module's, an ops topic and a queue subscribed to it."""
    suffix = uuid.uuid4().hex[:8]
    sqs, sns, cloudwatch = aws("sqs"), aws("sns"), aws("cloudwatch")
    dlq_name = f"orders-dlq-{suffix}"
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    topic = sns.create_topic(Name=f"ops-alerts-{suffix}")["TopicArn"]
    subscriber = sqs.create_queue(QueueName=f"ops-subscriber-{suffix}")["QueueUrl"]
    subscriber_arn = sqs.get_queue_attributes(QueueUrl=subscriber, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=subscriber_arn)
    alarm_name = f"dlq-{suffix}"
    common = dict(Namespace="AWS/SQS", MetricName="ApproximateNumberOfMessagesVisible", Statistic="Maximum",
                  Period=60, EvaluationPeriods=1, ComparisonOperator="GreaterThanThreshold", Threshold=0,
                  TreatMissingData="notBreaching", AlarmActions=[topic], OKActions=[topic])
    cloudwatch.put_metric_alarm(AlarmName=alarm_name, AlarmDescription="messages in the DLQ",
                                Dimensions=[{"Name": "QueueName", "Value": dlq_name}], **common)
    yield {"sqs": sqs, "cloudwatch": cloudwatch, "dlq_url": dlq_url, "alarm": alarm_name, "topic": topic,
           "subscriber": subscriber, "common": common, "suffix": suffix}
    cloudwatch.delete_alarms(AlarmNames=[alarm_name])


def received(sqs, queue_url) -> list[dict]:
    """Every notification on the subscriber queue, as the CloudWatch message dicts (SNS envelope unwrapped)."""
    messages = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        for m in batch:
            envelope = json.loads(m["Body"])
            messages.append({**json.loads(envelope["Message"]), "_subject": envelope.get("Subject")})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def state(cloudwatch, name) -> str:
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def mine(transitions, name):
    return [(t["old"], t["new"]) for t in transitions if t["alarm"] == name]


def test_a_message_in_the_dlq_raises_the_alarm_and_notifies_then_clears(aws, setup):
    evaluator = AlarmEvaluator(aws, "us-east-1")
    sqs, cloudwatch, name = setup["sqs"], setup["cloudwatch"], setup["alarm"]

    # Empty DLQ: OK (moto creates alarms in OK where CloudWatch starts in INSUFFICIENT_DATA; from there
    # the move to OK would be notified to OKActions).
    evaluator.evaluate_once()
    assert state(cloudwatch, name) == "OK"
    assert {m["NewStateValue"] for m in received(sqs, setup["subscriber"])} <= {"OK"}

    # Nothing changed: no transition, no notification.
    assert mine(evaluator.evaluate_once(), name) == []
    assert received(sqs, setup["subscriber"]) == []

    sqs.send_message(QueueUrl=setup["dlq_url"], MessageBody="poison")
    assert mine(evaluator.evaluate_once(), name) == [("OK", "ALARM")]
    assert state(cloudwatch, name) == "ALARM"
    [alarm] = received(sqs, setup["subscriber"])
    assert alarm["NewStateValue"] == "ALARM" and alarm["OldStateValue"] == "OK"
    assert alarm["NewStateReason"].startswith("Threshold Crossed: 1 datapoint [1.0]")
    assert alarm["_subject"] == f'ALARM: "{name}" in US East (N. Virginia)'
    assert alarm["AlarmDescription"] == "messages in the DLQ" and alarm["AWSAccountId"] == "000000000000"
    assert alarm["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Trigger"]["Dimensions"] == [{"value": f"orders-dlq-{setup['suffix']}", "name": "QueueName"}]
    assert (alarm["Trigger"]["ComparisonOperator"], alarm["Trigger"]["Threshold"]) == ("GreaterThanThreshold", 0.0)

    sqs.purge_queue(QueueUrl=setup["dlq_url"])
    assert mine(evaluator.evaluate_once(), name) == [("ALARM", "OK")]
    [cleared] = received(sqs, setup["subscriber"])
    assert cleared["NewStateValue"] == "OK"


def test_missing_queues_disabled_actions_and_other_alarms(aws, setup):
    cloudwatch, sqs, suffix, common = setup["cloudwatch"], setup["sqs"], setup["suffix"], setup["common"]
    gone = f"gone-{suffix}"
    cloudwatch.put_metric_alarm(AlarmName=gone, Dimensions=[{"Name": "QueueName", "Value": f"no-such-{suffix}"}],
                                **{**common, "TreatMissingData": "breaching"})
    quiet = f"quiet-{suffix}"
    cloudwatch.put_metric_alarm(AlarmName=quiet, Dimensions=[{"Name": "QueueName", "Value": f"orders-dlq-{suffix}"}],
                                ActionsEnabled=False, **common)
    lambda_errors = f"lambda-{suffix}"
    cloudwatch.put_metric_alarm(AlarmName=lambda_errors, Namespace="AWS/Lambda", MetricName="Errors",
                                Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=0,
                                ComparisonOperator="GreaterThanThreshold", AlarmActions=[setup["topic"]])
    created = cloudwatch.describe_alarms(AlarmNames=[lambda_errors])["MetricAlarms"][0]["StateUpdatedTimestamp"]
    try:
        sqs.send_message(QueueUrl=setup["dlq_url"], MessageBody="poison")
        transitions = AlarmEvaluator(aws, "us-east-1").evaluate_once()
        assert [new for _, new in mine(transitions, gone)] == ["ALARM"]  # missing data treated as breaching
        assert [new for _, new in mine(transitions, quiet)] == ["ALARM"]
        assert mine(transitions, lambda_errors) == []  # not computable from the emulator: left alone
        assert cloudwatch.describe_alarms(AlarmNames=[lambda_errors])["MetricAlarms"][0]["StateUpdatedTimestamp"] == created
        notified = sorted((m["AlarmName"], m["NewStateValue"]) for m in received(sqs, setup["subscriber"]))
        assert notified == sorted([(gone, "ALARM"), (setup["alarm"], "ALARM")])  # the disabled one stays quiet
    finally:
        cloudwatch.delete_alarms(AlarmNames=[gone, quiet, lambda_errors])


def test_the_data_plane_runs_the_evaluator(aws, setup, dataplane):
    # The data plane evaluates every 5 s on its own: the alarm reaches ALARM without anyone calling it.
    setup["sqs"].send_message(QueueUrl=setup["dlq_url"], MessageBody="poison")
    deadline = time.monotonic() + 30
    while state(setup["cloudwatch"], setup["alarm"]) != "ALARM":
        assert time.monotonic() < deadline, f"alarm never fired; data plane status: {dataplane.status().get('alarms')}"
        time.sleep(0.5)
    assert dataplane.status()["alarms"]["running"] is True
    assert ("ALARM" in {m["NewStateValue"] for m in received(setup["sqs"], setup["subscriber"])})
