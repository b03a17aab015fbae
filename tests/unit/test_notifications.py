"""Notifications: what the core publishes per payment event, and the notifier handler end to end on
in-process moto (SQS batch → claims in the idempotency table → SNS topics → subscribed SQS queues):
exactly once per (event, topic) through duplicates, redeliveries, claims held or abandoned by other
invocations and failed publishes, in a fixed number of AWS requests per batch."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import boto3
import botocore.client
import pytest
from moto import mock_aws
from lambda_testing import emf_metrics

from paystream.notifications import (COMPLETED, IN_PROGRESS, ClaimRefusal, ClaimResult, InvalidNotificationMessage,
                                     NotificationService)

REGION = "us-east-1"
LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"
NOTIFICATIONS_ARN = "arn:aws:sns:us-east-1:000000000000:payment-notifications"
OPS_ARN = "arn:aws:sns:us-east-1:000000000000:ops-alerts"


def bus_event(event_type: str, source: str = "paystream.payments", event_id: str = "ev-1", **detail) -> dict:
    return {
        "version": "0", "id": "bus-id", "detail-type": event_type, "source": source, "account": "000000000000",
        "time": "2026-11-22T05:00:00Z", "region": REGION, "resources": [],
        "detail": {"transaction_id": "tx-1", "event_id": event_id, "sequence": 2,
                   "occurred_at": "2026-11-22T05:00:00.123Z", "amount": 2500, "currency": "eur",
                   "customer_id": "cus_1", **detail},
    }


class RecordingPublisher:
    def __init__(self):
        self.published: list[tuple[str, dict, dict, str | None]] = []

    def publish_batch(self, topic_arn, messages):
        for m in messages:
            self.published.append((topic_arn, json.loads(m.message), dict(m.attributes), m.subject))
        return [f"msg-{i}" for i in range(len(messages))]


class InMemoryClaims:
    """The claims port as a dict: claims are all or nothing, like one transaction."""

    def __init__(self):
        self.records: dict[str, dict] = {}

    def claim(self, keys, *, now, lease_until_ms):
        refused = {key: ClaimRefusal("ConditionalCheckFailed", record["status"], record.get("lease"))
                   for key in keys if (record := self.records.get(key))
                   and not (record["status"] == IN_PROGRESS and record["lease"] < now * 1000)}
        if refused:
            return ClaimResult(frozenset(), refused)
        self.records.update({key: {"status": IN_PROGRESS, "lease": lease_until_ms} for key in keys})
        return ClaimResult(frozenset(keys), {})

    def complete(self, message_ids, *, now):
        self.records.update({key: {"status": COMPLETED} for key in message_ids})
        return {}

    def release(self, keys):
        for key in keys:
            self.records.pop(key, None)
        return {}


@pytest.fixture()
def core():
    publisher = RecordingPublisher()
    return NotificationService(publisher, InMemoryClaims(), notifications_topic_arn=NOTIFICATIONS_ARN,
                               ops_alerts_topic_arn=OPS_ARN), publisher


def publish_all(service, event):
    deliveries = service.deliveries(event)
    results = service.deliver(deliveries, lease_seconds=30)
    assert all(result.ok for result in results.values())
    return deliveries


def test_success_is_one_notification_with_filterable_attributes_and_no_raw_stripe_data(core):
    service, publisher = core
    publish_all(service, bus_event("payment.succeeded", payment_intent_id="pi_1",
                                   stripe_payment_intent=json.dumps({"id": "pi_1", "client_secret": "x"})))
    [(topic, message, attributes, _)] = publisher.published
    assert topic == NOTIFICATIONS_ARN
    assert attributes == {"event_type": "payment.succeeded", "customer_id": "cus_1", "currency": "eur"}
    assert message == {"notification_id": "ev-1", "event_type": "payment.succeeded", "status": "succeeded",
                       "transaction_id": "tx-1", "amount": 2500, "currency": "eur", "customer_id": "cus_1",
                       "occurred_at": "2026-11-22T05:00:00.123Z", "payment_intent_id": "pi_1"}


def test_a_failure_that_will_be_retried_is_not_news_yet_but_a_final_one_is(core):
    service, publisher = core
    assert service.deliveries(bus_event("payment.failed", retryable=True, failure_code="rate_limit")) == []
    assert service.deliveries(bus_event("payment.failed", retryable=True, final=False, attempt=2)) == []
    publish_all(service, bus_event("payment.failed", retryable=False, final=True, attempt=3,
                                   failure_code="rate_limit", failure_message="Too many requests",
                                   stripe_object=json.dumps({"id": "pi_1"})))
    publish_all(service, bus_event("payment.failed", event_id="ev-2", retryable=False, failure_code="card_declined",
                                   failure_message="Your card was declined."))
    messages = [m for _, m, _, _ in publisher.published]
    assert [(m["status"], m["failure_code"], m.get("attempt"), m.get("final")) for m in messages] == [
        ("failed", "rate_limit", 3, True), ("failed", "card_declined", None, None)]
    assert all("stripe_object" not in m for m in messages)


def test_refunds_say_partial_or_full_from_the_cumulative_amount(core):
    service, publisher = core
    publish_all(service, bus_event("payment.refunded", amount_refunded=1000, refund_id="re_1", refund_amount=1000,
                                   stripe_refund=json.dumps({"id": "re_1"})))
    publish_all(service, bus_event("payment.refunded", event_id="ev-2", amount_refunded=2500, refund_id="re_2",
                                   refund_amount=1500))
    publish_all(service, bus_event("payment.refunded", event_id="ev-3"))  # no total: a full refund
    assert [(m["status"], m.get("amount_refunded")) for _, m, _, _ in publisher.published] == [
        ("partially_refunded", 1000), ("refunded", 2500), ("refunded", None)]
    assert "stripe_refund" not in publisher.published[0][1]


def test_a_dispute_also_goes_to_ops_alerts(core):
    service, publisher = core
    publish_all(service, bus_event("payment.disputed", dispute_id="dp_1",
                                   dispute_reason="fraudulent", dispute_amount=2500))
    assert [(topic, subject) for topic, _, _, subject in publisher.published] == [
        (NOTIFICATIONS_ARN, None), (OPS_ARN, "paystream: payment tx-1 disputed")]
    customer, ops = publisher.published[0][1], publisher.published[1][1]
    assert customer["dispute_reason"] == "fraudulent" and customer["status"] == "disputed"
    assert ops == {"alert": "payment_disputed", **customer}


@pytest.mark.parametrize("event", [
    bus_event("payment.created"),
    bus_event("stripe.payment_intent.succeeded", source="paystream.stripe"),
    bus_event("payment.succeeded", source="somebody.else"),
    bus_event("payment.succeeded", source="paystream.stripe"),  # payment events come from paystream.payments
    {**bus_event("payment.succeeded"), "detail": {"transaction_id": "tx-1"}},
    {**bus_event("payment.succeeded"), "detail": "not an object"},
    ["not", "an", "event"],
])
def test_anything_else_is_refused_with_the_reason(core, event):
    service, publisher = core
    with pytest.raises(InvalidNotificationMessage):
        service.deliveries(event)
    assert publisher.published == []


# -- the handler -------------------------------------------------------------------------------------


class Context:
    function_name = "notifier"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:notifier"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 20_000


@pytest.fixture()
def notifier(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(TableName="idempotency", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        subscribers = {}
        topics = {}
        for name in ("payment-notifications", "ops-alerts"):
            topics[name] = sns.create_topic(Name=name)["TopicArn"]
            url = sqs.create_queue(QueueName=f"{name}-subscriber")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=topics[name], Protocol="sqs", Endpoint=arn)
            subscribers[name] = url
        inbound = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        for key, value in {"TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency",
                           "NOTIFICATIONS_TOPIC_ARN": topics["payment-notifications"],
                           "OPS_ALERTS_TOPIC_ARN": topics["ops-alerts"], "POWERTOOLS_SERVICE_NAME": "notifier"}.items():
            monkeypatch.setenv(key, value)
        spec = importlib.util.spec_from_file_location("notifier_under_test", LAMBDAS / "notifier" / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        def received(name):
            """What reached the topic's subscriber since the last call (received ones stay invisible)."""
            messages = []
            while batch := sqs.receive_message(QueueUrl=subscribers[name], MaxNumberOfMessages=10).get("Messages", []):
                messages += batch
            return [json.loads(m["Body"]) for m in messages]

        def batch(bodies):
            return {"Records": [{
                "messageId": f"m-{i}", "receiptHandle": f"r-{i}", "body": body,
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": "x",
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:notifications",
                "awsRegion": REGION,
            } for i, body in enumerate(bodies)]}

        yield module, batch, received, ddb


