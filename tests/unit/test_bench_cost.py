"""The cost bench's model (prices x measured figures) and the emulator's DynamoDB capacity estimate."""

from __future__ import annotations

import io
import json
import math
import uuid
from pathlib import Path

import pytest

from localdev import bench_cost
from localdev.bench_cost import (PriceError, StreamCapacity, beyond_idle, cost_model, emf_metrics, load_prices,
                                 parse_reports, split_dataplane, stream_capacity)
from localdev.emulator.extensions import (CapacityEstimate, RequestCounter, StoredItems, attribute_size, item_size,
                                          number_size, read_units, write_units)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRICES = PROJECT_ROOT / "bench" / "aws-prices.json"


# -- prices -------------------------------------------------------------------------------------------
def test_the_committed_price_file_prices_every_figure_the_model_needs_with_a_date_and_sources():
    prices = load_prices(PRICES)
    assert prices["region"] == "us-east-1" and prices["as_of"]
    for service, name in bench_cost.REQUIRED_PRICES:
        assert prices["services"][service]["source"].startswith("https://aws.amazon.com/")
        assert bench_cost.unit_price(prices, service, name) >= 0


def _write_prices(tmp_path: Path, drop: tuple[str, str] | None = None) -> Path:
    document = json.loads(PRICES.read_text())
    if drop:
        del document["services"][drop[0]]["prices"][drop[1]]
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document))
    return path


def test_a_price_file_missing_a_needed_price_fails_naming_it(tmp_path):
    with pytest.raises(PriceError, match=r"no price for dynamodb_on_demand\.write_request_unit"):
        load_prices(_write_prices(tmp_path, drop=("dynamodb_on_demand", "write_request_unit")))


