"""CloudWatch alarms that really fire on the local stack.

moto stores metric alarms (Terraform creates one per DLQ) but never evaluates them, so a message in a
DLQ would raise nothing. `AlarmEvaluator` does CloudWatch's part for the alarms it can compute from
the emulator itself — SQS queue metrics, read as the queue's attribute — every `interval` seconds:

- each metric alarm in namespace `AWS/SQS` with a `QueueName` dimension and a metric in
  `SQS_METRIC_ATTRIBUTES` is compared, with its `ComparisonOperator` and `Threshold`, against the
  queue's current attribute (one datapoint per evaluation: periods and evaluation periods are not
  modelled, so an alarm fires within one interval of the condition becoming true);
- a queue that does not exist is missing data, handled as the alarm's `TreatMissingData` says;
- on a state change it calls `SetAlarmState` (so DescribeAlarms shows it) and publishes a
  CloudWatch-shaped notification (AlarmName, NewStateValue, NewStateReason, OldStateValue, Trigger, …)
  to each SNS action of the new state (AlarmActions, OKActions or InsufficientDataActions), as
  CloudWatch does, when the alarm's actions are enabled.

Other alarms (other namespaces, math expressions, composite alarms) are left alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("localdev.dataplane.alarms")

Clients = Callable[[str], Any]

# CloudWatch's AWS/SQS metric → the queue attribute holding the same number.
SQS_METRIC_ATTRIBUTES = {
    "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}

REGION_NAMES = {"us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-2": "US West (Oregon)",
                "eu-west-1": "EU (Ireland)", "eu-central-1": "EU (Frankfurt)"}

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
MISSING = object()


def _timestamp(value: Any = None) -> str:
    moment = value if isinstance(value, dt.datetime) else dt.datetime.now(dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def evaluable(alarm: dict) -> bool:
    dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions") or []}
    return (alarm.get("Namespace") == "AWS/SQS" and alarm.get("MetricName") in SQS_METRIC_ATTRIBUTES
            and "QueueName" in dimensions and alarm.get("ComparisonOperator") in COMPARISONS)


def new_state(alarm: dict, value: Any) -> tuple[str, str] | None:
    """(state, reason) for the current value, or None to leave the state as it is."""
    operator, threshold = alarm["ComparisonOperator"], float(alarm["Threshold"])
    if value is MISSING:
        treat = alarm.get("TreatMissingData") or "missing"
        if treat == "breaching":
            return ALARM, "No datapoint (the queue does not exist), treated as breaching"
        if treat == "notBreaching":
            return OK, "No datapoint (the queue does not exist), treated as not breaching"
        if treat == "ignore":
            return None
        return INSUFFICIENT_DATA, "No datapoint: the queue does not exist"
    breaching = COMPARISONS[operator](float(value), threshold)
    verb = "was" if breaching else "was not"
    return (ALARM if breaching else OK), (
        f"Threshold Crossed: 1 datapoint [{float(value)}] {verb} {operator} the threshold ({threshold})."
        if breaching else f"Threshold not crossed: 1 datapoint [{float(value)}] is not {operator} the threshold ({threshold})."
    )


def notification(alarm: dict, old: str, state: str, reason: str, region: str, account: str) -> dict:
    """The JSON CloudWatch publishes to an alarm's SNS actions."""
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": _timestamp(alarm.get("AlarmConfigurationUpdatedTimestamp")),
        "NewStateValue": state,
        "NewStateReason": reason,
        "StateChangeTime": _timestamp(),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": alarm.get("AlarmArn"),
        "OldStateValue": old,
        "OKActions": alarm.get("OKActions") or [],
        "AlarmActions": alarm.get("AlarmActions") or [],
        "InsufficientDataActions": alarm.get("InsufficientDataActions") or [],
        "Trigger": {
            "MetricName": alarm["MetricName"],
            "Namespace": alarm["Namespace"],
            "StatisticType": "Statistic",
            "Statistic": str(alarm.get("Statistic") or "Maximum").upper(),
            "Unit": alarm.get("Unit"),
            "Dimensions": [{"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions") or []],
            "Period": alarm.get("Period"),
            "EvaluationPeriods": alarm.get("EvaluationPeriods"),
            "DatapointsToAlarm": alarm.get("DatapointsToAlarm"),
            "ComparisonOperator": alarm["ComparisonOperator"],
            "Threshold": float(alarm["Threshold"]),
            "TreatMissingData": alarm.get("TreatMissingData"),
            "EvaluateLowSampleCountPercentile": "",
        },
    }