@pytest.fixture()
def aws_calls(monkeypatch):
    """Every boto3 call made, as (service, operation); `overrides[(service, operation)]` may stand in for one
    (given the real call and the parameters)."""
    calls: list[tuple[str, str]] = []
    overrides: dict = {}
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation_name, api_params):
        service = self.meta.service_model.service_name
        calls.append((service, operation_name))
        override = overrides.get((service, operation_name))
        if override is not None:
            return override(lambda params: original(self, operation_name, params), api_params)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return calls, overrides


def success_of(event_id: str) -> str:
    return json.dumps(bus_event("payment.succeeded", event_id=event_id, payment_intent_id="pi_1"))


def notified_ids(received, topic: str = "payment-notifications") -> list[str]:
    return sorted(json.loads(n["Message"])["notification_id"] for n in received(topic))


def record(ddb, event_id: str, topic: str = "payment-notifications") -> dict | None:
    item = ddb.get_item(TableName="idempotency", Key={"id": {"S": f"notifier#{event_id}:{topic}"}}).get("Item")
    return None if item is None else {name: next(iter(value.values())) for name, value in item.items()}


def put_claim(ddb, event_id: str, lease_until_ms: int) -> None:
    """A claim another invocation made (Powertools' layout: epoch-ms lease, epoch-s expiration)."""
    ddb.put_item(TableName="idempotency", Item={
        "id": {"S": f"notifier#{event_id}:payment-notifications"}, "status": {"S": "INPROGRESS"},
        "in_progress_expiration": {"N": str(lease_until_ms)}, "expiration": {"N": str(int(time.time()) + 3600)}})


