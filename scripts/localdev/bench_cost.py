"""`make bench` (cost part): AWS requests, sequential round trips and AWS cost per payment (issue 8, items 1-2).

On a running local stack (or `--own-stack`):

1. **Calls per payment.** After a warm-up and an idle window (the local data plane's polling rate with
   nothing to do), the emulator's counters are reset and N payments (default 200) go through
   `POST /payments` from a few concurrent clients with a card localstripe confirms. The bench waits until
   every payment's whole life is done — initiate, Stripe's `payment_intent.succeeded` webhook stored and
   processed (the process-payment queue drained), fraud scored, the notification received by an SQS
   subscriber of payment-notifications (the bench's own, as the cost model assumes one; duplicates are
   reported) — and until the functions' requests stop changing, then reads `GET /_localdev/requests` (by caller, `?by=app` per
   function, `?units=capacity` for the DynamoDB request units the emulator estimated per request). The
   bench's own AWS calls carry their own user-agent app id (`app/bench-cost`) and are left out.
   - `aws_requests_per_payment`: the AWS API requests the platform's functions make per payment (their
     code's calls, what X-Ray would show as AWS subsegments).
   - `poller_requests_per_payment`: what Lambda's event source mappings made meanwhile — here the local
     data plane's pollers. In AWS, Lambda's pollers make them: SQS ReceiveMessage/DeleteMessage are billed
     SQS requests; DynamoDB Streams reads by Lambda triggers and Kinesis GetRecords by standard consumers
     are not billed per request. Their local count follows the local pollers' intervals (1 s SQS long
     polls, 0.3 s idle stream polls), not AWS's, so the idle rate measured just before is given too.
   - The data plane's other requests (its CloudWatch alarm evaluator) are neither and are reported apart.
2. **Sequential round trips before `POST /payments` answers**: single POSTs one after another on a warm
   function, the AWS requests initiate_payment made for each (its per-app counter before and after),
   median of `--sequential` (10). The handler issues every call in turn (no concurrency), so each is a
   round trip the client waits for. The Stripe call is counted apart (from the code: one create+confirm).
3. **Cost per payment**: the model (`cost_model`) applies bench/aws-prices.json (us-east-1 list prices,
   dated, a source per service) to the measured figures: Lambda requests and GB-seconds from the functions'
   own REPORT lines (billed duration plus init duration of cold starts, during the batch) times the memory
   the emulator reports (what Terraform set), priced for arm64 (the AWS environments' architecture); API
   Gateway requests; DynamoDB WRU/RRU as estimated by the emulator (GSI writes included); EventBridge
   entries (records the relay's stream mapping delivered) and archive bytes; SQS requests (EventBridge's
   sends, the functions' own, the pollers' receives/deletes beyond the idle rate); Kinesis as the priced
   environment configures its fraud stream (`stream_mode` in terraform/environments/prod/terraform.tfvars:
   PROVISIONED shard-hours and 25 KB PUT payload units, or ON_DEMAND stream-hours and bytes in and out);
   SNS publishes; Secrets Manager, SSM, CloudWatch and KMS calls; log bytes; X-Ray traces; WAF requests;
   plus fixed monthly charges (stream hours, keys, secrets, alarms, custom metrics, idle polling) amortized
   over `--monthly-payments` (default 1,000,000) — each assumption is listed in the output.

Usage: `python -m localdev.bench_cost [--outputs F | --own-stack] [--payments 200] [--out bench/cost.json]`.
Writes bench/cost.json (and prints it). Exit 1 with one line when the stack or the price file is unusable
or a payment does not complete.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import platform
import re
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localdev.bench_stack import DEFAULT_OUTPUTS, NoStack, bench_stack
from localdev.stack import PROJECT_ROOT

BENCH_APP = "bench-cost"  # the user-agent app id of this bench's own AWS calls (excluded from the counts)
SUCCEEDING_CARD = "4242424242424242"
REFERENCE_USD, GOAL_USD = 0.00036, 0.00010
REFERENCE_REQUESTS, GOAL_REQUESTS, GOAL_ROUND_TRIPS = 20, 8, 2
DEFAULT_PRICES = PROJECT_ROOT / "bench" / "aws-prices.json"
# The environment whose configuration the model prices (its Kinesis capacity mode and shards).
PRICED_TFVARS = PROJECT_ROOT / "terraform" / "environments" / "prod" / "terraform.tfvars"
GB = 1024 ** 3
KINESIS_PUT_PAYLOAD_UNIT_BYTES = 25 * 1024  # provisioned mode bills each record's PUT in 25 KB units

# What Lambda's event source mappings do (here the local data plane's pollers), by operation. DynamoDB
# Streams operations are signed for `dynamodb` and show as dynamodb.<Operation>.
POLLER_OPERATIONS = {
    "sqs.ReceiveMessage", "sqs.DeleteMessage", "sqs.DeleteMessageBatch", "sqs.ChangeMessageVisibility",
    "sqs.ChangeMessageVisibilityBatch", "sqs.SendMessage", "sns.Publish",
    "dynamodb.GetRecords", "dynamodb.GetShardIterator", "dynamodb.DescribeStream", "dynamodb.ListStreams",
    "kinesis.GetRecords", "kinesis.GetShardIterator", "kinesis.ListShards", "kinesis.DescribeStream",
    "kinesis.DescribeStreamSummary",
}
# Of those, the ones SQS bills (Lambda's SQS pollers and on-failure deliveries to a queue).
SQS_BILLED_POLLER_OPERATIONS = {op for op in POLLER_OPERATIONS if op.startswith("sqs.")}

STRIPE_API_LINE = re.compile(r'"(?:GET|POST|DELETE) /v1/[^"]*" \d{3} ')
REPORT_LINE = re.compile(r"^REPORT RequestId: \S+\tDuration: [\d.]+ ms\tBilled Duration: (?P<billed>\d+) ms"
                         r"(?:.*?\tInit Duration: (?P<init>[\d.]+) ms)?", re.MULTILINE)

# -- assumptions of the model that are not prices (listed in the output) ------------------------------
XRAY_SAMPLED_FRACTION = 0.05  # X-Ray's default rule beyond its 1 request/s reservoir: 5 % of traces recorded
# Lambda's SQS event source mapping keeps long-polling an idle queue: taken as 5 pollers x 20 s long polls.
SQS_IDLE_RECEIVES_PER_MAPPING_MONTH = 5 * 3 * 60 * 24 * 30
# Services using the customer managed key cache data keys (5-minute windows): a few calls per principal and
# resource per window, whatever the volume. Taken as 12 functions x 3 encrypted resources each.
KMS_CACHED_KEY_CALLS_MONTH = 12 * 3 * 12 * 24 * 30
HOURS_PER_MONTH = 730
# One access log line per API request (terraform/modules/api: 17 JSON fields), filled with typical values.
ACCESS_LOG_SAMPLE = {
    "requestId": str(uuid.UUID(int=0)), "extendedRequestId": "AbCdEfGhIjKlMnO=", "requestTime": "1795365235705",
    "ip": "203.0.113.10", "caller": "-", "apiKeyId": "abcdefghij", "httpMethod": "POST", "resourcePath": "/payments",
    "protocol": "HTTP/1.1", "status": "201", "responseLength": "240", "responseLatency": "180",
    "integrationStatus": "200", "integrationLatency": "170", "errorMessage": "-", "errorResponseType": "-",
    "xrayTraceId": "1-6b031982-6ba08d613e4eca2eee500a78"}
ACCESS_LOG_BYTES = len(json.dumps(ACCESS_LOG_SAMPLE)) + 26  # + CloudWatch's 26 bytes per log event


class PriceError(Exception):
    """The price file cannot price the model; the message says what is missing."""


# Every price the model needs: (service, price name).
REQUIRED_PRICES = [
    ("lambda", "request"), ("lambda", "gb_second_arm64"), ("lambda", "gb_second_x86_64"),
    ("api_gateway_rest", "request"),
    ("dynamodb_on_demand", "write_request_unit"), ("dynamodb_on_demand", "read_request_unit"),
    ("dynamodb_on_demand", "stream_read_request_unit"),
    ("eventbridge", "custom_event_64kb"), ("eventbridge", "archive_processing_gb"),
    ("sqs_standard", "request_64kb"),
    ("kinesis_on_demand", "stream_hour"), ("kinesis_on_demand", "ingested_gb"), ("kinesis_on_demand", "retrieved_gb"),
    ("kinesis_provisioned", "shard_hour"), ("kinesis_provisioned", "put_payload_unit_25kb"),
    ("sns", "publish_64kb"), ("sns", "delivery_sqs"),
    ("kms", "request"), ("kms", "key_month"),
    ("secrets_manager", "api_call"), ("secrets_manager", "secret_month"),
    ("ssm_parameter_store", "standard_get_parameter"),
    ("cloudwatch", "put_metric_data_request"), ("cloudwatch", "logs_ingested_gb"), ("cloudwatch", "alarm_month"),
    ("cloudwatch", "custom_metric_month"),
    ("xray", "trace_recorded"),
    ("waf", "request"), ("waf", "web_acl_month"), ("waf", "rule_month"),
]


def load_prices(path: Path) -> dict[str, Any]:
    """The price file, checked: every price the model needs present as a number (USD per `per` units)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PriceError(f"{path}: cannot read the price file ({error})") from None
    for field in ("region", "as_of", "services"):
        if field not in document:
            raise PriceError(f"{path}: no {field!r} in the price file")
    for service, name in REQUIRED_PRICES:
        entry = document["services"].get(service, {}).get("prices", {}).get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("usd"), (int, float)) or not entry.get("per"):
            raise PriceError(f"{path}: no price for {service}.{name} "
                             f'(expected "services": {{"{service}": {{"prices": {{"{name}": {{"usd": …, "per": …}}}}}}}})')
        if not document["services"][service].get("source"):
            raise PriceError(f"{path}: no source URL for {service}")
    return document