def test_a_price_file_without_a_date_or_unreadable_fails_with_one_line(tmp_path):
    document = json.loads(PRICES.read_text())
    del document["as_of"]
    (tmp_path / "p.json").write_text(json.dumps(document))
    with pytest.raises(PriceError, match="no 'as_of'"):
        load_prices(tmp_path / "p.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PriceError, match="cannot read"):
        load_prices(tmp_path / "broken.json")


def test_the_command_exits_1_with_one_line_on_a_bad_price_file(tmp_path, capsys):
    code = bench_cost.main(["--prices", str(_write_prices(tmp_path, drop=("sns", "publish_64kb"))),
                            "--outputs", str(tmp_path / "none.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "sns.publish_64kb" in err[0]


# -- the model ----------------------------------------------------------------------------------------
def _prices(**overrides: float) -> dict:
    """A price file where every price is 0 except the ones given (`service__name` = USD per unit)."""
    services: dict = {}
    for service, name in bench_cost.REQUIRED_PRICES:
        usd = overrides.get(f"{service}__{name}", 0.0)
        services.setdefault(service, {"source": "https://aws.amazon.com/x", "prices": {}})["prices"][name] = {
            "usd": usd, "per": 1}
    return {"region": "us-east-1", "as_of": "2026-11-22", "services": services}


def _measured(**values: float) -> dict:
    return {name: values.get(name, 0) for name in bench_cost.MEASURED_FIELDS}


def test_each_measured_figure_is_priced_by_its_own_price():
    measured = _measured(lambda_invocations=8, lambda_gb_seconds=0.5, dynamodb_write_units=20, dynamodb_read_units=3,
                         eventbridge_events_64kb=4, sqs_requests_64kb=9, api_requests=2,
                         kinesis_ingested_bytes_billed=2 * 1024 ** 3, kinesis_retrieved_bytes=1024 ** 3)
    prices = _prices(lambda__request=1, lambda__gb_second_arm64=10, lambda__gb_second_x86_64=1000,
                     dynamodb_on_demand__write_request_unit=100, dynamodb_on_demand__read_request_unit=1000,
                     eventbridge__custom_event_64kb=10000, sqs_standard__request_64kb=100000,
                     api_gateway_rest__request=1e6, kinesis_on_demand__ingested_gb=1e7,
                     kinesis_on_demand__retrieved_gb=1e8)
    model = cost_model(measured, prices, monthly_payments=1)
    v = model["variable"]
    assert (v["lambda_requests"], v["lambda_duration"], v["dynamodb_writes"], v["dynamodb_reads"]) == (8, 5, 2000, 3000)
    assert (v["eventbridge_events"], v["sqs"], v["api_gateway"], v["kinesis"]) == (40000, 900000, 2e6, 2e7 + 1e8)
    assert model["variable_total"] == pytest.approx(sum(v.values()))
    assert cost_model(measured, prices, 1, architecture="x86_64")["variable"]["lambda_duration"] == 500


def test_fixed_monthly_charges_are_amortized_over_the_stated_volume():
    measured = _measured(kms_keys=1, secrets=2, alarms=10, custom_metrics=5, waf_rules=3, sqs_mappings=0)
    prices = _prices(kinesis_on_demand__stream_hour=0.04, kms__key_month=1, secrets_manager__secret_month=0.4,
                     cloudwatch__alarm_month=0.1, cloudwatch__custom_metric_month=0.3, waf__web_acl_month=5,
                     waf__rule_month=1)
    model = cost_model(measured, prices, monthly_payments=1000)
    monthly = 730 * 0.04 + 1 + 0.8 + 1.0 + 1.5 + 5 + 3
    assert sum(model["fixed_monthly_usd"].values()) == pytest.approx(monthly)
    assert model["fixed_per_payment"] == pytest.approx(monthly / 1000)
    assert model["total"] == pytest.approx(model["variable_total"] + monthly / 1000)
    assert cost_model(measured, prices, 10_000)["fixed_per_payment"] == pytest.approx(monthly / 10_000)


def test_a_provisioned_stream_is_priced_by_shard_hours_and_put_payload_units_not_by_bytes():
    measured = _measured(kinesis_ingested_bytes_billed=2 * 1024 ** 3, kinesis_retrieved_bytes=1024 ** 3,
                         kinesis_put_payload_units=3)
    prices = _prices(kinesis_on_demand__stream_hour=0.04, kinesis_on_demand__ingested_gb=1e7,
                     kinesis_on_demand__retrieved_gb=1e8, kinesis_provisioned__shard_hour=0.015,
                     kinesis_provisioned__put_payload_unit_25kb=1000)
    provisioned = cost_model(measured, prices, 1, stream=StreamCapacity("PROVISIONED", 2))
    assert provisioned["variable"]["kinesis"] == 3000
    assert provisioned["fixed_monthly_usd"]["kinesis_stream_hours"] == pytest.approx(730 * 2 * 0.015)
    on_demand = cost_model(measured, prices, 1)
    assert on_demand["variable"]["kinesis"] == 2e7 + 1e8
    assert on_demand["fixed_monthly_usd"]["kinesis_stream_hours"] == pytest.approx(730 * 0.04)


@pytest.mark.parametrize("tfvars, expected", [
    ('stream_mode = "ON_DEMAND"\n', StreamCapacity()),
    ('stream_mode        = "PROVISIONED"\nstream_shard_count = 2\n', StreamCapacity("PROVISIONED", 2)),
])
def test_the_stream_capacity_is_read_from_the_environments_tfvars(tmp_path, tfvars, expected):
    path = tmp_path / "terraform.tfvars"
    path.write_text('environment = "prod"\n' + tfvars)
    assert stream_capacity(path) == expected


@pytest.mark.parametrize("tfvars", ['stream_mode = "PROVISIONED"\n', 'region = "us-east-1"\n', "stream_mode = [\n"])
def test_a_tfvars_without_a_usable_stream_capacity_is_a_price_error(tmp_path, tfvars):
    path = tmp_path / "terraform.tfvars"
    path.write_text(tfvars)
    with pytest.raises(PriceError, match="terraform.tfvars"):
        stream_capacity(path)


def test_the_priced_environment_is_prod_as_committed():
    prod = stream_capacity(bench_cost.PRICED_TFVARS)
    assert bench_cost.PRICED_TFVARS.parent.name == "prod" and prod.mode in ("ON_DEMAND", "PROVISIONED")


def test_the_model_refuses_measurements_missing_a_figure():
    measured = _measured()
    del measured["dynamodb_write_units"]
    with pytest.raises(ValueError, match="dynamodb_write_units"):
        cost_model(measured, _prices(), 1)


def test_the_committed_prices_give_the_expected_cost_of_one_known_payment():
    """A hand-computed figure: 10 WRU, 2 RRU, 8 invocations, 0.4 GB-s on arm64, 2 API requests."""
    prices = load_prices(PRICES)
    measured = _measured(dynamodb_write_units=10, dynamodb_read_units=2, lambda_invocations=8, lambda_gb_seconds=0.4,
                         api_requests=2)
    variable = cost_model(measured, prices, 1_000_000)["variable"]
    assert variable["dynamodb_writes"] + variable["dynamodb_reads"] == pytest.approx(10 * 0.625e-6 + 2 * 0.125e-6)
    assert variable["lambda_requests"] + variable["lambda_duration"] == pytest.approx(8 * 0.2e-6 + 0.4 * 0.0000133334)
    assert variable["api_gateway"] + variable["waf"] == pytest.approx(2 * 3.5e-6 + 2 * 0.6e-6)


# -- counting helpers ---------------------------------------------------------------------------------
def test_report_lines_give_billed_and_init_durations():
    text = ("START RequestId: a Version: $LATEST\n{\"level\": \"INFO\"}\nEND RequestId: a\n"
            "REPORT RequestId: a\tDuration: 880.68 ms\tBilled Duration: 881 ms\tMemory Size: 512 MB\t"
            "Max Memory Used: 85 MB\tInit Duration: 865.27 ms\n"
            "REPORT RequestId: b\tDuration: 176.44 ms\tBilled Duration: 177 ms\tMemory Size: 512 MB\tMax Memory Used: 85 MB\n")
    assert parse_reports(text) == [(881, 865.27), (177, 0.0)]


def test_poller_requests_are_told_from_the_data_planes_housekeeping_and_from_its_idle_rate():
    pollers, housekeeping = split_dataplane({"sqs.ReceiveMessage": 50, "sqs.DeleteMessageBatch": 20,
                                             "kinesis.GetRecords": 300, "sqs.GetQueueAttributes": 40,
                                             "monitoring.DescribeAlarms": 4})
    assert pollers == {"sqs.ReceiveMessage": 50, "sqs.DeleteMessageBatch": 20, "kinesis.GetRecords": 300}
    assert housekeeping == {"sqs.GetQueueAttributes": 40, "monitoring.DescribeAlarms": 4}
    # 10 s idle: 2 receives a second; 20 s batch: 40 of its 50 receives are the idle rate.
    assert beyond_idle({"sqs.ReceiveMessage": 50, "kinesis.GetRecords": 10}, {"sqs.ReceiveMessage": 20,
                                                                               "kinesis.GetRecords": 100}, 10, 20) == {
        "sqs.ReceiveMessage": 10, "kinesis.GetRecords": 0.0}


def test_emf_lines_give_the_distinct_custom_metrics():
    line = lambda name, service: json.dumps({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{  # noqa: E731
        "Namespace": "paystream", "Dimensions": [["service"]], "Metrics": [{"Name": name, "Unit": "Count"}]}]},
        "service": service, name: [1.0]})
    text = "\n".join([line("PaymentsInitiated", "initiate_payment"), line("PaymentsInitiated", "initiate_payment"),
                      line("PaymentsInitiated", "other"), "not json", '{"level": "INFO"}'])
    assert emf_metrics(text) == {("paystream", "PaymentsInitiated", (("service", "initiate_payment"),)),
                                 ("paystream", "PaymentsInitiated", (("service", "other"),))}


# -- DynamoDB capacity units --------------------------------------------------------------------------
def test_item_sizes_follow_dynamodbs_rules():
    assert item_size({"pk": {"S": "TXN#1"}}) == 2 + 5
    assert number_size("1999") == 3 and number_size("100") == 2 and number_size("0") == 1 and number_size("-1.50") == 2
    assert attribute_size({"BOOL": True}) == 1 and attribute_size({"NULL": True}) == 1
    assert attribute_size({"B": "AAEC"}) == 3  # base64 of three bytes
    assert attribute_size({"SS": ["ab", "c"]}) == 3
    # A map: 3 bytes, then per element 1 byte + its name + its value.
    assert attribute_size({"M": {"a": {"S": "xy"}, "bb": {"N": "12"}}}) == 3 + (1 + 1 + 2) + (1 + 2 + 2)
    assert attribute_size({"L": [{"S": "x"}, {"BOOL": False}]}) == 3 + (1 + 1) + (1 + 1)
    assert item_size(None) == 0


def test_units_round_up_per_kilobyte_written_and_per_4_kilobytes_read():
    assert write_units(1) == write_units(1024) == 1 and write_units(1025) == 2
    assert write_units(1500, transactional=True) == 4
    assert read_units(4096) == 0.5 and read_units(4097) == 1 and read_units(4097, consistent=True) == 2
    assert read_units(100, transactional=True) == 2


class FakeTables(StoredItems):
    """A table `t` (pk, sk) with a by-status GSI projecting ALL; items kept in a dict by (pk, sk)."""

    def __init__(self, items: dict | None = None):
        self.items = items or {}

    def key_names(self, table):
        return ("pk", "sk")

    def indexes(self, table):
        return [(("status_pk", "created_at"), "ALL", ())]

    def get(self, table, key):
        return self.items.get((key["pk"]["S"], key["sk"]["S"]))

    def put(self, item):
        self.items[(item["pk"]["S"], item["sk"]["S"])] = item


def _item(sk: str, size: int, **extra) -> dict:
    """An item of exactly `size` bytes (pk "P" + sk + padding attribute `x`)."""
    base = {"pk": {"S": "P"}, "sk": {"S": sk}, **extra}
    pad = size - item_size(base) - 1  # the name "x"
    return {**base, "x": {"S": "." * pad}}


def test_a_transaction_appending_an_event_costs_twice_per_kilobyte_plus_the_index_moves():
    old_projection = _item("PROJECTION", 800, status_pk={"S": "STATUS#created"}, created_at={"S": "t"})
    tables = FakeTables({("P", "PROJECTION"): old_projection})
    event = _item("EVENT#2", 1500)
    new_projection = _item("PROJECTION", 1100, status_pk={"S": "STATUS#succeeded"}, created_at={"S": "t"})
    request = {"TransactItems": [{"Put": {"TableName": "t", "Item": event}},
                                 {"Update": {"TableName": "t", "Key": {"pk": {"S": "P"}, "sk": {"S": "PROJECTION"}}}}]}
    estimate = CapacityEstimate("TransactWriteItems", request, tables)
    tables.put(event)
    tables.put(new_projection)  # what DynamoDB did
    writes, reads = estimate.units(200, b"{}")
    # event 1.5 KB -> 2 x 2; projection max(800, 1100) -> 2 x 2; index key changed: delete 800 B (1) + put 1.1 KB (2).
    assert (writes, reads) == (4 + 4 + 3, 0)


def test_an_update_that_keeps_the_index_key_writes_the_index_once_and_reads_are_sized_by_the_whole_item():
    before = _item("PROJECTION", 900, status_pk={"S": "STATUS#succeeded"}, created_at={"S": "t"})
    tables = FakeTables({("P", "PROJECTION"): before})
    key = {"pk": {"S": "P"}, "sk": {"S": "PROJECTION"}}
    estimate = CapacityEstimate("UpdateItem", {"TableName": "t", "Key": key}, tables)
    tables.put(_item("PROJECTION", 950, status_pk={"S": "STATUS#succeeded"}, created_at={"S": "t"}))
    assert estimate.units(200, b"{}") == (1 + 1, 0)
    # A GetItem of a 5 KB item with a projection expression still reads the whole item: 2 units, halved.
    tables.put(_item("BIG", 5000))
    get = CapacityEstimate("GetItem", {"TableName": "t", "Key": {"pk": {"S": "P"}, "sk": {"S": "BIG"}},
                                       "ProjectionExpression": "pk"}, tables)
    assert get.units(200, b'{"Item": {"pk": {"S": "P"}}}') == (0, 1.0)
    consistent = CapacityEstimate("GetItem", {"TableName": "t", "Key": {"pk": {"S": "P"}, "sk": {"S": "NONE"}},
                                              "ConsistentRead": True}, tables)
    assert consistent.units(200, b"{}") == (0, 1)  # a missing item still costs one read


def test_a_failed_condition_is_billed_but_a_throttled_request_is_not():
    tables = FakeTables({("P", "A"): _item("A", 2000)})
    put = {"TableName": "t", "Item": _item("A", 500), "ConditionExpression": "attribute_not_exists(pk)"}
    failed = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}).encode()
    assert CapacityEstimate("PutItem", put, tables).units(400, failed) == (2, 0)  # the stored 2 KB item
    throttled = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}).encode()
    assert CapacityEstimate("PutItem", put, tables).units(400, throttled) == (0, 0)


