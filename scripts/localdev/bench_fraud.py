"""`make bench` (fraud part): the fraud scorer measured on a running local stack (issue 5, "Measure").

Writes bench/fraud.json with:
- `batch_100`: records scored per second by ONE invocation of the deployed `fraud_scorer` given a Kinesis
  batch of 100 `payment.created` records (median over several batches, each of fresh payments, after a
  warm-up batch). The payments are stored as initiate_payment stores them (the core's EventStore:
  `payment.created` + projection, without the Stripe call), with a mix of new, repeated and returning
  customers, devices and shared IP addresses; their records are the ones the outbox relay put on the fraud
  stream, read back from the stream and handed to the function through the Lambda Invoke API as the event
  Lambda would build (the fraud stream mapping is disabled meanwhile, so the platform does not score them
  first, and enabled again afterwards). records/s = records scored / the invocation's wall time (100 /
  wall time, unless the invocation hit the function's timeout: then the records it scored before, and no
  further batch). Beside it, what one TransactWriteItems costs the emulator itself at the tables' size
  then (moto copies each table a transaction touches): the scorer made one per record when fraud.json was
  measured, and makes one per batch of up to 100 actions since (docs/fraud.md).
- `dynamodb_requests_per_scored_record`: the DynamoDB requests the emulator served to the functions
  (caller `clients`) while those invocations ran — BatchGetItem + TransactWriteItems, the scorer's only
  DynamoDB operations — divided by the records the invocations scored (payments whose projection got its
  `risk_score`). The issue's goal is <= 1.2.
- `post_to_fraud_scored_ms` (`p50`, `p95`, `n`): from sending `POST /payments` to the payment's
  `fraud.scored` arriving on an SQS queue the bench subscribes to the bus `payments` (a rule on
  detail-type `fraud.scored`, removed afterwards), one payment at a time through the whole pipeline
  (initiate_payment → transactions stream → outbox_relay → Kinesis → fraud_scorer → outbox_relay → bus).

Usage: `python -m localdev.bench_fraud [--state-dir DIR]` against the stack `make local-up` started
(default `.local`; the embedded backend: it needs the emulator's `/_localdev/*`), or `--own-stack` to
start one on free ports and stop it afterwards.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from localdev.bench_stack import NoStack, bench_stack

from localdev.bench_webhooks import Stack, _request, percentiles
from localdev.stack import PROJECT_ROOT

BATCH_SIZE = 100
SUCCEEDING_CARD = "4242424242424242"
SCORER_DYNAMODB_OPERATIONS = ("dynamodb.BatchGetItem", "dynamodb.TransactWriteItems")
COUNTRIES = ("DE", "FR", "NL", "US", "GB")
IP_POOL = 60  # addresses shared by every batch: some customers pay from the same network (office, NAT)
WARM_UP_RECORDS = 20
# Above this, the emulator's TransactWriteItems still copies whole tables (moto's rollback; a few ms when it
# does not): further batches are measured only while they stay cheap for the machine.
COPYING_EMULATOR_MS = 25.0


@dataclass(frozen=True)
class PlannedPayment:
    customer_id: str
    device_id: str
    ip_address: str
    country: str
    amount: int
    currency: str


def batch_plan(rng: random.Random, tag: str, returning: list[PlannedPayment]) -> list[PlannedPayment]:
    """100 payments as a busy minute brings them: 20 customers seen in earlier batches (their profiles
    exist) each paying again from their usual device and country, 50 new customers paying once, and 10
    new customers paying 3 times each; every payment has a device and an IP address, IPs from a shared
    pool. Repeated customers are spread through the batch, as on a real shard."""
    plan = [PlannedPayment(p.customer_id, p.device_id, f"192.0.2.{rng.randrange(IP_POOL) + 1}", p.country,
                           rng.randrange(500, 20_000), p.currency)
            for p in rng.sample(returning, min(20, len(returning)))]
    new_once = BATCH_SIZE - len(plan) - 30
    for index in range(new_once + 10):
        customer = f"cus_bench_{tag}_{index:03d}"
        currency = rng.choice(("eur", "usd"))
        country = rng.choice(COUNTRIES)
        for _ in range(1 if index < new_once else 3):
            plan.append(PlannedPayment(customer, f"device-{customer}", f"192.0.2.{rng.randrange(IP_POOL) + 1}",
                                       country, rng.randrange(500, 20_000), currency))
    rng.shuffle(plan)
    return plan


def warm_up_plan(rng: random.Random, tag: str) -> list[PlannedPayment]:
    return [PlannedPayment(f"cus_bench_{tag}_{index:03d}", f"device-cus_bench_{tag}_{index:03d}",
                           f"192.0.2.{rng.randrange(IP_POOL) + 1}", rng.choice(COUNTRIES), rng.randrange(500, 20_000),
                           rng.choice(("eur", "usd")))
            for index in range(WARM_UP_RECORDS)]


def kinesis_event(stream_records: list[tuple[str, dict]], stream_arn: str, region: str, role_arn: str) -> dict:
    """The event Lambda hands a Kinesis consumer, from GetRecords records `(shard_id, record)`."""
    def arrival(record: dict) -> float:
        at = record["ApproximateArrivalTimestamp"]
        return at.timestamp() if hasattr(at, "timestamp") else float(at)

    return {"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(record["Data"]).decode("ascii"),
            "approximateArrivalTimestamp": round(arrival(record), 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    } for shard_id, record in stream_records]}


class FraudStack(Stack):
    """The stack plus what the fraud bench needs: payments, the fraud stream, the scorer and its mapping."""

    def __init__(self, outputs: dict):
        super().__init__(outputs)
        import boto3
        from botocore.config import Config

        # One attempt: a retried Invoke would score the batch twice and blur the counts.
        self.lambda_client = boto3.client(
            "lambda", endpoint_url=outputs["aws_endpoint_url"], region_name=outputs["region"],
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=300))
        self.function = outputs["function_names"]["fraud_scorer"]
        self.stream_arn = self.client("kinesis").describe_stream_summary(
            StreamName=outputs["stream_name"])["StreamDescriptionSummary"]["StreamARN"]
        self.positions: dict[str, str] = {}  # shard id -> last sequence number read by the bench
        self.payment_method = self.stripe.v1.payment_methods.create(params={
            "type": "card", "card": {"number": SUCCEEDING_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}).id

    def post_payment(self, planned: PlannedPayment) -> str:
        body = {"amount": planned.amount, "currency": planned.currency, "customer_id": planned.customer_id,
                "payment_method_id": self.payment_method, "order_id": f"bench-{uuid.uuid4().hex[:12]}",
                "device_id": planned.device_id, "ip_address": planned.ip_address, "country": planned.country}
        status, raw = _request(f"{self.outputs['api_url']}/payments", method="POST", body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json", "x-api-key": self.outputs["api_key"],
                                        "Idempotency-Key": uuid.uuid4().hex})
        if status != 201:
            raise RuntimeError(f"POST /payments answered {status}: {raw[:300]!r}")
        return json.loads(raw)["transaction_id"]

    def store_payment(self, planned: PlannedPayment) -> str:
        """A new payment written as initiate_payment writes it (payment.created + projection, one transaction),
        without the Stripe call and what follows it: the scorer reads only these, and the bench keeps the
        transactions table small (the emulator's TransactWriteItems cost grows with the table)."""
        from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
        from paystream.models import PaymentRequest
        from paystream.states import apply, created_event
        from paystream.store import EventStore

        store = EventStore(DynamoDBTransactionsTable(self.client("dynamodb"), self.outputs["table_names"]["transactions"]))
        request = PaymentRequest(amount=planned.amount, currency=planned.currency, customer_id=planned.customer_id,
                                 payment_method_id="pm_bench_fraud", order_id=f"bench-{uuid.uuid4().hex[:12]}",
                                 device_id=planned.device_id, ip_address=planned.ip_address, country=planned.country)
        transaction_id = str(uuid.uuid4())
        first = created_event(transaction_id, request)
        store.create(apply(None, first), first)
        return transaction_id

    # -- the fraud stream mapping ------------------------------------------------------------------
    def scorer_mapping(self) -> dict:
        lam = self.client("lambda")
        # moto files a mapping under the FunctionName Terraform gave (the ARN): list all and pick ours.
        for page in lam.get_paginator("list_event_source_mappings").paginate():
            for mapping in page["EventSourceMappings"]:
                if mapping.get("EventSourceArn") == self.stream_arn:
                    return mapping
        raise RuntimeError(f"no event source mapping on {self.stream_arn}: is fraud_scorer deployed?")

    def set_mapping_enabled(self, enabled: bool) -> None:
        self.client("lambda").update_event_source_mapping(UUID=self.scorer_mapping()["UUID"], Enabled=enabled)
        # The data plane reads mappings when it (re)loads: make it apply the change now.
        status, raw = _request(f"{self.outputs['aws_endpoint_url']}/_localdev/dataplane")
        invoke_url = json.loads(raw).get("invoke_url") if status == 200 else None
        if not invoke_url:
            raise RuntimeError("the emulator names no data plane (GET /_localdev/dataplane): is the stack up?")
        status, raw = _request(f"{invoke_url}/_dataplane/reload", method="POST", body=b"", timeout=120)
        if status != 200:
            raise RuntimeError(f"data plane reload failed ({status}): {raw[:300]!r}")

    # -- the fraud stream --------------------------------------------------------------------------
    def stream_records(self, transaction_ids: set[str], timeout: float) -> list[tuple[str, dict]]:
        """The relay's records of these payments, `(shard id, record)` in stream order per shard."""
        kinesis = self.client("kinesis")
        found: dict[str, tuple[str, dict]] = {}
        deadline = time.monotonic() + timeout
        while True:
            for shard in kinesis.list_shards(StreamName=self.outputs["stream_name"])["Shards"]:
                shard_id = shard["ShardId"]
                after = self.positions.get(shard_id)
                iterator = kinesis.get_shard_iterator(
                    StreamName=self.outputs["stream_name"], ShardId=shard_id,
                    **({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after} if after
                       else {"ShardIteratorType": "TRIM_HORIZON"}))["ShardIterator"]
                while iterator:
                    page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
                    for record in page["Records"]:
                        self.positions[shard_id] = record["SequenceNumber"]
                        try:
                            data = json.loads(record["Data"])
                        except ValueError:
                            continue  # not a relay record (put by hand)
                        # Declines share the stream (`"event_type": "payment.failed"`): only the payment.created.
                        if isinstance(data, dict) and data.get("transaction_id") in transaction_ids and data.get(
                                "event_type") in (None, "payment.created"):
                            found[data["transaction_id"]] = (shard_id, record)
                    iterator = page.get("NextShardIterator") if page["Records"] else None
            if len(found) == len(transaction_ids):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(transaction_ids) - len(found)} of {len(transaction_ids)} payments never "
                                   f"reached the fraud stream within {timeout:.0f} s")
            time.sleep(0.5)
        # One shard after another, each in sequence order: a customer's records (one partition key) keep their order.
        return sorted(found.values(), key=lambda entry: (entry[0], int(entry[1]["SequenceNumber"])))

    def risk_scores(self, transaction_ids: list[str]) -> dict[str, int | None]:
        ddb, table = self.client("dynamodb"), self.outputs["table_names"]["transactions"]
        scores: dict[str, int | None] = {}
        for start in range(0, len(transaction_ids), 100):
            keys = [{"pk": {"S": f"TXN#{tid}"}, "sk": {"S": "PROJECTION"}} for tid in transaction_ids[start:start + 100]]
            request = {table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "transaction_id, risk_score"}}
            while request:
                page = ddb.batch_get_item(RequestItems=request)
                for item in page["Responses"].get(table, []):
                    score = item.get("risk_score", {})
                    scores[item["transaction_id"]["S"]] = int(score["N"]) if "N" in score else None
                request = page.get("UnprocessedKeys") or None
        return scores

    def emulator_transaction_ms(self, samples: int = 3) -> float:
        """Round trip of a TransactWriteItems over both tables that the emulator cancels (a failing
        ConditionCheck on each): the per-transaction cost of the emulator itself, leaving no trace."""
        from botocore.exceptions import ClientError

        ddb, names = self.client("dynamodb"), self.outputs["table_names"]
        items = [{"ConditionCheck": {"TableName": names["fraud_profiles"], "Key": {"pk": {"S": "BENCH#probe"}},
                                     "ConditionExpression": "attribute_exists(pk)"}},
                 {"ConditionCheck": {"TableName": names["transactions"],
                                     "Key": {"pk": {"S": "BENCH#probe"}, "sk": {"S": "PROBE"}},
                                     "ConditionExpression": "attribute_exists(pk)"}}]
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            try:
                ddb.transact_write_items(TransactItems=items)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    def table_items(self) -> int:
        ddb, table, count, start = self.client("dynamodb"), self.outputs["table_names"]["transactions"], 0, None
        while True:
            page = ddb.scan(TableName=table, Select="COUNT", **({"ExclusiveStartKey": start} if start else {}))
            count += page["Count"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return count

    def invoke_scorer(self, event: dict) -> tuple[float, dict, bool]:
        """(wall seconds, response, whether it timed out); any other function error raises."""
        payload = json.dumps(event).encode()
        started = time.perf_counter()
        response = self.lambda_client.invoke(FunctionName=self.function, Payload=payload)
        seconds = time.perf_counter() - started
        body = json.loads(response["Payload"].read() or b"{}")
        if response.get("FunctionError"):
            if body.get("errorType") == "Sandbox.Timedout":
                return seconds, body, True
            raise RuntimeError(f"fraud_scorer failed: {body}")
        return seconds, body, False


def settled(stack: Stack, timeout: float, quiet_seconds: float = 3) -> None:
    """Wait until the functions' AWS requests stop changing for a few seconds (all processing done)."""
    deadline = time.monotonic() + timeout
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        clients = stack.emulator_requests().get("clients", {})
        if clients != last:
            last, quiet_since = clients, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the stack was still busy after {timeout:.0f} s")


def measure_batches(stack: FraudStack, batches: int, seed: int) -> dict:
    rng = random.Random(seed)
    role_arn = stack.client("lambda").get_function_configuration(FunctionName=stack.function)["Role"]
    wall, scored_each, probes, table_items, counted = [], [], [], [], {}
    stopped_early = None
    stack.set_mapping_enabled(False)
    try:
        settled(stack, timeout=120)
        # Batch 0 (new customers paying once) warms the function; they come back in the measured batches.
        returning = warm_up_plan(rng, f"{seed}w{uuid.uuid4().hex[:4]}")
        for index in range(batches + 1):
            if len(probes) >= 1 and probes[-1] > COPYING_EMULATOR_MS:
                stopped_early = (f"after {len(probes)} of {batches} batches: one TransactWriteItems costs the emulator "
                                 f"{probes[-1]:.0f} ms (it copies the tables it touches, and keeps the copies), so "
                                 "each further batch would be slower and take more memory than the last")
                break
            plan = returning if index == 0 else batch_plan(rng, f"{seed}b{index}{uuid.uuid4().hex[:4]}", returning)
            transaction_ids = [stack.store_payment(planned) for planned in plan]
            records = stack.stream_records(set(transaction_ids), timeout=120)
            settled(stack, timeout=300)  # the relay is done: nothing else runs during the invocation
            event = kinesis_event(records, stack.stream_arn, stack.outputs["region"], role_arn)
            if index:
                probes.append(stack.emulator_transaction_ms())
                table_items.append(stack.table_items())
            stack.emulator_requests(reset=True)
            seconds, body, timed_out = stack.invoke_scorer(event)
            requests = stack.emulator_requests().get("clients", {})
            if body.get("batchItemFailures"):
                raise RuntimeError(f"fraud_scorer reported failures: {body['batchItemFailures'][:5]}")
            scores = stack.risk_scores(transaction_ids)
            scored = sum(1 for tid in transaction_ids if scores.get(tid) is not None)
            if index == 0 and timed_out:
                raise RuntimeError(f"the warm-up batch of {len(plan)} records timed out: {body}")
            if scored != len(transaction_ids) and not timed_out:
                raise RuntimeError(f"only {scored} of {len(transaction_ids)} payments got a risk score")
            if index == 0:
                continue
            # A timed-out invocation still scored (and wrote) the records it reached: it is measured by those.
            wall.append(seconds)
            scored_each.append(scored)
            for operation, count in requests.items():
                counted[operation] = counted.get(operation, 0) + count
            if timed_out:
                stopped_early = (f"batch {index} timed out: fraud_scorer's timeout ({body.get('errorMessage')}) "
                                 f"came after {scored} of {len(transaction_ids)} records")
                break
    finally:
        stack.set_mapping_enabled(True)
    scorer = {op: counted.get(op, 0) for op in SCORER_DYNAMODB_OPERATIONS}
    # The relay reacts to the scorer's fraud.scored inserts while the invocation runs: its requests
    # (UpdateItem marks, PutEvents) are in the window too and shown apart, not counted as the scorer's.
    others = {op: n for op, n in sorted(counted.items()) if op not in scorer and op != "lambda.Invoke"}
    scored_total = sum(scored_each)
    rates = [scored / seconds for scored, seconds in zip(scored_each, wall)]
    return {
        "batch_100": {
            "how": ("deployed fraud_scorer invoked through the Lambda Invoke API (emulator -> local data plane, warm "
                    "worker) with a Kinesis event of the 100 records the outbox relay put on the fraud stream for 100 "
                    "payment.created events the bench stored with the core's EventStore (as initiate_payment does, "
                    "without Stripe); the fraud stream mapping disabled meanwhile; wall time of the Invoke call; the "
                    "records of several shards in one event"),
            "records_per_second_median": round(statistics.median(rates), 1),
            "invocation_ms": percentiles([s * 1000 for s in wall]),
            "records_per_second_each": [round(rate, 1) for rate in rates],
            "records_scored_each": scored_each,
            "mix": (f"per batch: 20 returning customers (from a warm-up batch of {WARM_UP_RECORDS}), 50 new customers "
                    "paying once, 10 new paying 3 times; a device per customer, IPs from a pool of 60 shared by all"),
            # What one TransactWriteItems over the two tables costs the emulator at these table sizes (a probe
            # it cancels, timed before each batch): the scorer made one per record (one per batch of up to 100
            # actions since), so locally this bounded the rate; moto copies every table a transaction touches,
            # making it grow with the tables.
            "emulator_transact_write_ms_median": round(statistics.median(probes), 1),
            "transactions_table_items": table_items,
        },
        "dynamodb_requests_per_scored_record": round(sum(scorer.values()) / scored_total, 3),
        "dynamodb_requests_per_scored_record_by_operation": {op: round(n / scored_total, 3) for op, n in scorer.items()},
        "records_scored": scored_total,
        "invocations": len(wall),
        **({"batches_stopped_early": stopped_early} if stopped_early else {}),
        "other_client_requests_during_invocations": others,
    }


class FraudScoredInbox:
    """An SQS queue behind a rule on the bus `payments` matching detail-type fraud.scored."""

    def __init__(self, stack: Stack):
        self.sqs, self.events = stack.client("sqs"), stack.client("events")
        self.bus = stack.outputs["bus_name"]
        name = f"bench-fraud-scored-{uuid.uuid4().hex[:8]}"
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.rule = name
        rule_arn = self.events.put_rule(Name=name, EventBusName=self.bus,
                                        EventPattern=json.dumps({"detail-type": ["fraud.scored"]}))["RuleArn"]
        self.sqs.set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                           "Action": "sqs:SendMessage", "Resource": queue_arn,
                           "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}],
        })})
        self.events.put_targets(Rule=name, EventBusName=self.bus, Targets=[{"Id": "bench", "Arn": queue_arn}])

    def wait_for(self, transaction_id: str, timeout: float) -> float | None:
        """perf_counter time the payment's fraud.scored was received, None if it did not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                    WaitTimeSeconds=1).get("Messages", []):
                now = time.perf_counter()
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                if json.loads(message["Body"]).get("detail", {}).get("transaction_id") == transaction_id:
                    return now
        return None

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, EventBusName=self.bus, Ids=["bench"])
        self.events.delete_rule(Name=self.rule, EventBusName=self.bus)
        self.sqs.delete_queue(QueueUrl=self.url)


def measure_post_to_fraud_scored(stack: FraudStack, payments: int) -> dict:
    inbox = FraudScoredInbox(stack)
    try:
        settled(stack, timeout=120)
        latencies = []
        for index in range(payments):
            planned = PlannedPayment(f"cus_bench_latency_{uuid.uuid4().hex[:8]}", f"device-latency-{index}",
                                     f"198.51.100.{index + 1}", "DE", 4200 + index, "eur")
            started = time.perf_counter()
            transaction_id = stack.post_payment(planned)
            arrived = inbox.wait_for(transaction_id, timeout=60)
            if arrived is None:
                raise RuntimeError(f"no fraud.scored on the bus for {transaction_id} within 60 s")
            latencies.append((arrived - started) * 1000)
    finally:
        inbox.close()
    return {"post_to_fraud_scored_ms": percentiles(latencies)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_fraud", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=PROJECT_ROOT / ".local")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--batches", type=int, default=3,
                        help="measured 100-record batches (after a warm-up batch); only the first one while the "
                             "emulator's TransactWriteItems copies whole tables (> 25 ms each)")
    parser.add_argument("--payments", type=int, default=30, help="payments for the POST → fraud.scored figures")
    parser.add_argument("--seed", type=int, default=5, help="seed of the batches' customer/device/IP mix")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "fraud.json")
    args = parser.parse_args(argv)

    try:
        with bench_stack("bench_fraud", args.state_dir / "outputs.json", args.own_stack) as outputs_path:
            stack = FraudStack(json.loads(outputs_path.read_text()))
            load_at_start = os.getloadavg()[0]
            # The end-to-end latency first, while the fraud stream carries nothing but these payments.
            latency = measure_post_to_fraud_scored(stack, args.payments)
            results = {"machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       **measure_batches(stack, args.batches, args.seed), **latency,
                       # The stack shares the machine's cores with whatever else runs: say how busy it was.
                       "load_average_1m": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2),
                                           "cpus": os.cpu_count()}}
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