def unit_price(prices: dict[str, Any], service: str, name: str) -> float:
    entry = prices["services"][service]["prices"][name]
    return entry["usd"] / entry["per"]


@dataclass(frozen=True)
class StreamCapacity:
    """How the priced environment provisions the Kinesis fraud stream (its `stream_mode`, `stream_shard_count`)."""

    mode: str = "ON_DEMAND"
    shards: int | None = None

    def describe(self) -> str:
        return f"PROVISIONED, {self.shards} shard(s)" if self.mode == "PROVISIONED" else "ON_DEMAND"


def stream_capacity(tfvars: Path) -> StreamCapacity:
    """The fraud stream's capacity as an environment's terraform.tfvars sets it (PriceError if unusable)."""
    import hcl2
    from hcl2.utils import SerializationOptions

    try:
        values = hcl2.loads(tfvars.read_text(), serialization_options=SerializationOptions(strip_string_quotes=True))
    except Exception as error:  # OSError, or one of lark's several parse errors
        raise PriceError(f"{tfvars}: cannot read the stream's capacity mode ({str(error).splitlines()[0]})") from None
    mode, shards = values.get("stream_mode"), values.get("stream_shard_count")
    if mode == "ON_DEMAND":
        return StreamCapacity()
    if mode == "PROVISIONED" and isinstance(shards, int) and shards >= 1:
        return StreamCapacity("PROVISIONED", shards)
    raise PriceError(f"{tfvars}: stream_mode must be ON_DEMAND, or PROVISIONED with stream_shard_count >= 1 "
                     f"(found {mode!r}, {shards!r})")


def cost_model(measured: dict[str, Any], prices: dict[str, Any], monthly_payments: int,
               architecture: str = "arm64", stream: StreamCapacity = StreamCapacity()) -> dict[str, Any]:
    """USD per payment by service, from per-payment figures (`measured`, see `MEASURED_FIELDS`) and the prices.

    The Kinesis fraud stream is priced as `stream` provisions it: ON_DEMAND bills data in and out and an
    hourly charge per stream; PROVISIONED bills each record's PUT payload units and an hourly charge per shard.

    Returns `variable` (what scales with payments), `fixed_monthly_usd` (what a month costs whatever the
    volume) amortized over `monthly_payments` in `fixed_per_payment`, and `total`."""
    missing = [name for name in MEASURED_FIELDS if name not in measured]
    if missing:
        raise ValueError(f"cost_model: measured figures missing: {', '.join(missing)}")
    p = lambda service, name: unit_price(prices, service, name)  # noqa: E731
    m = measured
    variable = {
        "lambda_requests": m["lambda_invocations"] * p("lambda", "request"),
        "lambda_duration": m["lambda_gb_seconds"] * p("lambda", f"gb_second_{architecture}"),
        "api_gateway": m["api_requests"] * p("api_gateway_rest", "request"),
        "dynamodb_writes": m["dynamodb_write_units"] * p("dynamodb_on_demand", "write_request_unit"),
        "dynamodb_reads": m["dynamodb_read_units"] * p("dynamodb_on_demand", "read_request_unit"),
        # Lambda triggers read DynamoDB Streams free of charge; other readers would pay per GetRecords.
        "dynamodb_streams": m["dynamodb_stream_billed_reads"] * p("dynamodb_on_demand", "stream_read_request_unit"),
        "eventbridge_events": m["eventbridge_events_64kb"] * p("eventbridge", "custom_event_64kb"),
        "eventbridge_archive": m["eventbridge_archive_bytes"] / GB * p("eventbridge", "archive_processing_gb"),
        "sqs": m["sqs_requests_64kb"] * p("sqs_standard", "request_64kb"),
        "kinesis": (m["kinesis_put_payload_units"] * p("kinesis_provisioned", "put_payload_unit_25kb")
                    if stream.mode == "PROVISIONED" else
                    m["kinesis_ingested_bytes_billed"] / GB * p("kinesis_on_demand", "ingested_gb")
                    + m["kinesis_retrieved_bytes"] / GB * p("kinesis_on_demand", "retrieved_gb")),
        "sns": m["sns_publishes_64kb"] * p("sns", "publish_64kb") + m["sns_sqs_deliveries"] * p("sns", "delivery_sqs"),
        "kms": m["kms_requests"] * p("kms", "request"),
        "secrets_manager": m["secrets_manager_calls"] * p("secrets_manager", "api_call"),
        "ssm_parameter_store": m["ssm_get_parameter_calls"] * p("ssm_parameter_store", "standard_get_parameter"),
        "cloudwatch_metrics_api": m["cloudwatch_put_metric_data_calls"] * p("cloudwatch", "put_metric_data_request"),
        "cloudwatch_logs": m["log_bytes"] / GB * p("cloudwatch", "logs_ingested_gb"),
        "xray": m["xray_traces"] * p("xray", "trace_recorded"),
        "waf": m["api_requests"] * p("waf", "request"),
    }
    fixed_monthly = {
        "kinesis_stream_hours": HOURS_PER_MONTH * (stream.shards * p("kinesis_provisioned", "shard_hour")
                                                   if stream.mode == "PROVISIONED" else p("kinesis_on_demand", "stream_hour")),
        "kms_key": m["kms_keys"] * p("kms", "key_month"),
        "kms_cached_data_key_calls": KMS_CACHED_KEY_CALLS_MONTH * p("kms", "request"),
        "secrets": m["secrets"] * p("secrets_manager", "secret_month"),
        "cloudwatch_alarms": m["alarms"] * p("cloudwatch", "alarm_month"),
        "cloudwatch_custom_metrics": m["custom_metrics"] * p("cloudwatch", "custom_metric_month"),
        "waf_web_acl_and_rules": p("waf", "web_acl_month") + m["waf_rules"] * p("waf", "rule_month"),
        "sqs_idle_polling": m["sqs_mappings"] * SQS_IDLE_RECEIVES_PER_MAPPING_MONTH * p("sqs_standard", "request_64kb"),
    }
    fixed_per_payment = sum(fixed_monthly.values()) / monthly_payments
    variable_total = sum(variable.values())
    return {
        "variable": variable,
        "variable_total": variable_total,
        "fixed_monthly_usd": fixed_monthly,
        "fixed_per_payment": fixed_per_payment,
        "total": variable_total + fixed_per_payment,
    }