def test_batch_reads_are_rounded_per_item_and_queries_over_the_whole_result():
    tables = FakeTables({("P", f"E{i}"): _item(f"E{i}", 1000) for i in range(3)})
    keys = [{"pk": {"S": "P"}, "sk": {"S": f"E{i}"}} for i in range(3)]
    batch = CapacityEstimate("BatchGetItem", {"RequestItems": {"t": {"Keys": keys, "ConsistentRead": True}}}, tables)
    assert batch.units(200, b"{}") == (0, 3)
    query = CapacityEstimate("Query", {"TableName": "t", "ConsistentRead": True}, tables)
    returned = json.dumps({"Items": [tables.get("t", k) for k in keys]}).encode()
    assert query.units(200, returned) == (0, 1)  # 3 KB together: one 4 KB unit
    # Only the keys returned (a projection): DynamoDB still read the whole items.
    keys_only = json.dumps({"Items": keys * 5}).encode()
    projected = CapacityEstimate("Query", {"TableName": "t", "ConsistentRead": True, "ProjectionExpression": "pk, sk"},
                                 tables)
    assert projected.units(200, keys_only) == (0, 4)  # 15 KB read
    assert CapacityEstimate("Query", {"TableName": "t", "ConsistentRead": True}, tables).units(200, keys_only) == (0, 1)


