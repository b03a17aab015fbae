"""`make bench` (payments part): AWS calls per POST /payments and initiate_payment's cold start.

- `aws_requests_per_post` / `sequential_round_trips_post`: the AWS API calls one warm
  `POST /payments` makes, counted at botocore (`Endpoint.make_request`, one per API call) while the
  real handler runs against in-process moto with a Stripe stand-in (the one Stripe call is
  counted separately). The handler makes its calls one after another, so every call is a
  sequential round trip.
- `cold_start_ratio_initiate_payment`: importing the handler module in a fresh interpreter, as a
  ratio to `import boto3; boto3.client("dynamodb")` measured the same way in the same run (median
  of several interleaved runs each). Beside it, for the same yardstick: `..._library_floor` (only
  the libraries the handler is built on, nothing of paystream) and `..._with_tracer` (the handler
  plus a Powertools Tracer), which show where the time goes.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HANDLER = PROJECT_ROOT / "lambdas" / "initiate_payment" / "handler.py"
ENV = {
    "TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency", "STRIPE_API_KEY_SECRET_ID": "stripe-key",
    "PARKED_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/parked", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "POWERTOOLS_SERVICE_NAME": "initiate_payment",
    "BREAKER_CLOSED_CACHE_SECONDS": "2", "POWERTOOLS_LOG_LEVEL": "WARNING",
}


class StripeStandIn:
    calls = 0

    def create_and_confirm_payment_intent(self, **kwargs):
        StripeStandIn.calls += 1
        # A fresh id per call: the event store links each PaymentIntent to exactly one payment.
        return {"id": f"pi_{uuid.uuid4().hex[:16]}", "status": "succeeded", "client_secret": "cs"}


def count_post_requests() -> dict:
    import boto3
    import botocore.endpoint
    from moto import mock_aws

    os.environ.update(ENV)
    counts: collections.Counter[str] = collections.Counter()
    upstream = botocore.endpoint.Endpoint.make_request

    def counting(self, operation_model, request_dict):
        counts[f"{operation_model.service_model.service_name}.{operation_model.name}"] += 1
        return upstream(self, operation_model, request_dict)

    with mock_aws():
        ddb = boto3.client("dynamodb")
        ddb.create_table(TableName="transactions", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}])
        ddb.create_table(TableName="idempotency", BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
        boto3.client("secretsmanager").create_secret(Name="stripe-key", SecretString=json.dumps({"api_key": "sk_test_x"}))
        from paystream.adapters import stripe_gateway

        stripe_gateway.StripeGateway = lambda *a, **k: StripeStandIn()
        spec = importlib.util.spec_from_file_location("initiate_payment_bench", HANDLER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        class Context:
            function_name, memory_limit_in_mb, aws_request_id = "initiate_payment", 512, "r"
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:initiate_payment"

            def get_remaining_time_in_millis(self):
                return 10_000

        def post(key: str) -> int:
            body = json.dumps({"amount": 1000, "currency": "usd", "customer_id": "c", "payment_method_id": "pm",
                               "order_id": key})
            event = {"resource": "/payments", "path": "/payments", "httpMethod": "POST",
                     "headers": {"Content-Type": "application/json", "Idempotency-Key": key},
                     "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
                     "pathParameters": None, "stageVariables": None, "body": body, "isBase64Encoded": False,
                     "requestContext": {"resourcePath": "/payments", "httpMethod": "POST", "stage": "v1",
                                        "requestId": key, "identity": {"sourceIp": "127.0.0.1", "apiKeyId": "k"}}}
            return module.handler(event, Context())["statusCode"]

        botocore.endpoint.Endpoint.make_request = counting
        try:
            assert post("warm-up") == 201  # cold: reads the Stripe key once, then cached
            counts.clear()
            StripeStandIn.calls = 0
            assert post("measured") == 201
        finally:
            botocore.endpoint.Endpoint.make_request = upstream
    total = sum(counts.values())
    return {"aws_requests_per_post": total, "sequential_round_trips_post": total,
            "aws_requests_by_operation": dict(sorted(counts.items())), "stripe_calls_per_post": StripeStandIn.calls}


def _import_seconds(code: str, env: dict[str, str]) -> float:
    script = f"import time; t = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# What a fresh interpreter runs for each measured case. The cases are interleaved run by run, so
# that a slow moment of a shared machine weighs on all of them alike.
COLD_START_CASES = {
    # The yardstick.
    "boto3_dynamodb": 'import boto3; boto3.client("dynamodb")',
    "initiate_payment": "import handler",
    # What no initiate_payment built on the required libraries can avoid: boto3 and its DynamoDB
    # client, pydantic with one model built, Powertools logger, metrics, REST event handler and
    # idempotency utility.
    "library_floor": "\n".join([
        'import boto3; boto3.client("dynamodb")',
        "from pydantic import BaseModel",
        "class Request(BaseModel):\n    amount: int",
        "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics(namespace='paystream')",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; APIGatewayRestResolver()",
        "from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer",
    ]),
    # The floor again, with the event handler validating requests itself (enable_validation=True,
    # which loads its OpenAPI models) instead of the handler validating with paystream.models.
    "library_floor_with_event_handler_validation": "\n".join([
        'import boto3; boto3.client("dynamodb")',
        "from pydantic import BaseModel",
        "class Request(BaseModel):\n    amount: int",
        "from aws_lambda_powertools import Logger, Metrics; Logger(); Metrics(namespace='paystream')",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; APIGatewayRestResolver(enable_validation=True)",
        "from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer",
    ]),
    # The same handler if it also created a Powertools Tracer (which loads the X-Ray SDK).
    "initiate_payment_with_tracer": "from aws_lambda_powertools import Tracer; Tracer()\nimport handler",
}


def cold_start_ratio(runs: int = 11) -> dict:
    env = {**os.environ, **ENV, "PYTHONPATH": f"{HANDLER.parent}:{PROJECT_ROOT / 'layers' / 'core' / 'python'}"}
    samples: dict[str, list[float]] = {name: [] for name in COLD_START_CASES}
    for _ in range(runs):
        for name, code in COLD_START_CASES.items():
            samples[name].append(_import_seconds(code, env))
    seconds = {name: statistics.median(values) for name, values in samples.items()}
    baseline = seconds["boto3_dynamodb"]
    return {
        "cold_start_seconds_initiate_payment": round(seconds["initiate_payment"], 4),
        "cold_start_seconds_boto3_dynamodb": round(baseline, 4),
        "cold_start_ratio_initiate_payment": round(seconds["initiate_payment"] / baseline, 2),
        "cold_start_ratio_library_floor": round(seconds["library_floor"] / baseline, 2),
        "cold_start_ratio_library_floor_with_event_handler_validation": round(
            seconds["library_floor_with_event_handler_validation"] / baseline, 2),
        "cold_start_ratio_initiate_payment_with_tracer": round(seconds["initiate_payment_with_tracer"] / baseline, 2),
        "cold_start_runs": runs,
    }


def measure() -> dict:
    return {**count_post_requests(), **cold_start_ratio()}


if __name__ == "__main__":
    results = measure()
    out = PROJECT_ROOT / "bench" / "payments.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