class AlarmEvaluator:
    def __init__(self, clients: Clients, region: str, interval: float = 5.0):
        self.clients = clients
        self.region = region
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats: dict[str, Any] = {"evaluations": 0, "transitions": 0, "notifications": 0, "last_error": None}

    # -- one round -------------------------------------------------------------------------------------
    def evaluate_once(self) -> list[dict]:
        """Evaluate every evaluable alarm once; returns the transitions made ({alarm, old, new, reason})."""
        cloudwatch = self.clients("cloudwatch")
        transitions = []
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                if not evaluable(alarm):
                    continue
                decided = new_state(alarm, self._metric_value(alarm))
                if decided is None or decided[0] == alarm.get("StateValue"):
                    continue
                state, reason = decided
                transitions.append(self._transition(alarm, state, reason))
        with self._lock:
            self.stats["evaluations"] += 1
            self.stats["transitions"] += len(transitions)
        return transitions

    def _metric_value(self, alarm: dict) -> Any:
        sqs = self.clients("sqs")
        queue_name = next(d["Value"] for d in alarm["Dimensions"] if d["Name"] == "QueueName")
        attribute = SQS_METRIC_ATTRIBUTES[alarm["MetricName"]]
        try:
            url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])["Attributes"][attribute])
        except sqs.exceptions.QueueDoesNotExist:
            return MISSING

    def _transition(self, alarm: dict, state: str, reason: str) -> dict:
        old = alarm.get("StateValue") or INSUFFICIENT_DATA
        account = (alarm.get("AlarmArn") or "arn:aws:cloudwatch:x:000000000000:alarm").split(":")[4]
        message = notification(alarm, old, state, reason, self.region, account)
        self.clients("cloudwatch").set_alarm_state(
            AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason[:1023],
            StateReasonData=json.dumps({"version": "1.0", "queryDate": message["StateChangeTime"],
                                        "evaluatedDatapoints": [], "threshold": message["Trigger"]["Threshold"]}),
        )
        actions = {ALARM: "AlarmActions", OK: "OKActions", INSUFFICIENT_DATA: "InsufficientDataActions"}[state]
        published = 0
        if alarm.get("ActionsEnabled", True):
            for arn in alarm.get(actions) or []:
                if not arn.startswith("arn:aws:sns:"):
                    continue  # Auto Scaling / EC2 actions mean nothing locally
                self.clients("sns").publish(
                    TopicArn=arn, Message=json.dumps(message),
                    Subject=f'{state}: "{alarm["AlarmName"]}" in {message["Region"]}'[:100],
                )
                published += 1
        with self._lock:
            self.stats["notifications"] += published
        log.info("alarm %s: %s -> %s (%s); notified %d topic(s)", alarm["AlarmName"], old, state, reason, published)
        return {"alarm": alarm["AlarmName"], "old": old, "new": state, "reason": reason, "notified": published}

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.evaluate_once()
                failures = 0
                with self._lock:
                    self.stats["last_error"] = None
            except Exception as exc:  # noqa: BLE001 - the emulator may be restarting; keep evaluating
                failures += 1
                with self._lock:
                    self.stats["last_error"] = repr(exc)
                log.warning("alarm evaluation failed: %r", exc)
            self._stop.wait(min(60.0, self.interval * 2 ** min(failures, 4)))

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict:
        with self._lock:
            return {"interval_seconds": self.interval, "running": bool(self._thread and self._thread.is_alive()),
                    **self.stats}