def _environ(target: str, body: dict, app: str = "paystream-local-notifier") -> dict:
    raw = json.dumps(body).encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "HTTP_X_AMZ_TARGET": target, "CONTENT_LENGTH": str(len(raw)),
            "wsgi.input": io.BytesIO(raw), "HTTP_USER_AGENT": f"Boto3/1.40 md/Botocore#1.40 app/{app}",
            "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/dynamodb/aws4_request, x"}


def _call(app, environ) -> tuple[str, bytes]:
    seen = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0], body


def test_the_counter_records_each_dynamodb_requests_units_by_caller_and_app_and_leaves_the_request_alone():
    tables = FakeTables()
    regions = []

    def moto(environ, start_response):
        item = json.loads(environ["wsgi.input"].read())["Item"]  # moto still reads the whole body
        tables.put(item)
        start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
        return [b"{}"]

    def tables_for(region):
        regions.append(region)
        return tables

    counter = RequestCounter()
    app = counter.with_capacity(moto, tables_for)
    item = _item("A", 1500)
    status, body = _call(app, _environ("DynamoDB_20120810.PutItem", {"TableName": "t", "Item": item}))
    assert (status, body, regions) == ("200 OK", b"{}", ["us-east-1"])
    assert tables.get("t", {"pk": {"S": "P"}, "sk": {"S": "A"}}) == item
    assert counter.snapshot(units=True) == {"clients": {"dynamodb.PutItem": {"write_units": 2.0, "read_units": 0.0}}}
    assert counter.snapshot(by_app=True, units=True) == {
        "paystream-local-notifier": {"dynamodb.PutItem": {"write_units": 2.0, "read_units": 0.0}}}
    counter.reset()
    assert counter.snapshot(units=True) == {} and counter.snapshot() == {}


