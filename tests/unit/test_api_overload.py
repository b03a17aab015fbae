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


def test_a_throttled_outcome_write_is_a_503_and_the_same_key_then_finishes_with_one_payment_intent(api):
    # The second transaction (outcome event + the idempotency record's answer) throttled after Stripe answered:
    # the attempt releases its record, so the retry is not a 409 and takes the payment over.
    initiate, get, stripe, _ = api
    # Armed once Stripe is called (so not the first transaction); a transaction of one item is the release.
    stop = refuse_once("TransactWriteItems", lambda params: len(params["TransactItems"]) > 1, armed=False)
    stripe.during_call = lambda: stop.__setitem__("armed", True)
    try:
        status, body, headers = post(initiate, PAYMENT, key="k-2")
    finally:
        stop["off"]()
    assert (status, body["error"], headers["Retry-After"]) == (503, "service_unavailable", "2")
    stripe.during_call = None
    status, body, _ = post(initiate, PAYMENT, key="k-2")
    assert status == 201 and body["status"] == "succeeded"
    assert len(stripe.calls) == 2 and len(stripe.intents) == 1  # the same Stripe idempotency key both times
    assert [e["type"] for e in get_payment(get, body["transaction_id"])[1]["events"]] == [
        "payment.created", "payment.succeeded"]


def refuse_once(operation: str, which, *, armed: bool = True) -> dict:
    """Throttle the next call of `operation` whose parameters `which` selects, once `state["armed"]` is True;
    returns that state, whose "off" unregisters the hook."""
    client = wiring.dynamodb_client()
    state = {"armed": armed, "done": False}

    def refuse(params, **_):
        if state["armed"] and not state["done"] and which(params):
            state["done"] = True
            raise throttled(operation)

    event = f"before-parameter-build.dynamodb.{operation}"
    client.meta.events.register(event, refuse, unique_id=f"refuse-once-{operation}")
    state["off"] = lambda: client.meta.events.unregister(event, unique_id=f"refuse-once-{operation}")
    return state


def test_a_throttled_read_of_the_idempotency_record_is_a_503(api):
    initiate, *_ = api
    post(initiate, PAYMENT, key="k-4")
    # Only the repeated key's read of its record, not the breaker's.
    stop = refuse_once("GetItem", lambda params: params["Key"]["sk"] == {"S": "IDEMPOTENCY"})
    try:
        status, body, headers = post(initiate, PAYMENT, key="k-4")
    finally:
        stop["off"]()
    assert (status, body["error"], headers["Retry-After"]) == (503, "service_unavailable", "2")
    assert post(initiate, PAYMENT, key="k-4")[0] == 200


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