def test_handler_publishes_each_event_once_even_when_redelivered(notifier, capsys):
    module, batch, received, ddb = notifier
    success = json.dumps(bus_event("payment.succeeded", payment_intent_id="pi_1"))
    dispute = json.dumps(bus_event("payment.disputed", event_id="ev-9", dispute_id="dp_1", dispute_reason="fraudulent"))
    # The same event twice in one batch: both records acknowledged, one notification.
    assert module.handler(batch([success, dispute, success]), Context()) == {"batchItemFailures": []}
    assert module.handler(batch([dispute]), Context()) == {"batchItemFailures": []}  # a later redelivery
    notifications = received("payment-notifications")
    assert sorted(json.loads(n["Message"])["event_type"] for n in notifications) == ["payment.disputed", "payment.succeeded"]
    attributes = {json.loads(n["Message"])["event_type"]: {k: v["Value"] for k, v in n["MessageAttributes"].items()}
                  for n in notifications}
    assert attributes["payment.succeeded"] == {"event_type": "payment.succeeded", "customer_id": "cus_1", "currency": "eur"}
    [alert] = received("ops-alerts")
    assert json.loads(alert["Message"])["alert"] == "payment_disputed"
    assert alert["Subject"] == "paystream: payment tx-1 disputed"
    # Outcome metrics count each outcome event once, redeliveries and the second topic included.
    assert sorted(emf_metrics(capsys.readouterr().out)) == [
        ("NotificationsAlreadyPublished", 1.0), ("NotificationsAlreadyPublished", 1.0),
        ("NotificationsPublished", 1.0), ("NotificationsPublished", 1.0), ("NotificationsPublished", 1.0),
        ("PaymentsDisputed", 1.0), ("PaymentsSucceeded", 1.0)]
    completed = record(ddb, "ev-9", "ops-alerts")
    assert completed["status"] == "COMPLETED" and 7 * 24 * 3600 - 60 < int(completed["expiration"]) - time.time() <= 7 * 24 * 3600