def test_other_requests_and_unreadable_ones_pass_through_uncounted():
    calls = []

    def moto(environ, start_response):
        calls.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    counter = RequestCounter()
    app = counter.with_capacity(moto, lambda region: FakeTables())
    assert _call(app, _environ("AmazonSQS.SendMessage", {"QueueUrl": "q"}))[1] == b"ok"
    broken = _environ("DynamoDB_20120810.PutItem", {})
    broken["wsgi.input"] = io.BytesIO(b"not json")
    broken["CONTENT_LENGTH"] = "8"
    assert _call(app, broken) == ("200 OK", b"ok")
    assert calls[-1] == b"not json"  # the body still reaches moto whole
    assert counter.snapshot(units=True) == {}


def test_moto_tables_read_the_emulators_items_and_indexes():
    import boto3
    from moto import mock_aws

    from localdev.emulator.extensions import MotoTables

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="eu-west-1")
        ddb.create_table(
            TableName="tx", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "status_pk")],
            GlobalSecondaryIndexes=[{"IndexName": "by-status", "KeySchema": [{"AttributeName": "status_pk", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "KEYS_ONLY"}}])
        item = {"pk": {"S": "TXN#1"}, "sk": {"S": "PROJECTION"}, "amount": {"N": "1999"}, "status_pk": {"S": "S#x"}}
        ddb.put_item(TableName="tx", Item=item)
        tables = MotoTables("123456789012", "eu-west-1")
        assert tables.key_names("tx") == ("pk", "sk")
        assert tables.indexes("tx") == [(("status_pk",), "KEYS_ONLY", ())]
        assert tables.get("tx", {"pk": {"S": "TXN#1"}, "sk": {"S": "PROJECTION"}}) == item
        assert tables.get("tx", {"pk": {"S": "TXN#2"}, "sk": {"S": "PROJECTION"}}) is None
        assert math.isclose(item_size(tables.get("tx", {"pk": {"S": "TXN#1"}, "sk": {"S": "PROJECTION"}})),
                            item_size(item))


