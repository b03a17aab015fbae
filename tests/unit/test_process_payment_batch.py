"""lambdas/process_payment per SQS batch, on in-process moto: the DynamoDB requests a batch costs (counted on the
function's own client), records of one payment applied in order, and the outcome transaction's fallbacks.

A batch reads every projection with ONE BatchGetItem (links first, when records name only a PaymentIntent), appends
only where the state machine says so, and records every outcome with ONE TransactWriteItems; a cancelled outcome
transaction falls back to one UpdateItem per inbox item (paystream.adapters.inbox.DynamoDBWebhookOutcomes)."""

from __future__ import annotations

import pytest

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.inbox import DynamoDBWebhookOutcomes
from paystream.adapters.wiring import dynamodb_client
from paystream.payments import append_event
from paystream.processing import APPLIED, NO_CHANGE, Delivery, Outcome, StripeEventProcessor, parse_bus_event
from paystream.store import EventStore
from test_process_payment_handler import (  # noqa: F401 - stack is a fixture
    Context,
    bus_body,
    new_payment,
    record,
    stack,
    succeeded,
)

TABLE = "transactions"


@pytest.fixture()
def calls(stack):
    """The DynamoDB operations the function's own client makes, in order."""
    made: list[str] = []

    def count(model, **_):
        made.append(model.name)

    client = dynamodb_client()  # the one client the function's event store and outcome recorder share
    client.meta.events.register("before-call.dynamodb", count)
    yield made
    client.meta.events.unregister("before-call.dynamodb", count)


def store_inbox_item(ddb, event_id: str) -> None:
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"STRIPE_EVENT#{event_id}"}, "sk": {"S": "INBOX"},
                                        "item_type": {"S": "stripe_event"}, "event_id": {"S": event_id},
                                        "payload": {"S": "{}"}})


def inbox_item(ddb, event_id: str) -> dict | None:
    return ddb.get_item(TableName=TABLE, Key={"pk": {"S": f"STRIPE_EVENT#{event_id}"}, "sk": {"S": "INBOX"}}).get("Item")


def intent_succeeded(event_id: str, transaction_id: str) -> str:
    return bus_body("payment_intent.succeeded", {"id": f"pi_{transaction_id}", "object": "payment_intent",
                                                 "status": "succeeded", "metadata": {"transaction_id": transaction_id}},
                    event_id)


def succeeded_payment(store, transaction_id: str):
    """A payment initiation already saw succeed: its payment_intent.succeeded webhook changes nothing (the bench's case)."""
    projection = new_payment(store, transaction_id, payment_intent_id=f"pi_{transaction_id}")
    return append_event(store, projection, "payment.succeeded", {"payment_intent_id": f"pi_{transaction_id}"})


def test_a_batch_of_n_webhooks_for_n_payments_costs_one_batch_get_and_one_transaction(stack, calls):
    ids = [f"tx-{n}" for n in range(7)]
    for transaction_id in ids:
        succeeded_payment(stack["store"], transaction_id)
        store_inbox_item(stack["ddb"], f"evt_{transaction_id}")
    calls.clear()
    event = {"Records": [record(intent_succeeded(f"evt_{t}", t), f"m-{t}") for t in ids]}
    assert stack["handler"].handler(event, Context()) == {"batchItemFailures": []}
    assert calls == ["BatchGetItem", "TransactWriteItems"]
    for transaction_id in ids:
        item = inbox_item(stack["ddb"], f"evt_{transaction_id}")
        assert (item["processing_status"]["S"], item["transaction_id"]["S"]) == (NO_CHANGE, transaction_id)
        assert [e.event_type for e in stack["store"].load(transaction_id)[1]][-1] == "payment.succeeded"


def test_webhooks_naming_only_a_payment_intent_read_their_links_in_one_batch_get_too(stack, calls):
    for transaction_id in ("tx-a", "tx-b"):
        succeeded_payment(stack["store"], transaction_id)
        store_inbox_item(stack["ddb"], f"evt_refund_{transaction_id}")
    calls.clear()
    event = {"Records": [record(bus_body("charge.refunded", {
        "id": f"ch_{t}", "object": "charge", "amount_refunded": 5000, "payment_intent": f"pi_{t}", "paid": True,
        "status": "succeeded"}, f"evt_refund_{t}"), f"m-{t}") for t in ("tx-a", "tx-b")]}
    assert stack["handler"].handler(event, Context()) == {"batchItemFailures": []}
    # links, projections, one append per payment (payment.refunded), the outcomes
    assert calls == ["BatchGetItem", "BatchGetItem", "TransactWriteItems", "TransactWriteItems", "TransactWriteItems"]
    assert [stack["store"].get_projection(t).status for t in ("tx-a", "tx-b")] == ["refunded", "refunded"]


def test_two_webhooks_of_one_payment_in_a_batch_are_applied_in_order_the_second_seeing_the_first(stack, calls):
    new_payment(stack["store"], "tx-1")  # processing
    for event_id in ("evt_success", "evt_refund"):
        store_inbox_item(stack["ddb"], event_id)
    calls.clear()
    refund = bus_body("charge.refunded", {"id": "ch_1", "object": "charge", "amount_refunded": 5000,
                                          "payment_intent": "pi_1", "metadata": {"transaction_id": "tx-1"}},
                      "evt_refund")
    event = {"Records": [record(succeeded("evt_success"), "m-1"), record(refund, "m-2")]}
    assert stack["handler"].handler(event, Context()) == {"batchItemFailures": []}
    projection, events = stack["store"].load("tx-1")
    # The refund saw the success the first record appended: no implied success of its own, no conflict, no re-read.
    assert [e.event_type for e in events] == ["payment.created", "payment.processing", "payment.succeeded",
                                              "payment.refunded"]
    assert projection.status == "refunded"
    assert calls == ["BatchGetItem", "TransactWriteItems", "TransactWriteItems", "TransactWriteItems"]
    assert [inbox_item(stack["ddb"], e)["processing_status"]["S"] for e in ("evt_success", "evt_refund")] == [
        APPLIED, APPLIED]