def test_handler_fails_only_unusable_records_and_skips_retryable_failures(notifier):
    module, batch, received, _ = notifier
    result = module.handler(batch([
        "not json",
        json.dumps(bus_event("payment.created")),
        json.dumps(bus_event("payment.failed", event_id="ev-5", retryable=True)),
        json.dumps(bus_event("payment.failed", event_id="ev-6", retryable=False, failure_code="card_declined")),
    ]), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-1"}]}
    [only] = received("payment-notifications")
    assert json.loads(only["Message"])["notification_id"] == "ev-6"


def test_a_batch_costs_one_claim_one_publish_per_topic_and_one_completion(notifier, aws_calls):
    module, batch, received, _ = notifier
    calls, _ = aws_calls
    assert module.handler(batch([success_of(f"ev-{i}") for i in range(10)]), Context()) == {"batchItemFailures": []}
    assert sorted(calls) == [("dynamodb", "BatchWriteItem"), ("dynamodb", "TransactWriteItems"), ("sns", "PublishBatch")]
    calls.clear()
    dispute = json.dumps(bus_event("payment.disputed", event_id="ev-d", dispute_id="dp_1"))
    assert module.handler(batch([dispute, success_of("ev-x")]), Context()) == {"batchItemFailures": []}
    assert sorted(calls) == [("dynamodb", "BatchWriteItem"), ("dynamodb", "TransactWriteItems"),
                             ("sns", "PublishBatch"), ("sns", "PublishBatch")]  # a dispute also goes to ops-alerts
    assert notified_ids(received) == sorted([*(f"ev-{i}" for i in range(10)), "ev-d", "ev-x"])
    assert notified_ids(received, "ops-alerts") == ["ev-d"]


def test_a_redelivery_after_completion_is_acknowledged_without_publishing(notifier, aws_calls):
    module, batch, received, _ = notifier
    calls, _ = aws_calls
    assert module.handler(batch([success_of("ev-1")]), Context()) == {"batchItemFailures": []}
    calls.clear()
    assert module.handler(batch([success_of("ev-1"), success_of("ev-1")]), Context()) == {"batchItemFailures": []}
    assert calls == [("dynamodb", "TransactWriteItems")]  # refused: COMPLETED; nothing published or written
    assert notified_ids(received) == ["ev-1"]


def test_a_claim_another_invocation_holds_fails_its_records_and_publishes_nothing(notifier):
    module, batch, received, ddb = notifier
    lease = int(time.time() * 1000) + 60_000
    put_claim(ddb, "ev-1", lease)
    result = module.handler(batch([success_of("ev-1"), success_of("ev-2"), success_of("ev-1")]), Context())
    # Both copies of the held event fail (SQS delivers them again later); the other event is published.
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}, {"itemIdentifier": "m-2"}]}
    assert notified_ids(received) == ["ev-2"]
    assert record(ddb, "ev-1")["status"] == "INPROGRESS" and int(record(ddb, "ev-1")["in_progress_expiration"]) == lease


def test_an_abandoned_claim_is_taken_over_and_published_once(notifier):
    module, batch, received, ddb = notifier
    put_claim(ddb, "ev-1", int(time.time() * 1000) - 1_000)  # its invocation crashed; the lease has passed
    assert module.handler(batch([success_of("ev-1")]), Context()) == {"batchItemFailures": []}
    assert module.handler(batch([success_of("ev-1")]), Context()) == {"batchItemFailures": []}
    assert notified_ids(received) == ["ev-1"]
    assert record(ddb, "ev-1")["status"] == "COMPLETED"