def test_stripe_calls_are_counted_from_localstripes_access_log():
    log = ('2026-11-22 16:36:14,841 aiohttp.access 127.0.0.1 [22/Nov/2026:16:36:14 +0000] "GET /_localdev/health '
           'HTTP/1.1" 200 289 "-" "Python-urllib/3.11"\n'
           '2026-11-22 16:36:15,001 aiohttp.access 127.0.0.1 [22/Nov/2026:16:36:15 +0000] "POST /v1/payment_intents '
           'HTTP/1.1" 200 1890 "-" "Stripe/v1 PythonBindings/16.1.0"\n')
    assert bench_cost.stripe_api_calls(log) == 1
    assert bench_cost.stripe_api_calls(log.replace("POST /v1/payment_intents", "GET /v1/charges/ch_1")) == 1
    assert bench_cost.stripe_api_calls(log.splitlines()[0]) == 0


def test_the_analysis_counts_only_the_functions_calls_and_turns_deliveries_into_billed_requests():
    names = {"initiate_payment": "fn-initiate", "stripe_webhook": "fn-webhook", "notifier": "fn-notifier",
             "outbox_relay": "fn-relay"}
    payments = 10
    by_app = {"fn-initiate": {"dynamodb.PutItem": 10, "dynamodb.TransactWriteItems": 20},
              "fn-notifier": {"sns.Publish": 10, "sqs.SendMessage": 2},
              bench_cost.BENCH_APP: {"dynamodb.BatchGetItem": 7}}
    counts = {"clients": {"dynamodb.PutItem": 10, "dynamodb.TransactWriteItems": 20, "sns.Publish": 10,
                          "sqs.SendMessage": 2, "dynamodb.BatchGetItem": 7, "dynamodb.GetItem": 1},
              "dataplane": {"sqs.ReceiveMessage": 30, "sqs.DeleteMessageBatch": 10, "sqs.GetQueueUrl": 5}}
    idle = {"dataplane": {"sqs.ReceiveMessage": 10}}  # 1 a second over 10 s
    report = "REPORT RequestId: x\tDuration: 99.5 ms\tBilled Duration: 100 ms\tMemory Size: 512 MB\tMax Memory Used: 1 MB\n"
    logs = {"fn-initiate": report * 10, "fn-webhook": report * 10, "fn-notifier": "", "fn-relay": report * 5}
    configs = {fn: {"memory_mb": 1024, "architectures": ["x86_64"]} for fn in logs}
    before = {"u1": {"uuid": "u1", "kind": "sqs", "function_arn": "arn:aws:lambda:r:a:function:fn-notifier", "records": 3,
                     "filtered": 0},
              "u2": {"uuid": "u2", "kind": "dynamodb", "function_arn": "arn:aws:lambda:r:a:function:fn-relay",
                     "records": 0, "filtered": 0}}
    after = {"u1": {**before["u1"], "records": 13}, "u2": {**before["u2"], "records": 40, "filtered": 70}}
    units_by_app = {"fn-initiate": {"dynamodb.PutItem": {"write_units": 10.0, "read_units": 0.0}},
                    bench_cost.BENCH_APP: {"dynamodb.BatchGetItem": {"write_units": 0.0, "read_units": 99.0}}}
    result = bench_cost.analyse(
        {"function_names": names}, payments, 2, batch_seconds=20, idle=idle, idle_seconds=10, idle_clients={},
        counts=counts, by_app=by_app, units_by_app=units_by_app, status_before=before, status_after=after, logs=logs,
        configs=configs, records=[b"x" * 300] * 10, fixed={"alarms": 4, "secrets": 2},
        sizes={"event_detail_bytes": 100.0, "inbox_bytes": 50.0, "inbox_items": 1.0, "transactions_partition_bytes": 1.0},
        round_trips={"median": 4.0, "samples": [4], "typical_operations": {}}, sent=[{"seconds": 0.2}] * 10)
    assert result["all_function_ops"] == {"dynamodb.PutItem": 10, "dynamodb.TransactWriteItems": 20,
                                          "sns.Publish": 10, "sqs.SendMessage": 2}
    assert result["unattributed"] == {"dynamodb.GetItem": 1}  # a client request without an app id
    assert result["housekeeping"] == {"sqs.GetQueueUrl": 5}
    m = result["measured"]
    assert m["api_requests"] == 2.0  # one POST /payments + one webhook per payment
    assert m["lambda_invocations"] == 2.5 and m["lambda_gb_seconds"] == pytest.approx(25 * 0.1 / payments)
    assert m["dynamodb_write_units"] == 1.0 and m["dynamodb_read_units"] == 0.0  # the bench's reads left out
    assert m["eventbridge_events_64kb"] == 4.0  # the relay's delivered records
    # 10 messages EventBridge sent + 2 SendMessage by a function + receives beyond idle (30 - 20) + 10 deletes.
    assert m["sqs_requests_64kb"] == pytest.approx((10 + 2 + 10 + 10) / payments)
    assert m["kinesis_ingested_bytes_billed"] == 1024 and m["kinesis_retrieved_bytes"] == 300
    assert m["sns_publishes_64kb"] == 1.0 and m["alarms"] == 4 and m["sqs_mappings"] == 1