MEASURED_FIELDS = (
    "lambda_invocations", "lambda_gb_seconds", "api_requests", "dynamodb_write_units", "dynamodb_read_units",
    "dynamodb_stream_billed_reads", "eventbridge_events_64kb", "eventbridge_archive_bytes", "sqs_requests_64kb",
    "kinesis_ingested_bytes_billed", "kinesis_retrieved_bytes", "kinesis_put_payload_units", "sns_publishes_64kb", "sns_sqs_deliveries",
    "kms_requests", "secrets_manager_calls", "ssm_get_parameter_calls", "cloudwatch_put_metric_data_calls",
    "log_bytes", "xray_traces", "kms_keys", "secrets", "alarms", "custom_metrics", "waf_rules", "sqs_mappings",
)


# -- counting helpers (pure) --------------------------------------------------------------------------
def functions_only(by_app: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-app counts without this bench's own."""
    return {app: ops for app, ops in by_app.items() if app != BENCH_APP}


def sum_ops(groups: dict[str, dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for ops in groups.values():
        for op, n in ops.items():
            total[op] = total.get(op, 0) + n
    return dict(sorted(total.items()))


def sum_units(groups: dict[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    total = {"write_units": 0.0, "read_units": 0.0}
    for ops in groups.values():
        for units in ops.values():
            total["write_units"] += units["write_units"]
            total["read_units"] += units["read_units"]
    return total


def sum_units_by_operation(groups: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for ops in groups.values():
        for op, units in ops.items():
            entry = total.setdefault(op, {"write_units": 0.0, "read_units": 0.0})
            entry["write_units"] += units["write_units"]
            entry["read_units"] += units["read_units"]
    return total


def split_dataplane(ops: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """(event source mapping requests, the rest: the local alarm evaluator's housekeeping)."""
    pollers = {op: n for op, n in ops.items() if op in POLLER_OPERATIONS}
    return pollers, {op: n for op, n in ops.items() if op not in POLLER_OPERATIONS}


def per(counts: dict[str, float], payments: int, digits: int = 2) -> dict[str, float]:
    return {key: round(value / payments, digits) for key, value in sorted(counts.items())}


def beyond_idle(batch: dict[str, int], idle: dict[str, int], idle_seconds: float, batch_seconds: float) -> dict[str, float]:
    """The batch's requests minus what the same pollers make idle over as long (never below zero)."""
    return {op: max(0.0, n - idle.get(op, 0) / idle_seconds * batch_seconds) for op, n in batch.items()}


def parse_reports(text: str) -> list[tuple[int, float]]:
    """(billed ms, init ms) of each REPORT line Lambda (here the data plane) wrote."""
    return [(int(m["billed"]), float(m["init"] or 0)) for m in REPORT_LINE.finditer(text)]


def emf_metrics(text: str) -> set[tuple[str, str, tuple]]:
    """The distinct CloudWatch metrics (namespace, name, dimension values) the EMF lines in a log define."""
    found = set()
    for line in text.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        for directive in record["_aws"].get("CloudWatchMetrics", []):
            for dimensions in directive.get("Dimensions", [[]]):
                values = tuple((d, str(record.get(d))) for d in dimensions)
                for metric in directive.get("Metrics", []):
                    found.add((directive.get("Namespace", ""), metric["Name"], values))
    return found


def median_int(values: list[int]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# -- the stack ----------------------------------------------------------------------------------------
def _request(url: str, **kwargs: Any) -> tuple[int, bytes]:
    from localdev.bench_webhooks import _request as request

    return request(url, **kwargs)


class CostStack:
    """The running stack, with AWS clients that identify themselves as this bench (app/bench-cost)."""

    def __init__(self, outputs: dict):
        import boto3
        import stripe
        from botocore.config import Config

        self.outputs = outputs
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, user_agent_appid=BENCH_APP)
        self._clients: dict[str, Any] = {}
        self._client = lambda service: boto3.client(
            service, endpoint_url=outputs["aws_endpoint_url"], region_name=outputs["region"],
            aws_access_key_id="test", aws_secret_access_key="test", config=config)
        self.stripe = stripe.StripeClient(outputs["stripe_api_key"], base_addresses={"api": outputs["stripe_api_base"]})
        self.payment_method = self.stripe.v1.payment_methods.create(params={
            "type": "card", "card": {"number": SUCCEEDING_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._client(service)
        return self._clients[service]

    def requests(self, *, by_app: bool = False, units: bool = False) -> dict:
        query = "&".join(q for q, on in (("by=app", by_app), ("units=capacity", units)) if on)
        status, raw = _request(f"{self.outputs['aws_endpoint_url']}/_localdev/requests" + (f"?{query}" if query else ""))
        if status != 200:
            raise RuntimeError(f"the emulator did not answer /_localdev/requests ({status}): is it this repository's emulator?")
        return json.loads(raw)["requests"]

    def reset(self) -> None:
        status, _ = _request(f"{self.outputs['aws_endpoint_url']}/_localdev/requests", method="DELETE")
        if status != 200:
            raise RuntimeError(f"the emulator refused DELETE /_localdev/requests ({status})")

    def dataplane_status(self) -> dict:
        url = self.outputs.get("dataplane_url")
        if not url:
            raise RuntimeError("the outputs name no dataplane_url: this bench needs the embedded local stack")
        status, raw = _request(f"{url}/_dataplane/status", timeout=60)
        if status != 200:
            raise RuntimeError(f"the data plane did not answer /_dataplane/status ({status})")
        return json.loads(raw)

    def post_payment(self) -> tuple[int, dict, float]:
        body = {"amount": 1999, "currency": "usd", "customer_id": f"cus_cost_{uuid.uuid4().hex[:8]}",
                "payment_method_id": self.payment_method, "order_id": f"cost-{uuid.uuid4().hex[:12]}"}
        started = time.perf_counter()
        status, raw = _request(f"{self.outputs['api_url']}/payments", method="POST", body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json", "x-api-key": self.outputs["api_key"],
                                        "Idempotency-Key": uuid.uuid4().hex})
        seconds = time.perf_counter() - started
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = {"raw": raw[:200].decode("utf-8", "replace")}
        return status, answer, seconds

    def get_payment(self, transaction_id: str) -> dict:
        status, raw = _request(f"{self.outputs['api_url']}/payments/{transaction_id}",
                               headers={"x-api-key": self.outputs["api_key"]})
        if status != 200:
            raise RuntimeError(f"GET /payments/{transaction_id} answered {status}")
        return json.loads(raw)

    def projections(self, transaction_ids: list[str]) -> dict[str, dict]:
        ddb, table = self.client("dynamodb"), self.outputs["table_names"]["transactions"]
        found: dict[str, dict] = {}
        for start in range(0, len(transaction_ids), 100):
            keys = [{"pk": {"S": f"TXN#{tid}"}, "sk": {"S": "PROJECTION"}} for tid in transaction_ids[start:start + 100]]
            request: dict | None = {table: {"Keys": keys, "ConsistentRead": True,
                                            "ProjectionExpression": "transaction_id, #s, risk_score",
                                            "ExpressionAttributeNames": {"#s": "status"}}}
            while request:
                page = ddb.batch_get_item(RequestItems=request)
                for item in page["Responses"].get(table, []):
                    found[item["transaction_id"]["S"]] = item
                request = page.get("UnprocessedKeys") or None
        return found


def send_payments(stack: CostStack, count: int, clients: int) -> list[dict]:
    def one(_: int) -> dict:
        status, answer, seconds = stack.post_payment()
        if status != 201 or answer.get("status") != "succeeded":
            raise RuntimeError(f"POST /payments answered {status} {answer}: expected 201 succeeded with {SUCCEEDING_CARD}")
        return {"transaction_id": answer["transaction_id"], "seconds": seconds}

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(count)))


def warm_up(stack: CostStack, count: int, clients: int, attempts: int = 10) -> list[dict]:
    """`count` payments through, each retried (new key) while the API answers 5xx; the last error otherwise."""
    def one(_: int) -> dict:
        for _attempt in range(attempts):
            status, answer, seconds = stack.post_payment()
            if status == 201:
                return {"transaction_id": answer["transaction_id"], "seconds": seconds}
            if status < 500:
                break
            time.sleep(2)
        raise RuntimeError(f"warm-up: POST /payments answered {status} {answer}")

    first = one(0)  # one at a time first: the function's first worker starts alone
    with ThreadPoolExecutor(clients) as pool:
        return [first, *pool.map(one, range(count - 1))]


class Lives:
    """What the bench watches to know a batch's payments have lived their whole lives: the projections, the
    webhooks stored, the process-payment queue drained, and each payment's notification received by an SQS
    subscriber of payment-notifications (as the cost model assumes one). Counted by outcome, not by the
    functions' requests, since those are made per batch."""

    def __init__(self, stack: CostStack):
        from localdev.bench_webhooks import NotificationInbox

        self.stack = stack
        self.inbox = NotificationInbox(stack)
        self.notified: collections.Counter[str] = collections.Counter()

    def close(self) -> None:
        self.inbox.close()

    def _queue_drained(self, queue: str) -> bool:
        attributes = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.outputs["queue_urls"][queue],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return not any(int(value) for value in attributes.values())

    def wait(self, transaction_ids: list[str], timeout: float) -> None:
        names = self.stack.outputs["function_names"]
        wanted = set(transaction_ids)
        deadline = time.monotonic() + timeout
        while True:
            for _, body in self.inbox.poll():
                if body.get("event_type") == "payment.succeeded" and body.get("transaction_id") in wanted:
                    self.notified[body["transaction_id"]] += 1
            projections = self.stack.projections(transaction_ids)
            pending = [tid for tid in transaction_ids
                       if projections.get(tid, {}).get("status", {}).get("S") != "succeeded"
                       or "N" not in projections.get(tid, {}).get("risk_score", {})]
            stored = self.stack.requests(by_app=True).get(names["stripe_webhook"], {}).get("dynamodb.PutItem", 0)
            short = {what: missing for what, missing in (
                ("webhooks stored", max(0, len(transaction_ids) - stored)),
                ("notifications received", len(wanted - self.notified.keys()))) if missing}
            if not short and not self._queue_drained("process-payment"):
                short["webhooks processed"] = "the process-payment queue still holds messages"
            if not pending and not short:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"after {timeout:.0f} s: {len(pending)} of {len(transaction_ids)} payments not "
                                   f"succeeded and scored; short: {short or 'none'}")
            time.sleep(0.5)

    def notifications(self, transaction_ids: list[str]) -> dict[str, int]:
        """Notifications received for these payments (payment.succeeded), and duplicates among them."""
        for _, body in self.inbox.poll(wait_seconds=0):  # any still on their way after settling
            if body.get("event_type") == "payment.succeeded" and body.get("transaction_id") in set(transaction_ids):
                self.notified[body["transaction_id"]] += 1
        counts = [self.notified[tid] for tid in transaction_ids]
        return {"received": sum(counts), "duplicated": sum(n - 1 for n in counts if n > 1),
                "missing": sum(1 for n in counts if n == 0)}


def settle(stack: CostStack, timeout: float, quiet_seconds: float = 4) -> None:
    """Until the functions' requests stop changing for a few seconds (all processing done)."""
    deadline = time.monotonic() + timeout
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        current = functions_only(stack.requests(by_app=True))
        if current != last:
            last, quiet_since = current, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the stack was still busy after {timeout:.0f} s")


def log_offsets(logs_dir: Path, functions: list[str]) -> dict[str, int]:
    return {fn: (logs_dir / f"{fn}.log").stat().st_size if (logs_dir / f"{fn}.log").exists() else 0 for fn in functions}


def log_since(logs_dir: Path, function: str, offset: int) -> str:
    path = logs_dir / f"{function}.log"
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")


def mapping_records(status: dict) -> dict[str, dict]:
    return {m["uuid"]: m for m in status.get("mappings", [])}


def kinesis_records(stack: CostStack, transaction_ids: set[str]) -> list[bytes]:
    """The fraud stream's records of these payments (the data of each)."""
    kinesis, stream = stack.client("kinesis"), stack.outputs["stream_name"]
    found = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            for record in page["Records"]:
                try:
                    data = json.loads(record["Data"])
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("transaction_id") in transaction_ids:
                    found.append(record["Data"] + record["PartitionKey"].encode())
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return found


def relayed_bytes(stack: CostStack, transaction_ids: set[str], sample: list[str]) -> dict[str, float]:
    """Sizes of what the relay publishes, per payment: the events of a sample of payments (one Query each)
    and the webhooks stored for all of them (one filtered Scan of the inbox items)."""
    from localdev.emulator.extensions import item_size

    ddb, table = stack.client("dynamodb"), stack.outputs["table_names"]["transactions"]
    event_bytes, stored_bytes = [], []
    for tid in sample:
        items = ddb.query(TableName=table, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": {"S": f"TXN#{tid}"}})["Items"]
        event_bytes.append(sum(len(json.dumps(i.get("detail", {}))) for i in items if i.get("item_type", {}).get("S") == "event"))
        stored_bytes.append(sum(item_size(i) for i in items))
    inbox_bytes, inbox_items, start = 0, 0, None
    while True:
        page = ddb.scan(TableName=table, FilterExpression="item_type = :t",
                        ExpressionAttributeValues={":t": {"S": "stripe_event"}}, **({"ExclusiveStartKey": start} if start else {}))
        for item in page["Items"]:
            if item.get("transaction_id", {}).get("S") in transaction_ids:
                inbox_items += 1
                inbox_bytes += item_size(item)
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    payments = len(transaction_ids)
    return {"event_detail_bytes": statistics.mean(event_bytes), "inbox_bytes": inbox_bytes / payments,
            "inbox_items": inbox_items / payments, "transactions_partition_bytes": statistics.mean(stored_bytes)}


def function_configuration(stack: CostStack, functions: list[str]) -> dict[str, dict]:
    lam = stack.client("lambda")
    configs = {}
    for name in functions:
        config = lam.get_function_configuration(FunctionName=name)
        configs[name] = {"memory_mb": config["MemorySize"], "architectures": config.get("Architectures", ["x86_64"])}
    return configs


def stripe_api_calls(access_log: str) -> int:
    """Stripe API requests in localstripe's access log lines (aiohttp's `"POST /v1/... HTTP/1.1" 200`)."""
    return len(STRIPE_API_LINE.findall(access_log))


def sequential_round_trips(stack: CostStack, count: int) -> dict[str, Any]:
    """AWS requests initiate_payment makes for one POST /payments at a time on a warm function, and the Stripe
    API requests localstripe served meanwhile (its access log)."""
    app = stack.outputs["function_names"]["initiate_payment"]
    stripe_log = Path(stack.outputs["logs_dir"]) / "stripe.log"
    samples, operations, stripe = [], [], []
    for _ in range(count):
        before = stack.requests(by_app=True).get(app, {})
        offset = stripe_log.stat().st_size if stripe_log.exists() else 0
        status, answer, _ = stack.post_payment()
        if status != 201:
            raise RuntimeError(f"POST /payments answered {status} {answer}")
        after = stack.requests(by_app=True).get(app, {})
        delta = {op: n - before.get(op, 0) for op, n in after.items() if n - before.get(op, 0)}
        samples.append(sum(delta.values()))
        operations.append(delta)
        if stripe_log.exists():
            with stripe_log.open("rb") as handle:
                handle.seek(offset)
                stripe.append(stripe_api_calls(handle.read().decode("utf-8", "replace")))
    typical = next(ops for ops, n in zip(operations, samples) if n == statistics.median_low(samples))
    return {"median": median_int(samples), "samples": samples, "typical_operations": dict(sorted(typical.items())),
            "stripe_calls_median": median_int(stripe) if stripe else None, "stripe_calls_samples": stripe}


# -- the measurement ----------------------------------------------------------------------------------
def measure(outputs: dict, payments: int, clients: int, sequential: int, idle_seconds: float,
            timeout: float) -> dict[str, Any]:
    stack = CostStack(outputs)

    # Warm-up: every function's workers started, keys and configuration cached, as in steady traffic. On a
    # loaded machine a first worker can miss Lambda's 10 s init limit (502): those attempts are retried.
    stack.reset()
    lives = Lives(stack)
    try:
        return _measure(stack, lives, payments, clients, sequential, idle_seconds, timeout)
    finally:
        lives.close()


def _measure(stack: CostStack, lives: Lives, payments: int, clients: int, sequential: int, idle_seconds: float,
             timeout: float) -> dict[str, Any]:
    outputs = stack.outputs
    names = outputs["function_names"]
    functions = sorted(names.values())
    logs_dir = Path(outputs["logs_dir"])
    warm = warm_up(stack, 2 * clients, clients)
    try:
        lives.wait([w["transaction_id"] for w in warm], min(timeout, 120))
    except RuntimeError as error:  # a warm-up webhook lost to a failed cold start is not retried by localstripe
        print(f"bench_cost: warm-up incomplete, measuring anyway: {error}", file=sys.stderr)
    settle(stack, timeout)

    # The data plane's polling with nothing to do.
    stack.reset()
    time.sleep(idle_seconds)
    idle = stack.requests()
    idle_clients = functions_only(stack.requests(by_app=True))

    # The batch.
    status_before = mapping_records(stack.dataplane_status())
    offsets = log_offsets(logs_dir, functions)
    stack.reset()
    started = time.monotonic()
    sent = send_payments(stack, payments, clients)
    ids = [s["transaction_id"] for s in sent]
    lives.wait(ids, timeout)
    settle(stack, timeout)
    batch_seconds = time.monotonic() - started
    counts, by_app = stack.requests(), stack.requests(by_app=True)
    units_by_app = stack.requests(by_app=True, units=True)
    status_after = mapping_records(stack.dataplane_status())
    logs = {fn: log_since(logs_dir, fn, offsets[fn]) for fn in functions}

    # Checks and sizes, after the counts were read (these calls are the bench's, not the payments').
    for tid in ids:
        events = [e["type"] for e in stack.get_payment(tid)["events"]]
        for expected in ("payment.created", "payment.succeeded", "fraud.scored"):
            if expected not in events:
                raise RuntimeError(f"payment {tid} has no {expected} event: {events}")
    records = kinesis_records(stack, set(ids))
    sizes = relayed_bytes(stack, set(ids), ids[:20])
    configs = function_configuration(stack, functions)
    fixed = fixed_resources(stack)
    notifications = lives.notifications(ids)
    round_trips = sequential_round_trips(stack, sequential)

    return analyse(outputs, payments, clients, batch_seconds, idle, idle_seconds, idle_clients, counts, by_app,
                   units_by_app, status_before, status_after, logs, configs, records, sizes, fixed, round_trips, sent,
                   notifications)


def fixed_resources(stack: CostStack) -> dict[str, int]:
    """What the deployment holds that is billed by the month (as Terraform made it in the emulator)."""
    alarms = sum(len(page["MetricAlarms"]) + len(page.get("CompositeAlarms", []))
                 for page in stack.client("cloudwatch").get_paginator("describe_alarms").paginate())
    secrets = sum(len(page["SecretList"]) for page in stack.client("secretsmanager").get_paginator("list_secrets").paginate())
    return {"alarms": alarms, "secrets": secrets}


def analyse(outputs: dict, payments: int, clients: int, batch_seconds: float, idle: dict, idle_seconds: float,
            idle_clients: dict, counts: dict, by_app: dict, units_by_app: dict, status_before: dict,
            status_after: dict, logs: dict[str, str], configs: dict[str, dict], records: list[bytes],
            sizes: dict[str, float], fixed: dict[str, int], round_trips: dict, sent: list[dict],
            notifications: dict[str, int] | None = None) -> dict[str, Any]:
    names = outputs["function_names"]
    function_ops = functions_only(by_app)
    all_function_ops = sum_ops(function_ops)
    unattributed = {op: n - all_function_ops.get(op, 0) - by_app.get(BENCH_APP, {}).get(op, 0)
                    for op, n in counts.get("clients", {}).items()}
    unattributed = {op: n for op, n in unattributed.items() if n}
    pollers, housekeeping = split_dataplane(counts.get("dataplane", {}))
    idle_pollers, _ = split_dataplane(idle.get("dataplane", {}))
    pollers_beyond_idle = beyond_idle(pollers, idle_pollers, idle_seconds, batch_seconds)

    # Lambda: invocations and GB-seconds from the REPORT lines, memory as configured.
    lambda_by_function = {}
    for fn, text in logs.items():
        reports = parse_reports(text)
        if not reports:
            continue
        billed_ms = sum(b for b, _ in reports)
        init_ms = sum(i for _, i in reports)
        memory_gb = configs[fn]["memory_mb"] / 1024
        lambda_by_function[fn] = {
            "invocations_per_payment": round(len(reports) / payments, 3),
            "cold_starts": sum(1 for _, i in reports if i),
            "billed_ms_per_invocation": round(billed_ms / len(reports), 1),
            "init_ms_total": round(init_ms, 1),
            "memory_mb": configs[fn]["memory_mb"],
            "gb_seconds_per_payment": round((billed_ms + init_ms) / 1000 * memory_gb / payments, 6),
            "log_bytes_per_payment": round(len(text.encode()) / payments),
        }
    invocations = sum(len(parse_reports(t)) for t in logs.values()) / payments
    gb_seconds = sum(f["gb_seconds_per_payment"] for f in lambda_by_function.values())
    log_lines = sum(t.count("\n") for t in logs.values())
    log_bytes = (sum(len(t.encode()) for t in logs.values()) + 26 * log_lines) / payments

    # Deliveries by the event source mappings during the batch (records handed to the functions).
    delivered = {}
    for uuid_, after in status_after.items():
        before = status_before.get(uuid_, {})
        fn = after["function_arn"].rsplit(":", 1)[-1]
        delivered[f"{after['kind']}:{fn}"] = {
            "records": after.get("records", 0) - before.get("records", 0),
            "filtered": after.get("filtered", 0) - before.get("filtered", 0)}
    sqs_messages = sum(d["records"] + d["filtered"] for k, d in delivered.items() if k.startswith("sqs:"))
    relay_key = f"dynamodb:{names['outbox_relay']}"
    bus_entries = delivered.get(relay_key, {}).get("records", 0)

    units = sum_units(functions_only(units_by_app))
    count = lambda app, op: function_ops.get(names[app], {}).get(op, 0) if app in names else 0  # noqa: E731
    api_requests = (len(parse_reports(logs.get(names["initiate_payment"], ""))) +
                    len(parse_reports(logs.get(names["stripe_webhook"], "")))) / payments
    kinesis_bytes = [len(r) for r in records]
    cold_starts = sum(f["cold_starts"] for f in lambda_by_function.values())
    emf = set().union(*(emf_metrics(t) for t in logs.values()))
    sqs_mappings = sum(1 for m in status_after.values() if m.get("kind") == "sqs")

    sqs_requests = (sqs_messages + sum(n for op, n in all_function_ops.items() if op.startswith("sqs."))
                    + sum(n for op, n in pollers_beyond_idle.items() if op in SQS_BILLED_POLLER_OPERATIONS)) / payments
    measured = {
        "lambda_invocations": invocations,
        "lambda_gb_seconds": gb_seconds,
        "api_requests": api_requests,
        "dynamodb_write_units": units["write_units"] / payments,
        "dynamodb_read_units": units["read_units"] / payments,
        "dynamodb_stream_billed_reads": 0.0,
        "eventbridge_events_64kb": bus_entries / payments,
        "eventbridge_archive_bytes": sizes["event_detail_bytes"] + sizes["inbox_bytes"],
        "sqs_requests_64kb": sqs_requests,
        "kinesis_ingested_bytes_billed": sum(math.ceil(b / 1024) * 1024 for b in kinesis_bytes) / payments,
        "kinesis_retrieved_bytes": sum(kinesis_bytes) / payments,
        "kinesis_put_payload_units": sum(math.ceil(b / KINESIS_PUT_PAYLOAD_UNIT_BYTES) for b in kinesis_bytes) / payments,
        "sns_publishes_64kb": sum(n for op, n in all_function_ops.items() if op in ("sns.Publish",)) / payments
                              + sum(n for op, n in all_function_ops.items() if op == "sns.PublishBatch") / payments,
        # Messages, not requests (PublishBatch carries up to 10): what the SQS subscriber received.
        "sns_sqs_deliveries": (notifications or {}).get("received", count("notifier", "sns.Publish")) / payments,
        # Per-call KMS use: Lambda decrypting each new environment's variables, Secrets Manager decrypting each
        # secret read; the services' cached data keys are a fixed monthly figure.
        "kms_requests": (cold_starts + sum(n for op, n in all_function_ops.items() if op.startswith("secretsmanager.")))
                        / payments,
        "secrets_manager_calls": sum(n for op, n in all_function_ops.items() if op.startswith("secretsmanager.")) / payments,
        "ssm_get_parameter_calls": sum(n for op, n in all_function_ops.items() if op.startswith("ssm.")) / payments,
        "cloudwatch_put_metric_data_calls": all_function_ops.get("monitoring.PutMetricData", 0) / payments,
        "log_bytes": log_bytes + api_requests * ACCESS_LOG_BYTES,
        "xray_traces": invocations * XRAY_SAMPLED_FRACTION,
        "kms_keys": 1, "secrets": fixed["secrets"], "alarms": fixed["alarms"], "custom_metrics": len(emf),
        "waf_rules": 3, "sqs_mappings": sqs_mappings,
    }
    return {
        "payments": payments, "clients": clients, "batch_seconds": round(batch_seconds, 1),
        "function_ops": function_ops, "all_function_ops": all_function_ops, "unattributed": unattributed,
        "pollers": pollers, "pollers_beyond_idle": pollers_beyond_idle, "housekeeping": housekeeping,
        "idle": {"seconds": idle_seconds, "dataplane": idle.get("dataplane", {}), "functions": idle_clients},
        "units_by_app": functions_only(units_by_app), "units": units,
        "lambda_by_function": lambda_by_function, "delivered": delivered, "measured": measured,
        "kinesis_records": len(records), "sizes": sizes, "round_trips": round_trips,
        "post_ms_p50": round(statistics.median(s["seconds"] for s in sent) * 1000, 1),
        "configs": configs, "notifications": notifications,
    }


def report(result: dict[str, Any], prices: dict[str, Any], monthly_payments: int,
           stream: StreamCapacity = StreamCapacity()) -> dict[str, Any]:
    payments = result["payments"]
    per_function = {app: round(sum(ops.values()) / payments, 2) for app, ops in sorted(result["function_ops"].items())}
    total = sum(result["all_function_ops"].values()) / payments
    model = cost_model(result["measured"], prices, monthly_payments, "arm64", stream)
    model_x86 = cost_model(result["measured"], prices, monthly_payments, "x86_64", stream)
    poller_total = sum(result["pollers"].values()) / payments
    rt = result["round_trips"]
    return {
        "aws_requests_per_payment": round(total, 2),
        "aws_requests_per_payment_by_operation": per(result["all_function_ops"], payments),
        "aws_requests_per_payment_by_function": per_function,
        "aws_requests_per_payment_by_function_and_operation": {
            app: per(ops, payments) for app, ops in sorted(result["function_ops"].items())},
        "aws_requests_unattributed": result["unattributed"],
        "poller_requests_per_payment": round(poller_total, 2),
        "poller_requests_per_payment_by_operation": per(result["pollers"], payments),
        "poller_requests_per_payment_beyond_idle_by_operation": per(result["pollers_beyond_idle"], payments),
        "poller_idle_requests_per_second_by_operation": {
            op: round(n / result["idle"]["seconds"], 2) for op, n in sorted(split_dataplane(result["idle"]["dataplane"])[0].items())},
        "dataplane_housekeeping_requests_in_batch": result["housekeeping"],
        "sequential_round_trips_initiate": rt["median"],
        "sequential_round_trips_initiate_samples": rt["samples"],
        "sequential_round_trips_initiate_operations": rt["typical_operations"],
        "stripe_calls_before_answer": rt["stripe_calls_median"],
        "stripe_calls_before_answer_samples": rt["stripe_calls_samples"],
        "dynamodb_capacity_units_per_payment": {
            "write_units": round(result["units"]["write_units"] / payments, 2),
            "read_units": round(result["units"]["read_units"] / payments, 2),
            "by_operation": {op: {kind: round(n / payments, 2) for kind, n in units.items()}
                             for op, units in sorted(sum_units_by_operation(result["units_by_app"]).items())},
            "by_function": {app: {"write_units": round(sum(u["write_units"] for u in ops.values()) / payments, 2),
                                  "read_units": round(sum(u["read_units"] for u in ops.values()) / payments, 2)}
                            for app, ops in sorted(result["units_by_app"].items())},
            "how": "estimated by the emulator per request (GET /_localdev/requests?units=capacity): writes 1 WRU per "
                   "started KB of the larger of the item's stored sizes before and after (x2 in TransactWriteItems), "
                   "plus GSI writes of the projected item (by-customer and by-status, projection ALL; a changed index "
                   "key is a delete and a put); reads 0.5 RRU (1 if consistent, 2 transactional or ConditionCheck) "
                   "per started 4 KB of the whole stored item; DynamoDB's item-size rules (names + values)"},
        "lambda": {
            "invocations_per_payment": round(result["measured"]["lambda_invocations"], 3),
            "gb_seconds_per_payment": round(result["measured"]["lambda_gb_seconds"], 6),
            "by_function": result["lambda_by_function"],
            "how": "REPORT lines the data plane wrote into each function's log during the batch (Billed Duration, plus "
                   "Init Duration of cold starts: billed since August 2025) x MemorySize from GetFunctionConfiguration; "
                   "durations measured on this machine (x86_64, shared with the emulator), not on Lambda"},
        "deliveries_in_batch": result["delivered"],
        # payment.succeeded notifications an SQS subscriber of payment-notifications received for the batch.
        "notifications_in_batch": result.get("notifications"),
        "measured_per_payment": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result["measured"].items()},
        "cost_per_payment_usd": round(model["total"], 8),
        "cost_per_payment_variable_usd": round(model["variable_total"], 8),
        "cost_per_payment_fixed_amortized_usd": round(model["fixed_per_payment"], 8),
        "cost_per_payment_usd_if_x86_64": round(model_x86["total"], 8),
        "cost_breakdown_usd": {k: round(v, 9) for k, v in sorted(model["variable"].items(), key=lambda kv: -kv[1])},
        "fixed_monthly_usd": {k: round(v, 2) for k, v in model["fixed_monthly_usd"].items()},
        "monthly_payments_for_fixed_costs": monthly_payments,
        "reference_usd": REFERENCE_USD, "goal_usd": GOAL_USD,
        "reference_aws_requests": REFERENCE_REQUESTS, "goal_aws_requests": GOAL_REQUESTS,
        "goal_sequential_round_trips": GOAL_ROUND_TRIPS,
        "prices_as_of": prices["as_of"], "prices_region": prices["region"],
        "kinesis_fraud_stream": stream.describe(),
        "assumptions": ASSUMPTIONS + [kinesis_assumption(stream)] + [
            f"fixed monthly charges amortized over {monthly_payments:,} payments a month",
            f"API access logs: {ACCESS_LOG_BYTES} bytes per request (the stage's 17-field JSON format)"],
        "round_trip_analysis": ROUND_TRIP_ANALYSIS,
        "how": HOW,
        "batch": {"payments": payments, "clients": result["clients"], "seconds": result["batch_seconds"],
                  "post_ms_p50": result["post_ms_p50"], "kinesis_records": result["kinesis_records"],
                  "sizes_bytes_per_payment": {k: round(v, 1) for k, v in result["sizes"].items()}},
        "payments": payments,
    }


HOW = {
    "aws_requests_per_payment": "AWS API requests the platform's functions made (their own code's calls, counted at "
                                "the emulator per user-agent app id) during a batch of payments, from POST /payments to "
                                "the notification, divided by the payments; the bench's own calls excluded. Not included: "
                                "the event source mappings' polling (poller_requests_per_payment) and the local alarm "
                                "evaluator's requests (dataplane_housekeeping_requests_in_batch). process_payment, the "
                                "notifier and the fraud scorer make theirs per batch (terraform: "
                                "consumer_batching_window_seconds, 1 s) and the relay per stream batch, so their share "
                                "depends on how many payments arrive per window: measured at the batch's own rate "
                                "(batch.payments / batch.seconds); a payment alone in its window pays each of those "
                                "per-batch requests in full",
    "poller_requests_per_payment": "requests the local data plane made as Lambda's event source mappings during the "
                                   "batch (SQS receive/delete, DynamoDB Streams and Kinesis reads), divided by the "
                                   "payments. In AWS Lambda's pollers make them: SQS ones are billed SQS requests, "
                                   "DynamoDB Streams reads by Lambda triggers and Kinesis GetRecords by standard "
                                   "consumers are not billed per request. Their number follows the local pollers' "
                                   "intervals, not AWS's: see the idle rate and the figures beyond idle",
    "sequential_round_trips_initiate": "AWS requests initiate_payment made for one POST /payments at a time on a warm "
                                       "function (its per-app counter before and after each), median; every one is "
                                       "sequential: the handler issues them in turn (paystream.payments: no "
                                       "concurrent calls)",
    "stripe_calls_before_answer": "Stripe API requests localstripe's access log shows during each of those POSTs, median",
    "cost_per_payment_usd": "variable cost per payment (prices x measured figures, arm64 Lambda) plus the fixed "
                            "monthly charges amortized over monthly_payments_for_fixed_costs",
}

ASSUMPTIONS = [
    "list prices, us-east-1, no free tier, first pricing tier (bench/aws-prices.json)",
    "Lambda priced for arm64 (terraform/environments/{dev,staging,prod} set lambda_architecture = arm64); "
    "durations measured locally on x86_64 under the emulator's load (AWS would likely be faster)",
    "every message is under 64 KB: one billed chunk per SQS request, SNS publish and EventBridge entry",
    "SQS requests = one SendMessage per message EventBridge delivered to a consumer queue + the functions' own SQS "
    "calls + the pollers' receives/deletes beyond their idle rate; idle long polling is a fixed monthly figure "
    "(5 pollers x one 20 s long poll per mapping)",
    "SNS payment-notifications delivered to one SQS subscriber (free); other protocols cost more per delivery",
    "DynamoDB Streams read by Lambda triggers only (free); storage and PITR (per GB-month) not included",
    f"X-Ray active tracing: {XRAY_SAMPLED_FRACTION:.0%} of invocations recorded as traces (default sampling rule)",
    "KMS: one Decrypt per new Lambda environment (environment variables) and per Secrets Manager read; the "
    "services' cached data keys (DynamoDB, SQS, SNS, Kinesis, EventBridge) a fixed ~12 calls/hour per function "
    "and resource",
    "CloudWatch Logs: the functions' log bytes during the batch (their own lines, START/END/REPORT and EMF) + 26 "
    "bytes per line + the API access log line; custom metrics from EMF (distinct metric and dimensions) fixed monthly",
    "WAF (prod): web ACL with a rate rule and two managed rule groups, priced per request and monthly",
]



def kinesis_assumption(stream: StreamCapacity) -> str:
    if stream.mode == "PROVISIONED":
        return (f"Kinesis fraud stream PROVISIONED with {stream.shards} shard(s) (terraform/environments/prod/"
                "terraform.tfvars): each record's PUT billed in 25 KB payload units, reads by one standard consumer "
                "(the scorer) free; the shard-hours are fixed monthly")
    return ("Kinesis fraud stream ON_DEMAND (terraform/environments/prod/terraform.tfvars): data in billed per record "
            "rounded up to 1 KB, data retrieved by one standard consumer (the scorer) per byte; the stream-hour "
            "charge is fixed monthly")


ROUND_TRIP_ANALYSIS = {
    "where_they_go": [
        "1. dynamodb.TransactWriteItems (transactions): payment.created event + projection + the request's "
        "idempotency record (sk IDEMPOTENCY, in progress, body hash, deadline); a repeated key cancels it",
        "   -- Stripe: one PaymentIntent create with confirm=true (idempotency key from the transaction id)",
        "2. dynamodb.TransactWriteItems (transactions): payment.succeeded/processing/... + projection + PaymentIntent "
        "link + the idempotency record completed with the answer",
        "(+ dynamodb.GetItem of the circuit breaker state when its 2 s cache (BREAKER_CLOSED_CACHE_SECONDS) expired)",
        "A repeated key: the cancelled first transaction, then one GetItem of the record -> 200 replay, 409 in "
        "flight, 422 other body (docs/payments-core.md, \"Idempotency of POST /payments\")",
    ],
    "before": "4 round trips until the idempotency record moved into the event store's transactions: Powertools "
              "idempotency's PutItem (INPROGRESS) and UpdateItem (COMPLETED) on the idempotency table around the "
              "same two transactions",
    "left": [
        "The breaker read is on the hot path whenever its 2 s closed-state cache expired (a third round trip in "
        "about one request in ten here): a longer cache or a refresh after answering would remove it.",
    ],
}


def _commit() -> str:
    from localdev.bench_rebuild import _commit as commit

    return commit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                        help="the running stack's outputs.json (default .local/outputs.json)")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--payments", type=int, default=200, help="payments in the measured batch (default 200)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients sending them (default 4)")
    parser.add_argument("--sequential", type=int, default=10, help="single POSTs for the round trips (default 10)")
    parser.add_argument("--idle-seconds", type=float, default=15, help="idle window for the pollers' rate (default 15)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the batch's lives (default 600)")
    parser.add_argument("--monthly-payments", type=int, default=1_000_000,
                        help="payments a month over which fixed monthly charges are amortized (default 1,000,000)")
    parser.add_argument("--prices", type=Path, default=DEFAULT_PRICES)
    parser.add_argument("--tfvars", type=Path, default=PRICED_TFVARS,
                        help="the environment whose Kinesis stream capacity is priced (default prod's terraform.tfvars)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "cost.json")
    args = parser.parse_args(argv)
    if args.payments < 1 or args.clients < 1 or args.sequential < 1 or args.monthly_payments < 1:
        print("bench_cost: --payments, --clients, --sequential and --monthly-payments must be at least 1", file=sys.stderr)
        return 1
    try:
        prices = load_prices(args.prices)
        stream = stream_capacity(args.tfvars)
        with bench_stack("bench_cost", args.outputs, args.own_stack) as outputs_path:
            outputs = json.loads(outputs_path.read_text())
            measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            result = measure(outputs, args.payments, args.clients, args.sequential, args.idle_seconds, args.timeout)
    except (NoStack, PriceError, RuntimeError) as error:
        print(f"bench_cost: {error}" if not str(error).startswith("bench_cost") else str(error), file=sys.stderr)
        return 1
    results = {"machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
               "commit": _commit(), "measured_at": measured_at, **report(result, prices, args.monthly_payments, stream)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
