"""SNS adapter for notifications: one Publish with String message attributes."""

from __future__ import annotations

from typing import Any, Mapping


class SnsTopicPublisher:
    def __init__(self, sns_client: Any):
        self._sns = sns_client

    def publish(self, topic_arn: str, message: str, attributes: Mapping[str, str], subject: str | None = None) -> str:
        params: dict[str, Any] = {
            "TopicArn": topic_arn,
            "Message": message,
            "MessageAttributes": {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
        }
        if subject:
            params["Subject"] = subject[:100]  # SNS limit
        return self._sns.publish(**params)["MessageId"]