def test_batched_publishes_are_billed_per_request_and_deliveries_per_message_the_subscriber_received():
    names = {"initiate_payment": "fn-initiate", "stripe_webhook": "fn-webhook", "notifier": "fn-notifier",
             "outbox_relay": "fn-relay"}
    payments = 10
    by_app = {"fn-notifier": {"sns.PublishBatch": 2}}  # 10 notifications in two batches
    result = bench_cost.analyse(
        {"function_names": names}, payments, 2, batch_seconds=20, idle={}, idle_seconds=10, idle_clients={},
        counts={"clients": {"sns.PublishBatch": 2}}, by_app=by_app, units_by_app={}, status_before={},
        status_after={}, logs={}, configs={}, records=[], fixed={"alarms": 0, "secrets": 0},
        sizes={"event_detail_bytes": 0.0, "inbox_bytes": 0.0, "inbox_items": 0.0, "transactions_partition_bytes": 0.0},
        round_trips={"median": 2.0, "samples": [2], "typical_operations": {}}, sent=[{"seconds": 0.2}] * 10,
        notifications={"received": 10, "duplicated": 0, "missing": 0})
    m = result["measured"]
    assert m["sns_publishes_64kb"] == pytest.approx(0.2)  # two requests of five small messages each
    assert m["sns_sqs_deliveries"] == 1.0  # but every notification was delivered to the subscriber
    assert result["notifications"] == {"received": 10, "duplicated": 0, "missing": 0}