def test_one_stripe_event_twice_in_a_batch_is_one_outcome_action(stack, calls):
    succeeded_payment(stack["store"], "tx-1")
    store_inbox_item(stack["ddb"], "evt_twice")
    calls.clear()
    event = {"Records": [record(intent_succeeded("evt_twice", "tx-1"), "m-1"),
                         record(intent_succeeded("evt_twice", "tx-1"), "m-2")]}
    assert stack["handler"].handler(event, Context()) == {"batchItemFailures": []}
    assert calls == ["BatchGetItem", "TransactWriteItems"]  # DynamoDB refuses one item twice in a transaction
    assert inbox_item(stack["ddb"], "evt_twice")["processing_status"]["S"] == NO_CHANGE


def test_a_cancelled_outcome_transaction_falls_back_to_one_update_per_item(stack, calls):
    for transaction_id in ("tx-1", "tx-2", "tx-3"):
        succeeded_payment(stack["store"], transaction_id)
    store_inbox_item(stack["ddb"], "evt_tx-1")
    store_inbox_item(stack["ddb"], "evt_tx-3")  # evt_tx-2's inbox item expired: its condition cancels the transaction
    calls.clear()
    event = {"Records": [record(intent_succeeded(f"evt_{t}", t), f"m-{t}") for t in ("tx-1", "tx-2", "tx-3")]}
    assert stack["handler"].handler(event, Context()) == {"batchItemFailures": []}
    assert calls == ["BatchGetItem", "TransactWriteItems", "UpdateItem", "UpdateItem", "UpdateItem"]
    assert [inbox_item(stack["ddb"], f"evt_{t}")["processing_status"]["S"] for t in ("tx-1", "tx-3")] == [
        NO_CHANGE, NO_CHANGE]
    assert inbox_item(stack["ddb"], "evt_tx-2") is None  # never created as a stub


class PartlyFailingOutcomes:
    """An outcome recorder that cannot record `failing` (as a throttled or failed write would)."""

    def __init__(self, failing: str):
        self.failing, self.recorded = failing, []

    def record_all(self, outcomes):
        self.recorded.append([outcome.stripe_event_id for outcome in outcomes])
        return {self.failing: RuntimeError("throttled")}


class NoAlerts:
    def publish(self, subject, message):
        raise AssertionError("no alert expected")


def test_a_record_whose_outcome_is_not_recorded_fails_alone(stack):
    for transaction_id in ("tx-1", "tx-2"):
        succeeded_payment(stack["store"], transaction_id)
    outcomes = PartlyFailingOutcomes("evt_tx-2")
    processor = StripeEventProcessor(stack["store"], outcomes, NoAlerts())
    deliveries = [Delivery(f"m-{t}", parse_bus_event(intent_succeeded(f"evt_{t}", t)), 1) for t in ("tx-1", "tx-2")]
    results = processor.process_batch(deliveries)
    assert outcomes.recorded == [["evt_tx-1", "evt_tx-2"]]  # one call for the batch
    assert isinstance(results["m-tx-1"], Outcome) and results["m-tx-1"].status == NO_CHANGE
    assert isinstance(results["m-tx-2"], RuntimeError)


def test_the_handler_reports_a_record_whose_outcome_is_not_recorded_as_failed(stack, monkeypatch):
    succeeded_payment(stack["store"], "tx-1")
    store_inbox_item(stack["ddb"], "evt_tx-1")
    service = stack["handler"].service()
    monkeypatch.setattr(service, "_outcomes", PartlyFailingOutcomes("evt_tx-1"))
    result = stack["handler"].handler({"Records": [record(intent_succeeded("evt_tx-1", "tx-1"), "m-1")]}, Context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}


class RacedStore(EventStore):
    """An event store where another writer appends `payment.succeeded` right after the batch's projections are read."""

    def get_projections(self, transaction_ids):
        found = super().get_projections(transaction_ids)
        append_event(EventStore(DynamoDBTransactionsTable(dynamodb_client(), TABLE)), found["tx-1"],
                     "payment.succeeded", {"payment_intent_id": "pi_1"})
        return found


def test_a_concurrent_append_after_the_batch_read_is_re_read_and_decided_again(stack, calls):
    new_payment(stack["store"], "tx-1")  # processing
    store_inbox_item(stack["ddb"], "evt_late")
    processor = StripeEventProcessor(RacedStore(DynamoDBTransactionsTable(dynamodb_client(), TABLE)),
                                     DynamoDBWebhookOutcomes(dynamodb_client(), TABLE), NoAlerts())
    calls.clear()
    results = processor.process_batch([Delivery("m-1", parse_bus_event(succeeded("evt_late")), 1)])
    assert results["m-1"].payment_status == "succeeded"  # decided again on the re-read: nothing appended twice
    # batch read, the other writer's append, ours cancelled, the re-read (GetItem: process_payment's grant), outcomes
    assert calls == ["BatchGetItem", "TransactWriteItems", "TransactWriteItems", "GetItem", "TransactWriteItems"]
    assert [e.event_type for e in stack["store"].load("tx-1")[1]].count("payment.succeeded") == 1
