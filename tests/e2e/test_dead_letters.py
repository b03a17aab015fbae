"""Nothing fails silently: a poison message ends in its DLQ and the DLQ's alarm reaches ops-alerts.

`process-payment` is received at most 3 times (visibility 30 s locally), so the poison message lands
in the DLQ after about a minute; the local data plane's alarm evaluator (moto never evaluates alarms)
then moves the DLQ alarm to ALARM and publishes CloudWatch's notification to the ops-alerts topic.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .test_payments_api import eventually

pytestmark = pytest.mark.e2e


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def dlq_alarms(aws_client) -> dict[str, dict]:
    """Metric alarms on an SQS queue's visible messages, by queue name."""
    pages = aws_client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
    return {d["Value"]: alarm for page in pages for alarm in page["MetricAlarms"]
            if alarm.get("Namespace") == "AWS/SQS" and alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            for d in alarm["Dimensions"] if d["Name"] == "QueueName"}


def test_every_dlq_is_alarmed_to_ops_alerts(outputs, aws_client):
    alarms = dlq_alarms(aws_client)
    ops = outputs["topic_arns"]["ops-alerts"]
    dlqs = {key: queue_name(url) for key, url in outputs["dlq_urls"].items()}
    assert {"notifications", "payment-retry", "process-payment", "event-bus-targets"} <= set(dlqs)
    for key, name in dlqs.items():
        assert name in alarms, f"DLQ {key} ({name}) has no alarm"
        assert alarms[name]["AlarmActions"] == [ops] and alarms[name]["Threshold"] == 0, key


def test_a_poison_message_ends_in_the_dlq_and_raises_the_alarm(outputs, aws_client, subscribe_to_topic):
    sqs = aws_client("sqs")
    ops_alerts = subscribe_to_topic("ops-alerts")
    dlq_url = outputs["dlq_urls"]["process-payment"]
    alarm = dlq_alarms(aws_client)[queue_name(dlq_url)]
    # Start from an empty DLQ with its alarm OK (a stack reused from earlier runs may hold old letters),
    # so the poison message is what moves the alarm.
    while batch := sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message_batch(QueueUrl=dlq_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
    cloudwatch = aws_client("cloudwatch")
    eventually(lambda: cloudwatch.describe_alarms(AlarmNames=[alarm["AlarmName"]])["MetricAlarms"][0]["StateValue"] == "OK",
               "the DLQ alarm to be OK before the test", timeout=30)
    poison = json.dumps({"not": "an EventBridge event", "marker": uuid.uuid4().hex})
    sqs.send_message(QueueUrl=outputs["queue_urls"]["process-payment"], MessageBody=poison)

    def raised() -> dict | None:
        for m in sqs.receive_message(QueueUrl=ops_alerts, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=ops_alerts, ReceiptHandle=m["ReceiptHandle"])
            notification = json.loads(json.loads(m["Body"])["Message"])
            if notification.get("AlarmName") == alarm["AlarmName"] and notification.get("NewStateValue") == "ALARM":
                return notification
        return None

    # 3 receives × 30 s visibility, then at most one evaluation interval.
    notification = eventually(raised, "the DLQ alarm on ops-alerts", timeout=180)
    assert notification["Trigger"]["Dimensions"] == [{"value": queue_name(dlq_url), "name": "QueueName"}]
    assert notification["NewStateReason"].startswith("Threshold Crossed")

    # The poison message itself is what is waiting there.
    def poison_in_dlq():
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=5).get("Messages", [])
        return next((m for m in messages if m["Body"] == poison), None)

    message = eventually(poison_in_dlq, "the poison message in the DLQ", timeout=30)
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
