"""POST /payments while DynamoDB throttles the platform beyond the SDK's retries (issue 8's chaos drills): a 503
with Retry-After and a message, and the same key finishes the payment once the throttling stops."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from paystream.adapters import wiring
from paystream.api import aws_throttled
from paystream.store import EventStoreError
# The POST /payments handler with its fake Stripe and in-process moto.
from test_payment_api_handlers import PAYMENT, api, get_payment, post  # noqa: F401 - api is a fixture


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed throughput."},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


@pytest.fixture()
def throttle():
    """throttle(operation) -> stop(): the shared DynamoDB client fails that operation as boto3 does once its retries
    are spent, until stop() is called (or the test ends)."""
    client = wiring.dynamodb_client()
    hooks = []

    def on(operation: str, code: str = "ThrottlingException"):
        def refuse(**_):
            raise ClientError({"Error": {"Code": code, "Message": "refused"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                              operation)

        client.meta.events.register(f"before-call.dynamodb.{operation}", refuse, unique_id=f"throttle-{operation}")
        hooks.append(operation)
        return lambda: client.meta.events.unregister(f"before-call.dynamodb.{operation}", unique_id=f"throttle-{operation}")

    yield on
    for operation in hooks:
        client.meta.events.unregister(f"before-call.dynamodb.{operation}", unique_id=f"throttle-{operation}")


def test_a_throttled_event_store_write_is_a_503_and_the_same_key_then_completes_the_payment(api, throttle):
    initiate, get, stripe, _ = api
    stop = throttle("TransactWriteItems")
    status, body, headers = post(initiate, PAYMENT, key="k-1")
    assert status == 503 and headers["Retry-After"] == "2"
    assert body["error"] == "service_unavailable" and "same Idempotency-Key" in body["message"]
    stop()
    status, body, _ = post(initiate, PAYMENT, key="k-1")
    assert status == 201 and body["status"] == "succeeded"
    assert get_payment(get, body["transaction_id"])[0] == 200
    assert len(stripe.calls) == 1  # the throttled attempt never reached Stripe


def test_a_throttled_idempotency_write_is_a_503(api, throttle):
    initiate, *_ = api
    throttle("PutItem")
    status, body, headers = post(initiate, PAYMENT, key="k-2")
    assert (status, body["error"], headers["Retry-After"]) == (503, "service_unavailable", "2")


def test_other_aws_errors_are_not_turned_into_503(api, throttle):
    initiate, *_ = api
    throttle("TransactWriteItems", code="ValidationException")
    with pytest.raises(EventStoreError):  # API Gateway answers a function error with 502, as before
        post(initiate, PAYMENT, key="k-3")


def test_throttling_is_found_through_wrapping_exceptions():
    try:
        try:
            raise throttled("PutItem")
        except ClientError as exc:
            raise EventStoreError("writing failed") from exc
    except EventStoreError as wrapped:
        assert aws_throttled(wrapped)
    assert not aws_throttled(EventStoreError("no cause")) and not aws_throttled(None)
    assert aws_throttled(ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem"))
