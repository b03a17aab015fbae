"""SQS and SNS adapters: the parked-payments queue and the ops-alerts topic."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


class SqsParker:
    def __init__(self, sqs_client: Any, queue_url: str):
        self._sqs = sqs_client
        self._queue_url = queue_url

    def park(self, transaction_id: str) -> None:
        self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps({"transaction_id": transaction_id}))


class OpsAlerts:
    """Publishes operational alerts; without a topic configured they are only logged."""

    def __init__(self, sns_client: Any, topic_arn: str | None):
        self._sns = sns_client
        self._topic_arn = topic_arn

    def publish(self, subject: str, message: dict[str, Any]) -> None:
        log.warning("ops alert: %s %s", subject, json.dumps(message))
        if self._topic_arn:
            self._sns.publish(TopicArn=self._topic_arn, Subject=subject[:100], Message=json.dumps(message))

    def breaker_transition(self, old: str, new: str, reason: str) -> None:
        self.publish(f"paystream: Stripe circuit breaker {old} -> {new}",
                     {"alert": "circuit_breaker", "breaker": "stripe", "from": old, "to": new, "reason": reason})
