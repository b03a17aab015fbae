"""lambdas/fraud_scorer through Kinesis events on in-process moto: the relay's records are scored and
`fraud.scored` appended, bad records are reported as batch item failures, the configuration comes from the
SSM parameter (validated at cold start), and the EMF metrics count what happened."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from lambda_testing import LambdaContext, create_hash_key_table, create_transactions_table, load_handler

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.fraud_profiles import FraudConfigSource
from paystream.fraud import FraudConfig, FraudConfigError, ProfileStoreError
from paystream import relay
from paystream.models import PaymentRequest
from paystream.payments import append_event
from paystream.states import apply, created_event
from paystream.store import EventStore

REGION = "us-east-1"
PARAMETER = "/paystream/test/fraud-config"


def Context() -> LambdaContext:
    return LambdaContext("fraud_scorer", 60_000)


@pytest.fixture()
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_transactions_table(ddb)
        create_hash_key_table(ddb, "fraud-profiles", "pk")
        for key, value in {"TRANSACTIONS_TABLE": "transactions", "FRAUD_PROFILES_TABLE": "fraud-profiles",
                           "FRAUD_CONFIG_PARAMETER": PARAMETER, "POWERTOOLS_SERVICE_NAME": "fraud_scorer"}.items():
            monkeypatch.setenv(key, value)
        yield {"ddb": ddb, "ssm": boto3.client("ssm", region_name=REGION),
               "events": EventStore(DynamoDBTransactionsTable(ddb, "transactions"))}


def set_config(aws, document: dict | str) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    aws["ssm"].put_parameter(Name=PARAMETER, Type="String", Value=text, Overwrite=True)


def stored_payment(events: EventStore, transaction_id: str, *, amount: int = 5000, customer_id: str = "cus_1",
                   device_id: str = "dev-1", seconds_ago: int = 30) -> bytes:
    """A payment stored as initiate_payment stores it; returns the data the relay puts on the stream."""
    request = PaymentRequest(amount=amount, currency="usd", customer_id=customer_id, payment_method_id="pm_1",
                             order_id=f"o-{transaction_id}", device_id=device_id, ip_address="203.0.113.9",
                             country="US")
    at = datetime.now(timezone.utc) - timedelta(seconds=seconds_ago)
    first = created_event(transaction_id, request, occurred_at=at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    events.create(apply(None, first), first)
    return json.dumps(first.to_bus_detail(), separators=(",", ":")).encode()


def kinesis_event(datas: list[bytes]) -> dict:
    return {"Records": [{
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "awsRegion": REGION,
        "eventID": f"shardId-000000000000:{49590338271490256608559692538361571095921575989136588800 + i}",
        "eventName": "aws:kinesis:record", "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/fraud",
        "invokeIdentitySourceArn": "arn:aws:iam::000000000000:role/fraud-scorer",
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "cus", "approximateArrivalTimestamp": 1763787000.0,
                    "sequenceNumber": str(49590338271490256608559692538361571095921575989136588800 + i),
                    "data": base64.b64encode(data).decode()},
    } for i, data in enumerate(datas)]}


def emitted_metrics(output: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for definition in document["_aws"]["CloudWatchMetrics"]:
            for metric in definition["Metrics"]:
                value = document[metric["Name"]]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(value if isinstance(value, list) else [value])
    return totals


def test_a_burst_is_scored_in_order_and_fraud_scored_appended_to_each_payment(aws, capsys):
    set_config(aws, {})
    handler = load_handler("fraud_scorer")
    datas = [stored_payment(aws["events"], f"tx-{i}", amount=150, seconds_ago=60 - i) for i in range(6)]
    capsys.readouterr()

    response = handler.handler(kinesis_event(datas), Context())

    assert response == {"batchItemFailures": []}
    scores = [aws["events"].load(f"tx-{i}")[0].risk_score for i in range(6)]
    assert scores[0] < 70 and all(score >= 70 for score in scores[2:])
    scored = aws["events"].load("tx-5")[1][-1]
    assert scored.event_type == "fraud.scored" and scored.source == "paystream.fraud"
    assert {f["code"] for f in scored.detail["risk_factors"]} >= {"card_testing_customer", "velocity"}
    output = capsys.readouterr().out
    assert emitted_metrics(output) == {"RecordsScored": 6, "PaymentsFlagged": sum(s >= 70 for s in scores),
                                       "RecordsFailed": 0}
    flagged_logs = [json.loads(line) for line in output.splitlines() if '"payment scored"' in line]
    assert {log["transaction_id"] for log in flagged_logs} == {f"tx-{i}" for i in range(6)}


def test_malformed_records_are_reported_and_the_others_scored(aws, capsys):
    handler = load_handler("fraud_scorer")  # no parameter at all: the defaults
    good = stored_payment(aws["events"], "tx-1")
    missing_amount = json.dumps({"event_id": "e-2", "transaction_id": "tx-2", "customer_id": "cus_2",
                                 "currency": "usd", "occurred_at": "2026-11-22T05:00:00.000Z"}).encode()
    event = kinesis_event([b"not json at all", good, missing_amount])
    capsys.readouterr()

    response = handler.handler(event, Context())

    sequence_numbers = [record["kinesis"]["sequenceNumber"] for record in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": sequence_numbers[0]},
                                              {"itemIdentifier": sequence_numbers[2]}]}
    assert aws["events"].load("tx-1")[0].risk_score == 0
    assert emitted_metrics(capsys.readouterr().out) == {"RecordsScored": 1, "PaymentsFlagged": 0, "RecordsFailed": 2}


def test_a_batch_of_only_malformed_records_is_reported_not_raised(aws):
    handler = load_handler("fraud_scorer")
    event = kinesis_event([b"{}"])
    assert handler.handler(event, Context()) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]}


def test_a_redelivered_batch_writes_nothing_twice(aws):
    handler = load_handler("fraud_scorer")
    event = kinesis_event([stored_payment(aws["events"], "tx-1"), stored_payment(aws["events"], "tx-2")])
    handler.handler(event, Context())

    assert handler.handler(event, Context()) == {"batchItemFailures": []}
    assert [len(aws["events"].load(tx)[1]) for tx in ("tx-1", "tx-2")] == [2, 2]
    profile = aws["ddb"].get_item(TableName="fraud-profiles", Key={"pk": {"S": "CUSTOMER#cus_1"}})["Item"]
    assert profile["payment_count"] == {"N": "2"}


def test_the_configuration_comes_from_the_parameter(aws):
    set_config(aws, {"weights": {"first_payment_above_limit": 80}, "amount": {"first_payment_limit": 1000}})
    handler = load_handler("fraud_scorer")
    handler.handler(kinesis_event([stored_payment(aws["events"], "tx-1", amount=5000)]), Context())

    assert aws["events"].load("tx-1")[0].risk_score == 80


def test_the_ip_country_table_comes_from_the_configuration(aws):
    set_config(aws, {"ip_countries": {"203.0.113.0/24": "DE", "198.51.100.0/24": "US"}})
    handler = load_handler("fraud_scorer")
    handler.handler(kinesis_event([stored_payment(aws["events"], "tx-1")]), Context())  # 203.0.113.9, country US

    projection, events = aws["events"].load("tx-1")
    assert projection.risk_score == 25
    [factor] = events[-1].detail["risk_factors"]
    assert factor["code"] == "ip_country_mismatch" and "DE" in factor["reason"] and "US" in factor["reason"]


def test_the_lookup_is_built_again_only_when_a_new_configuration_applies(aws):
    handler = load_handler("fraud_scorer")
    provider = FakeProvider('{"ip_countries": {"203.0.113.0/24": "DE"}}')
    handler.config_source = FraudConfigSource(PARAMETER, provider=provider)
    handler.handler(kinesis_event([stored_payment(aws["events"], "tx-1", customer_id="cus_1")]), Context())
    lookup = handler.ip_countries_for(handler.config_source.current())
    assert handler.ip_countries_for(handler.config_source.current()) is lookup
    assert lookup.country_of("203.0.113.9") == "DE"

    provider.value = '{"ip_countries": {"203.0.113.0/24": "US"}}'
    handler.handler(kinesis_event([stored_payment(aws["events"], "tx-2", customer_id="cus_2")]), Context())
    assert handler.ip_countries_for(handler.config_source.current()) is not lookup
    assert [aws["events"].load(tx)[0].risk_score for tx in ("tx-1", "tx-2")] == [25, 0]


def test_a_decline_the_relay_forwards_is_recorded_for_its_customer_not_scored(aws):
    handler = load_handler("fraud_scorer")
    created = stored_payment(aws["events"], "tx-1", amount=5000)
    projection, _ = aws["events"].load("tx-1")
    append_event(aws["events"], projection, "payment.failed",
                 {"retryable": False, "failure_code": "card_declined", "failure_message": "declined"})
    typed = aws["ddb"].get_item(TableName="transactions", Key={"pk": {"S": "TXN#tx-1"}, "sk": {"S": "EVENT#0000000002"}})["Item"]
    outgoing = relay.to_outgoing({"eventName": "INSERT", "dynamodb": {
        "Keys": {"pk": typed["pk"], "sk": typed["sk"]}, "NewImage": typed, "SequenceNumber": "2"}})
    assert outgoing.stream_record is not None

    response = handler.handler(kinesis_event([created, outgoing.stream_record["Data"]]), Context())

    assert response == {"batchItemFailures": []}
    assert [e.event_type for e in aws["events"].load("tx-1")[1]] == ["payment.created", "payment.failed", "fraud.scored"]
    customer = aws["ddb"].get_item(TableName="fraud-profiles", Key={"pk": {"S": "CUSTOMER#cus_1"}})["Item"]
    assert customer["decline_count"] == {"N": "1"} and customer["payment_count"] == {"N": "1"}
    device = aws["ddb"].get_item(TableName="fraud-profiles", Key={"pk": {"S": "DEVICE#dev-1"}})["Item"]
    assert device["decline_count"] == {"N": "0"}


def test_an_invalid_configuration_fails_the_cold_start_naming_every_bad_field(aws):
    set_config(aws, {"velocity": {"window_seconds": 0}, "weights": {"velocty": 10}})
    with pytest.raises(FraudConfigError) as raised:
        load_handler("fraud_scorer", "fraud_scorer_misconfigured")
    message = str(raised.value)
    assert PARAMETER in message and "velocity.window_seconds" in message and "weights.velocty" in message


def test_a_failing_profile_read_fails_the_whole_batch_for_a_retry(aws):
    handler = load_handler("fraud_scorer")
    event = kinesis_event([stored_payment(aws["events"], "tx-1")])
    aws["ddb"].delete_table(TableName="fraud-profiles")

    with pytest.raises(ProfileStoreError):
        handler.handler(event, Context())
    assert aws["events"].load("tx-1")[0].risk_score is None


class FakeProvider:
    def __init__(self, value):
        self.value = value
        self.reads = 0

    def get(self, name, max_age):
        self.reads += 1
        return self.value


def test_a_changed_configuration_applies_and_an_invalid_change_keeps_the_last_good_one():
    provider = FakeProvider('{"thresholds": {"review": 60}}')
    problems: list[str] = []
    source = FraudConfigSource("/p", provider=provider, on_invalid=problems.append)
    assert source.load().thresholds.review == 60

    provider.value = '{"thresholds": {"review": 50}}'
    assert source.current().thresholds.review == 50
    provider.value = '{"thresholds": {"review": 0}}'
    assert source.current().thresholds.review == 50 and source.current().thresholds.review == 50
    assert len(problems) == 1 and "thresholds.review" in problems[0]
    provider.value = ""
    assert source.current() == FraudConfig()


def test_the_deployed_configuration_document_is_valid_and_complete():
    document = (Path(__file__).resolve().parents[2] / "terraform/environments/local/fraud-config.json").read_text()
    assert json.loads(FraudConfig.from_json(document).to_json()) == json.loads(document)
    assert FraudConfig.from_json(document) == FraudConfig()
