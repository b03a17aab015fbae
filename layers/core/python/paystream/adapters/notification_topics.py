"""SNS adapter for notifications: Publish, or PublishBatch (≤ 10 entries per request), with String message
attributes; a message has the same shape either way (`_entry`)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from botocore.exceptions import BotoCoreError, ClientError

MAX_PUBLISH_BATCH = 10  # SNS PublishBatch's limit of entries per request
MAX_SUBJECT = 100  # SNS limit


class PublishRejected(Exception):
    """SNS refused one entry of a PublishBatch (its Code and Message)."""


def _entry(message: str, attributes: Mapping[str, str], subject: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Message": message,
        "MessageAttributes": {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()},
    }
    if subject:
        entry["Subject"] = subject[:MAX_SUBJECT]
    return entry


class SnsTopicPublisher:
    def __init__(self, sns_client: Any):
        self._sns = sns_client

    def publish(self, topic_arn: str, message: str, attributes: Mapping[str, str], subject: str | None = None) -> str:
        return self._sns.publish(TopicArn=topic_arn, **_entry(message, attributes, subject))["MessageId"]

    def publish_batch(self, topic_arn: str, messages: Sequence[Any]) -> list[str | Exception]:
        """`messages`: paystream.notifications.TopicMessage. Per message, in order, its SNS message id or the
        error; a failed request (throttling that outlasted boto3's retries, a 5xx) fails each of its entries."""
        results: list[str | Exception] = []
        for start in range(0, len(messages), MAX_PUBLISH_BATCH):
            chunk = messages[start:start + MAX_PUBLISH_BATCH]
            entries = [{"Id": str(i), **_entry(m.message, m.attributes, m.subject)} for i, m in enumerate(chunk)]
            try:
                response = self._sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
            except (BotoCoreError, ClientError) as exc:
                results += [exc] * len(chunk)
                continue
            outcome: dict[str, str | Exception] = {ok["Id"]: ok["MessageId"] for ok in response.get("Successful", [])}
            for failed in response.get("Failed", []):
                outcome[failed["Id"]] = PublishRejected(f"{failed.get('Code')}: {failed.get('Message')}")
            results += [outcome.get(entry["Id"], PublishRejected("no result for this entry")) for entry in entries]
        return results
