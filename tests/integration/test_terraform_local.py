"""terraform/environments/local applied against the embedded emulator with the real packaged artifacts.

One apply per module (it takes about a minute against moto); every test reads what it created.
The stack uses its own name prefix and bus name so it cannot collide with other tests' resources
in the shared session emulator.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from localdev import package
from localdev.terraform import for_environment

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PREFIX = "tftest"
BUS = "tftest-payments"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    # Reuse the developer's deps-layer cache when there is one: it saves a PyPI download.
    cache = PROJECT_ROOT / "build" / ".cache"
    if cache.is_dir():
        shutil.copytree(cache, out / ".cache")
    package.build(out)
    return out


@pytest.fixture(scope="module")
def stack(emulator_endpoint, artifacts, tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("stack")
    tf = for_environment(
        "local",
        state_dir,
        {"aws_endpoint_url": emulator_endpoint, "artifacts_dir": str(artifacts), "name_prefix": PREFIX, "bus_name": BUS},
    )
    tf.init()
    tf.apply()
    return tf, tf.output()


def test_state_stays_in_the_stack_state_dir(stack):
    tf, _ = stack
    assert (tf.tf_dir / "terraform.tfstate").is_file()
    assert (tf.tf_dir / "data").is_dir()


def test_second_plan_has_no_changes(stack):
    tf, _ = stack
    assert tf.plan(detailed_exitcode=True) == 0, f"unexpected diff after apply; see {tf.log_file}"


def test_outputs_name_everything_the_stack_needs(stack):
    _, out = stack
    assert out["region"] == "us-east-1"
    assert out["api_stage"] == "v1"
    assert out["bus_name"] == BUS
    assert out["function_names"] == {
        name: f"{PREFIX}-{name.replace('_', '-')}"
        for name in ("stripe_webhook", "initiate_payment", "get_payment", "outbox_relay", "resume_payments",
                     "process_payment", "notifier", "payment_retry", "refund_payment", "fraud_scorer",
                     "fraud_review", "capture_payment")
    }
    queues = {"process-payment", "parked-payments", "relay-failures", "notifications", "payment-retry",
              "fraud-scoring-failures", "fraud-review", "payment-captures"}
    assert set(out["queue_urls"]) == queues
    assert set(out["dlq_urls"]) == queues | {
        "event-bus-targets", "relay-failures-destination", "fraud-scoring-failures-destination"}
    assert set(out["table_names"]) == {"transactions", "idempotency", "fraud_profiles"}
    assert out["parameter_names"] == {"fraud_config": f"/{PREFIX}/fraud-config"}
    assert set(out["topic_arns"]) == {"payment-notifications", "fraud-alerts", "ops-alerts"}
    assert out["secret_ids"] == {
        "stripe_api_key": f"{PREFIX}/stripe-api-key",
        "webhook_secrets": f"{PREFIX}/stripe-webhook-secrets",
    }


def test_secrets_exist_without_values(stack, aws):
    _, out = stack
    sm = aws("secretsmanager")
    for secret_id in out["secret_ids"].values():
        assert sm.describe_secret(SecretId=secret_id)["KmsKeyId"]
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.get_secret_value(SecretId=secret_id)


def test_transactions_table_streams_both_images_and_expires_items(stack, aws):
    _, out = stack
    ddb = aws("dynamodb")
    table = ddb.describe_table(TableName=out["table_names"]["transactions"])["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["LatestStreamArn"]
    assert table["SSEDescription"]["SSEType"] == "KMS"
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    ttl = ddb.describe_time_to_live(TableName=out["table_names"]["transactions"])["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    idem_ttl = ddb.describe_time_to_live(TableName=out["table_names"]["idempotency"])["TimeToLiveDescription"]
    assert idem_ttl["AttributeName"] == "expiration"


def test_transactions_table_indexes_payments_by_customer_and_by_status(stack, aws):
    _, out = stack
    table = aws("dynamodb").describe_table(TableName=out["table_names"]["transactions"])["Table"]
    indexes = {
        index["IndexName"]: {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]}
        for index in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "by-customer": {"customer_pk": "HASH", "created_at": "RANGE"},
        "by-status": {"status_pk": "HASH", "created_at": "RANGE"},
    }


def _queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def test_consumer_queue_redrives_to_its_own_dlq(stack, aws):
    _, out = stack
    sqs = aws("sqs")
    dlq_arn = _queue_arn(sqs, out["dlq_urls"]["process-payment"])
    attrs = sqs.get_queue_attributes(QueueUrl=out["queue_urls"]["process-payment"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}
    assert attrs["VisibilityTimeout"] == "30"
    assert attrs["KmsMasterKeyId"]


def test_rule_target_has_retry_policy_and_dead_letter_queue(stack, aws):
    _, out = stack
    sqs = aws("sqs")
    targets = aws("events").list_targets_by_rule(Rule="stripe-events", EventBusName=out["bus_name"])["Targets"]
    assert len(targets) == 1
    target = targets[0]
    assert target["Arn"] == _queue_arn(sqs, out["queue_urls"]["process-payment"])
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 3600}
    assert target["DeadLetterConfig"] == {"Arn": _queue_arn(sqs, out["dlq_urls"]["event-bus-targets"])}


def test_stripe_event_on_the_bus_reaches_the_consumer_queue(stack, aws):
    _, out = stack
    sqs = aws("sqs")
    aws("events").put_events(
        Entries=[
            # Not a relayed webhook (detail-type stripe.<type>): not for the processor, whatever its source.
            {"EventBusName": out["bus_name"], "Source": "paystream.stripe", "DetailType": "payment.succeeded",
             "Detail": json.dumps({"transaction_id": "tx-0"})},
            {"EventBusName": out["bus_name"], "Source": "paystream.stripe",
             "DetailType": "stripe.payment_intent.succeeded", "Detail": json.dumps({"transaction_id": "tx-1"})},
        ]
    )
    deadline = time.monotonic() + 10
    messages = []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=out["queue_urls"]["process-payment"], WaitTimeSeconds=1,
                                       MaxNumberOfMessages=10).get("Messages", [])
    assert messages, "the stripe-events rule did not deliver to the process-payment queue"
    assert [json.loads(m["Body"])["detail"] for m in messages] == [{"transaction_id": "tx-1"}]


def test_every_dlq_has_an_alarm_notifying_ops(stack, aws):
    _, out = stack
    alarms = aws("cloudwatch").describe_alarms(AlarmNamePrefix=f"{PREFIX}-dlq-")["MetricAlarms"]
    watched = {a["Dimensions"][0]["Value"]: a for a in alarms}
    dlq_names = {url.rsplit("/", 1)[1] for url in out["dlq_urls"].values()}
    assert set(watched) == dlq_names
    for alarm in watched.values():
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["AlarmActions"] == [out["topic_arns"]["ops-alerts"]]


def test_webhook_function_runs_the_packaged_code_with_its_configuration(stack, artifacts, aws):
    _, out = stack
    fn = aws("lambda").get_function(FunctionName=out["function_names"]["stripe_webhook"])["Configuration"]
    assert fn["CodeSha256"] == package.filebase64sha256(artifacts / "functions" / "stripe_webhook.zip")
    assert (fn["Runtime"], fn["Handler"], fn["TracingConfig"]["Mode"]) == ("python3.12", "handler.handler", "Active")
    assert len(fn["Layers"]) == 2
    env = fn["Environment"]["Variables"]
    assert env["TRANSACTIONS_TABLE"] == out["table_names"]["transactions"]
    assert env["WEBHOOK_SECRETS_SECRET_ID"] == out["secret_ids"]["webhook_secrets"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "stripe_webhook"


def test_api_stage_v1_routes_the_webhook_without_api_key(stack, aws):
    _, out = stack
    apigw = aws("apigateway")
    assert apigw.get_stage(restApiId=out["api_id"], stageName="v1")["deploymentId"]
    resources = {r["path"]: r for r in apigw.get_resources(restApiId=out["api_id"])["items"]}
    method = apigw.get_method(restApiId=out["api_id"], resourceId=resources["/webhooks/stripe"]["id"], httpMethod="POST")
    assert method["apiKeyRequired"] is False
    assert method["methodIntegration"]["type"] == "AWS_PROXY"
    function_arn = aws("lambda").get_function(FunctionName=out["function_names"]["stripe_webhook"])["Configuration"]["FunctionArn"]
    assert function_arn in method["methodIntegration"]["uri"]
    plans = apigw.get_usage_plans(keyId=out["api_key_id"])["items"]
    assert [s["stage"] for p in plans for s in p["apiStages"] if s["apiId"] == out["api_id"]] == ["v1"]


def _drain(sqs, url: str, transaction_ids: set[str], expected: int) -> list[dict]:
    """The details of messages about `transaction_ids` on a queue (other tests publish on the same bus),
    polled until `expected` arrived or 10 s passed, then until the queue has nothing more."""
    details: list[dict] = []
    deadline = time.monotonic() + 10
    while True:
        batch = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1, MaxNumberOfMessages=10).get("Messages", [])
        for m in batch:
            detail = json.loads(m["Body"])["detail"]
            if detail.get("transaction_id") in transaction_ids:
                details.append(detail)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if (len(details) >= expected and not batch) or time.monotonic() > deadline:
            return details


def test_only_retryable_failures_reach_the_retry_queue_and_outcomes_the_notifier(stack, aws):
    _, out = stack
    sqs = aws("sqs")

    def event(tid: str, detail_type: str, source: str = "paystream.payments", **detail) -> dict:
        return {"EventBusName": out["bus_name"], "Source": source, "DetailType": detail_type,
                "Detail": json.dumps({"transaction_id": tid, **detail})}

    aws("events").put_events(Entries=[
        event("rate-limited", "payment.failed", retryable=True, failure_code="rate_limited"),
        event("processing-error", "payment.failed", retryable=True, failure_code="processing_error"),
        event("declined", "payment.failed", retryable=False, failure_code="card_declined"),
        event("final", "payment.failed", retryable=False, final=True, attempt=3),
        event("refunded", "payment.refunded", amount_refunded=100),
        # Only payment events (source paystream.payments) are payment outcomes.
        event("not-a-payment-event", "payment.failed", "paystream.stripe", retryable=True),
        event("created", "payment.created"),
    ])
    mine = {"rate-limited", "processing-error", "declined", "final", "refunded", "created"}
    retried = _drain(sqs, out["queue_urls"]["payment-retry"], mine, expected=2)
    assert sorted(d["transaction_id"] for d in retried) == ["processing-error", "rate-limited"]
    notified = _drain(sqs, out["queue_urls"]["notifications"], mine, expected=5)
    assert sorted(d["transaction_id"] for d in notified) == ["declined", "final", "processing-error", "rate-limited",
                                                             "refunded"]


def test_fraud_scorer_reads_the_stream_with_bounded_retries_and_its_configuration(stack, aws):
    _, out = stack
    function_name = out["function_names"]["fraud_scorer"]
    mappings = [m for m in aws("lambda").list_event_source_mappings()["EventSourceMappings"]
                if m["FunctionArn"].endswith(f":function:{function_name}")]
    assert len(mappings) == 1
    mapping = mappings[0]
    stream = aws("kinesis").describe_stream_summary(StreamName=out["stream_name"])["StreamDescriptionSummary"]
    assert mapping["EventSourceArn"] == stream["StreamARN"]
    assert mapping["BatchSize"] == 100 and mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10 and 0 < mapping["MaximumRecordAgeInSeconds"] <= 86400
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    failures_url = out["queue_urls"]["fraud-scoring-failures"]
    failures_arn = aws("sqs").get_queue_attributes(QueueUrl=failures_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == failures_arn

    environment = aws("lambda").get_function_configuration(FunctionName=function_name)["Environment"]["Variables"]
    assert environment["FRAUD_PROFILES_TABLE"] == out["table_names"]["fraud_profiles"]
    assert environment["FRAUD_CONFIG_PARAMETER"] == out["parameter_names"]["fraud_config"]
    document = aws("ssm").get_parameter(Name=out["parameter_names"]["fraud_config"])["Parameter"]["Value"]
    assert json.loads(document) == json.loads((PROJECT_ROOT / "terraform/environments/local/fraud-config.json").read_text())

    table = aws("dynamodb").describe_table(TableName=out["table_names"]["fraud_profiles"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["SSEDescription"]["SSEType"] == "KMS"
    ttl = aws("dynamodb").describe_time_to_live(TableName=out["table_names"]["fraud_profiles"])
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


def test_both_stream_consumers_iterator_age_is_alarmed_to_ops(stack, aws):
    # The fraud scorer (Kinesis) and the outbox relay (the transactions table's DynamoDB stream).
    _, out = stack
    alarms = aws("cloudwatch").describe_alarms(AlarmNamePrefix=f"{PREFIX}-iterator-age-")["MetricAlarms"]
    assert sorted((a["Namespace"], a["MetricName"], a["Dimensions"][0]["Value"]) for a in alarms) == sorted(
        ("AWS/Lambda", "IteratorAge", out["function_names"][fn]) for fn in ("fraud_scorer", "outbox_relay"))
    assert all(a["AlarmActions"] == [out["topic_arns"]["ops-alerts"]] for a in alarms)