def test_a_rejected_publish_releases_its_claim_and_the_redelivery_publishes_it_once(notifier, aws_calls):
    module, batch, received, ddb = notifier
    calls, overrides = aws_calls

    def reject_ev1(call, params):
        entries = params["PublishBatchRequestEntries"]
        rejected = [entry for entry in entries if json.loads(entry["Message"])["notification_id"] == "ev-1"]
        kept = [entry for entry in entries if entry not in rejected]
        response = call({**params, "PublishBatchRequestEntries": kept}) if kept else {"Successful": []}
        return {**response, "Failed": [{"Id": entry["Id"], "Code": "InternalError", "Message": "try again",
                                        "SenderFault": False} for entry in rejected]}

    overrides[("sns", "PublishBatch")] = reject_ev1
    result = module.handler(batch([success_of("ev-1"), success_of("ev-2")]), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert record(ddb, "ev-1") is None and record(ddb, "ev-2")["status"] == "COMPLETED"
    assert notified_ids(received) == ["ev-2"]
    del overrides[("sns", "PublishBatch")]
    assert module.handler(batch([success_of("ev-1"), success_of("ev-2")]), Context()) == {"batchItemFailures": []}
    assert notified_ids(received) == ["ev-1"]
    assert record(ddb, "ev-1")["status"] == "COMPLETED"


def test_a_completion_that_fails_after_publishing_keeps_the_record_acknowledged(notifier, aws_calls, capsys):
    module, batch, received, ddb = notifier
    _, overrides = aws_calls

    def refuse(call, params):
        raise botocore.exceptions.ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}},
                                              "BatchWriteItem")

    overrides[("dynamodb", "BatchWriteItem")] = refuse
    # Failing the record would publish it again: it is acknowledged, the failure logged and counted.
    assert module.handler(batch([success_of("ev-1")]), Context()) == {"batchItemFailures": []}
    assert notified_ids(received) == ["ev-1"]
    assert ("NotificationCompletionsFailed", 1.0) in emf_metrics(capsys.readouterr().out)
    assert record(ddb, "ev-1")["status"] == "INPROGRESS"  # holds redeliveries off until its lease passes
    del overrides[("dynamodb", "BatchWriteItem")]
    result = module.handler(batch([success_of("ev-1"), success_of("ev-2")]), Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert notified_ids(received) == ["ev-2"]


# -- claim retries (core) ------------------------------------------------------------------------------


class FlakyClaims(InMemoryClaims):
    """Refuses every claim for another reason (throttling, a conflicting transaction) `times` times."""

    def __init__(self, times: int):
        super().__init__()
        self.times, self.transactions = times, 0

    def claim(self, keys, *, now, lease_until_ms):
        self.transactions += 1
        if self.transactions <= self.times:
            return ClaimResult(frozenset(), {keys[0]: ClaimRefusal("TransactionConflict")})
        return super().claim(keys, now=now, lease_until_ms=lease_until_ms)


@pytest.mark.parametrize("times, published", [(2, True), (10, False)])
def test_claims_refused_for_another_reason_are_retried_with_backoff_then_fail(times, published):
    publisher, claims, sleeps = RecordingPublisher(), FlakyClaims(times), []
    service = NotificationService(publisher, claims, notifications_topic_arn=NOTIFICATIONS_ARN,
                                  ops_alerts_topic_arn=OPS_ARN, sleep=sleeps.append)
    deliveries = service.deliveries(bus_event("payment.succeeded", event_id="ev-1")) + service.deliveries(
        bus_event("payment.succeeded", event_id="ev-2"))
    results = service.deliver(deliveries, lease_seconds=30)
    assert [result.ok for result in results.values()] == [published, published]
    assert len(publisher.published) == (2 if published else 0)
    assert claims.transactions == (3 if published else 4) and len(sleeps) == claims.transactions - 1
    assert sleeps == sorted(sleeps) or len(sleeps) < 2  # exponential backoff
    if not published:
        assert all("TransactionConflict" in r.error or "cancelled" in r.error for r in results.values())
