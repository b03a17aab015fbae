"""`paystream-ops rebuild` (paystream_ops.rebuild) on in-process moto: a dry run reports every kind of difference
(missing, behind, different, unreadable) field by field and writes nothing; applying rewrites exactly the
changed projections to what their events fold to, never an unchanged or unreadable one; a payment that gets a
new event between the read and the write is skipped and reported (exit 1) and a second run finishes;
`--payment` reads only the named payments; a Scan that raced a writer is confirmed before anything is
reported; and the exit codes a scheduled check relies on."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable, deserialize, serialize
from paystream.models import PaymentRequest, Projection
from paystream.states import apply, created_event, next_event
from paystream.store import EventStore
from paystream_ops import cli, rebuild

REGION = "eu-west-1"
TABLE = "paystream-test-transactions"


@pytest.fixture
def stack(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps({"region": REGION, "table_names": {"transactions": TABLE}}))
        written: list[str] = []
        original = EventStore.replace_projection

        def spy(self, transaction_id, expected, projection):
            written.append(transaction_id)
            return original(self, transaction_id, expected, projection)

        monkeypatch.setattr(EventStore, "replace_projection", spy)
        yield {"client": client, "outputs": str(outputs), "store": EventStore(DynamoDBTransactionsTable(client, TABLE)),
               "written": written}


def run(stack, *args: str) -> int:
    return cli.main(["--outputs", stack["outputs"], "rebuild", *args])


def pay(store: EventStore, transaction_id: str, *steps: tuple[str, dict]) -> Projection:
    """A payment stored as the platform stores it: created, then each step appended through the state machine."""
    request = PaymentRequest(amount=4200, currency="usd", customer_id="cus_1", payment_method_id="pm_1",
                             order_id=f"order-{transaction_id}", metadata={"cart": "7"})
    first = created_event(transaction_id, request)
    projection = apply(None, first)
    store.create(projection, first)
    for event_type, detail in steps:
        event = next_event(projection, event_type, detail)
        updated = apply(projection, event)
        store.append(transaction_id, projection.last_sequence, [event], updated)
        projection = updated
    return projection


SUCCEEDED = (("payment.succeeded", {"payment_intent_id": "pi_1"}), ("fraud.scored", {"risk_score": 12}))


def projection_item(stack, transaction_id: str) -> dict | None:
    item = stack["client"].get_item(TableName=TABLE, Key={"pk": {"S": f"TXN#{transaction_id}"}, "sk": {"S": "PROJECTION"}},
                                    ConsistentRead=True).get("Item")
    return None if item is None else deserialize(item)


def corrupt(stack, transaction_id: str, **fields) -> None:
    item = projection_item(stack, transaction_id)
    stack["client"].put_item(TableName=TABLE, Item=serialize({**item, **fields}))


def all_items(stack) -> list[dict]:
    return sorted((deserialize(i) for i in stack["client"].scan(TableName=TABLE)["Items"]), key=lambda i: (i["pk"], i["sk"]))


def folded(stack, transaction_id: str) -> Projection:
    from paystream.models import PaymentEvent
    from paystream.states import rebuild as fold

    items = stack["client"].query(TableName=TABLE, KeyConditionExpression="pk = :p AND begins_with(sk, :e)",
                                  ExpressionAttributeValues={":p": {"S": f"TXN#{transaction_id}"}, ":e": {"S": "EVENT#"}})
    return fold(PaymentEvent.model_validate(deserialize(i)) for i in items["Items"])


@pytest.fixture
def damaged(stack):
    """One payment of each kind, plus two that match their events."""
    store = stack["store"]
    pay(store, "ok-1", *SUCCEEDED)
    pay(store, "ok-2", ("payment.failed", {"retryable": False, "failure_code": "card_declined"}))
    pay(store, "missing", *SUCCEEDED)
    stack["client"].delete_item(TableName=TABLE, Key={"pk": {"S": "TXN#missing"}, "sk": {"S": "PROJECTION"}})
    stale = pay(store, "behind", ("payment.processing", {"payment_intent_id": "pi_2"}))
    behind = projection_item(stack, "behind")
    succeeded = next_event(stale, "payment.succeeded")
    store.append("behind", 2, [succeeded], apply(stale, succeeded))
    stack["client"].put_item(TableName=TABLE, Item=serialize(behind))  # the projection left at sequence 2 of 3
    pay(store, "different", *SUCCEEDED)
    corrupt(stack, "different", status="failed", amount=1)
    last = pay(store, "unreadable", ("payment.processing", {}))
    stack["client"].put_item(TableName=TABLE, Item=serialize({  # a type this code cannot fold
        "pk": "TXN#unreadable", "sk": "EVENT#0000000003", "item_type": "event",
        **next_event(last, "payment.teleported", sequence=3).model_dump(mode="json")}))
    return stack


def test_a_dry_run_reports_each_kind_field_by_field_and_writes_nothing(damaged, capsys, monkeypatch):
    monkeypatch.setattr(rebuild, "BATCH_PAYMENTS", 4)  # 6 payments: a full batch and a partial one
    before = all_items(damaged)
    assert run(damaged, "--dry-run", "--examples", "10") == 3
    out = capsys.readouterr().out
    assert all_items(damaged) == before and damaged["written"] == []
    assert "payments scanned" in out and " 6 " in out.split("payments scanned")[1].splitlines()[0]
    for kind in ("missing", "behind", "different"):
        assert f"would change: {kind}" in out and out.split(f"would change: {kind}")[1].split()[1] == "1"
    assert out.split("unreadable (never written)")[1].split()[1] == "1"
    assert "status: failed → succeeded" in out and "amount: 1 → 4200" in out
    assert "status: processing → succeeded" in out and "last_sequence: 2 → 3" in out
    assert "payment.teleported" in out
    assert "ok-1" not in out and "ok-2" not in out


def test_the_report_counts_changes_by_kind_and_field(damaged):
    table = DynamoDBTransactionsTable(damaged["client"], TABLE)
    payments = [rebuild.read_payment(table, tid) for tid in ("ok-1", "ok-2", "missing", "behind", "different", "unreadable")]
    report = rebuild.analyse(payments, len(payments), table, recheck=False)
    kinds = {f.transaction_id: f.kind for f in report.findings}
    assert kinds == {"missing": "missing", "behind": "behind", "different": "different", "unreadable": "unreadable"}
    different = next(f for f in report.findings if f.kind == "different")
    assert different.fields == {"status": ("failed", "succeeded"), "amount": (1, 4200)}  # GSI keys not compared
    assert report.payments == 6 and report.events == 3 + 2 + 3 + 3 + 3 + 3


def test_apply_rewrites_exactly_the_changed_projections(damaged, capsys):
    unreadable_before = projection_item(damaged, "unreadable")
    untouched = {tid: projection_item(damaged, tid) for tid in ("ok-1", "ok-2")}
    assert run(damaged, "--yes") == 1  # the unreadable payment is not rebuilt: the run is not finished
    assert sorted(damaged["written"]) == ["behind", "different", "missing"]
    assert "1 unreadable payment(s) not rebuilt" in capsys.readouterr().err
    for tid in ("behind", "different", "missing"):
        item = projection_item(damaged, tid)
        assert Projection.model_validate(item) == folded(damaged, tid)
        assert item["status_pk"] == f"STATUS#{item['status']}" and item["customer_pk"] == "CUSTOMER#cus_1"
    assert projection_item(damaged, "different")["status"] == "succeeded"
    assert projection_item(damaged, "unreadable") == unreadable_before
    assert {tid: projection_item(damaged, tid) for tid in untouched} == untouched
    damaged["written"].clear()
    assert run(damaged, "--dry-run") == 3  # still the unreadable one
    assert run(damaged, "--yes") == 1 and damaged["written"] == []


def test_a_payment_appended_to_between_read_and_write_is_skipped_and_a_second_run_finishes(stack, capsys, monkeypatch):
    store = stack["store"]
    pay(store, "busy", ("payment.processing", {"payment_intent_id": "pi_1"}))
    pay(store, "quiet", ("payment.processing", {"payment_intent_id": "pi_2"}))
    corrupt(stack, "busy", amount=7)
    corrupt(stack, "quiet", amount=8)
    original = rebuild.analyse

    def analyse_then_a_webhook_arrives(*args, **kwargs):
        report = original(*args, **kwargs)
        stored = store.get_projection("busy")  # a live writer appends on the (still corrupted) projection
        event = next_event(stored, "payment.succeeded")
        store.append("busy", stored.last_sequence, [event], apply(stored, event))
        return report

    monkeypatch.setattr(rebuild, "analyse", analyse_then_a_webhook_arrives)
    assert run(stack, "--yes") == 1
    assert "1 changed while rebuilding: run again (busy)" in capsys.readouterr().err
    assert projection_item(stack, "busy")["last_sequence"] == 3  # the writer's result, not overwritten
    assert projection_item(stack, "quiet")["amount"] == 4200
    monkeypatch.setattr(rebuild, "analyse", original)
    assert run(stack, "--yes") == 0
    assert Projection.model_validate(projection_item(stack, "busy")) == folded(stack, "busy")
    assert projection_item(stack, "busy")["amount"] == 4200 and projection_item(stack, "busy")["status"] == "succeeded"


def test_payment_option_reads_and_fixes_only_the_named_payments(stack, monkeypatch, capsys):
    store = stack["store"]
    for tid in ("a", "b", "c"):
        pay(store, tid, *SUCCEEDED)
        corrupt(stack, tid, status="refunded")

    def no_scan(*args, **kwargs):
        raise AssertionError("--payment must not scan the table")

    monkeypatch.setattr("paystream_ops.table.scan", no_scan)
    assert run(stack, "--payment", "a", "--payment", "b", "--dry-run") == 3
    out = capsys.readouterr().out
    assert "status: refunded → succeeded" in out and out.split("payments scanned")[1].split()[1] == "2"
    assert run(stack, "--payment", "a", "--payment", "b", "--yes") == 0
    assert sorted(stack["written"]) == ["a", "b"]
    assert [projection_item(stack, tid)["status"] for tid in ("a", "b", "c")] == ["succeeded", "succeeded", "refunded"]
    assert run(stack, "--payment", "a", "--dry-run") == 0
    assert run(stack, "--payment", "nope", "--dry-run") == 2
    assert "no such payment: nope" in capsys.readouterr().err


def test_exit_codes_and_confirmation(stack, monkeypatch, capsys):
    store = stack["store"]
    pay(store, "ok", *SUCCEEDED)
    assert run(stack, "--dry-run") == 0  # nothing to change
    assert run(stack) == 0 and stack["written"] == []  # nothing to write: no confirmation needed
    corrupt(stack, "ok", risk_score=99)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert run(stack) == 2 and stack["written"] == []  # no one to confirm: pass --yes
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert run(stack) == 1 and stack["written"] == []
    assert "not confirmed: nothing written" in capsys.readouterr().err
    monkeypatch.setattr("builtins.input", lambda prompt: "rebuild")
    assert run(stack) == 0 and stack["written"] == ["ok"]
    assert projection_item(stack, "ok")["risk_score"] == 12
    assert cli.main(["--outputs", stack["outputs"], "--dry-run", "rebuild"]) == 0  # the global --dry-run too


def test_a_projection_ahead_of_its_events_is_unreadable_and_never_moved_back(stack, capsys):
    pay(stack["store"], "ahead", *SUCCEEDED)
    corrupt(stack, "ahead", last_sequence=9)
    assert run(stack, "--dry-run") == 3
    assert "at sequence 9 but the events end at 3" in capsys.readouterr().out
    assert run(stack, "--yes") == 1 and stack["written"] == []


def test_a_payment_written_while_the_scan_ran_is_read_again_before_being_reported(stack, monkeypatch):
    store = stack["store"]
    old = pay(store, "racing", ("payment.processing", {"payment_intent_id": "pi_1"}))
    stale_projection = projection_item(stack, "racing")
    event = next_event(old, "payment.succeeded")
    store.append("racing", 2, [event], apply(old, event))
    from paystream_ops import table as ops_table

    real_scan = ops_table.scan

    def scan_that_read_the_projection_before_the_last_append(*args, **kwargs):
        return [stale_projection if item.get("sk") == "PROJECTION" else item for item in real_scan(*args, **kwargs)]

    monkeypatch.setattr(ops_table, "scan", scan_that_read_the_projection_before_the_last_append)
    assert run(stack, "--dry-run") == 0  # the consistent re-read shows nothing is behind
    corrupt(stack, "racing", last_sequence=2)  # really behind now: the re-read confirms it
    assert run(stack, "--dry-run") == 3


def test_events_the_scan_saw_only_in_part_are_read_again_before_being_called_unreadable(stack, monkeypatch):
    pay(stack["store"], "partial", *SUCCEEDED)
    from paystream_ops import table as ops_table

    real_scan = ops_table.scan
    # Event 2 in a segment read before the append that wrote it, event 3 in one read after: a gap.
    monkeypatch.setattr(ops_table, "scan", lambda *a, **k: [i for i in real_scan(*a, **k) if i["sk"] != "EVENT#0000000002"])
    assert run(stack, "--dry-run") == 0
    stack["client"].delete_item(TableName=TABLE, Key={"pk": {"S": "TXN#partial"}, "sk": {"S": "EVENT#0000000002"}})
    assert run(stack, "--dry-run") == 3  # really gone: unreadable
    assert run(stack, "--yes") == 1 and stack["written"] == []