def test_the_emulator_answers_the_capacity_units_of_each_functions_dynamodb_requests():
    """Wired in LocalDevExtensions: GET /_localdev/requests?units=capacity (and &by=app), over moto's own app."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    from localdev.emulator.extensions import LocalDevExtensions

    client = Client(LocalDevExtensions(DomainDispatcherApplication(create_backend_app), account_id="123456789012"))
    table = f"units-{uuid.uuid4().hex[:8]}"

    def dynamodb(operation: str, body: dict, app: str) -> int:
        return client.post("/", data=json.dumps(body), headers={
            "X-Amz-Target": f"DynamoDB_20120810.{operation}", "Content-Type": "application/x-amz-json-1.0",
            "User-Agent": f"Boto3/1.40 app/{app}", "Host": "dynamodb.us-east-1.amazonaws.com",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/dynamodb/aws4_request, "
                             "SignedHeaders=host, Signature=x"}).status_code

    assert dynamodb("CreateTable", {"TableName": table, "BillingMode": "PAY_PER_REQUEST",
                                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]},
                    "setup") == 200
    assert client.delete("/_localdev/requests").status_code == 200
    item = {"pk": {"S": "A"}, "blob": {"S": "x" * 3000}}
    assert dynamodb("PutItem", {"TableName": table, "Item": item}, "fn-writer") == 200
    assert dynamodb("GetItem", {"TableName": table, "Key": {"pk": {"S": "A"}}}, "fn-reader") == 200
    units = client.get("/_localdev/requests?units=capacity").get_json()["requests"]
    assert units == {"clients": {"dynamodb.GetItem": {"write_units": 0.0, "read_units": 0.5},
                                 "dynamodb.PutItem": {"write_units": 3.0, "read_units": 0.0}}}
    by_app = client.get("/_localdev/requests?by=app&units=capacity").get_json()["requests"]
    assert by_app["fn-writer"] == {"dynamodb.PutItem": {"write_units": 3.0, "read_units": 0.0}}
    assert client.get("/_localdev/requests").get_json()["requests"] == {
        "clients": {"dynamodb.GetItem": 1, "dynamodb.PutItem": 1}}
