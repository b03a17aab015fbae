"""`paystream-ops reconcile` (paystream_ops.reconcile) on in-process moto with an in-memory Stripe (the small
interface the command reads Stripe through): every mismatch kind found and nothing reported for payments
legitimately ahead of Stripe; --fix appends what Stripe implies once (a second run appends nothing), never
moves a payment backwards (needs a person, exit 1); failed deliveries stored in the webhook inbox once.
Then the localstripe launcher's patches that make `GET /v1/events?delivery_success=false` work locally."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.adapters.inbox import DynamoDBWebhookInbox
from paystream.models import PaymentRequest
from paystream.payments import append_event
from paystream.states import apply, created_event
from paystream.store import EventStore
from paystream.webhooks import parse_event
from paystream_ops import cli, reconcile

REGION = "eu-west-1"
TABLE = "paystream-test-transactions"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
T0 = int(NOW.timestamp())


class FakeStripe:
    """reconcile.StripeSide in memory: PaymentIntents (with latest_charge expanded) and undelivered events."""

    def __init__(self):
        self.intents: dict[str, dict] = {}
        self.events: list[dict] = []
        self.listed: list[tuple[int, int]] = []

    def add(self, pid: str, tid: str | None, amount: int = 1000, status: str = "succeeded", currency: str = "usd",
            refunded: int = 0, created: int = T0, **extra) -> dict:
        charge = {"id": f"ch_{pid}", "object": "charge", "amount": amount, "amount_refunded": refunded,
                  "payment_intent": pid, "paid": True, "status": "succeeded", "disputed": False}
        self.intents[pid] = {"id": pid, "object": "payment_intent", "amount": amount, "currency": currency,
                             "status": status, "created": created, "client_secret": f"{pid}_secret_x",
                             "metadata": {"transaction_id": tid} if tid else {},
                             "latest_charge": charge if status in ("succeeded", "requires_capture") else None, **extra}
        return self.intents[pid]

    def payment_intents(self, created_gte, created_lte):
        self.listed.append((created_gte, created_lte))
        return [i for i in self.intents.values() if created_gte <= i["created"] <= created_lte]

    def payment_intent(self, payment_intent_id):
        return self.intents.get(payment_intent_id)

    def charge(self, charge_id):
        raise AssertionError("latest_charge is always expanded here")

    def failed_events(self, created_gte, created_lte):
        return [e for e in self.events if created_gte <= e["created"] <= created_lte]


@pytest.fixture()
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
        outputs.write_text(json.dumps({"region": REGION, "table_names": {"transactions": TABLE},
                                       "stripe_api_key": "sk_test_unit"}))
        fake = FakeStripe()
        monkeypatch.setattr(reconcile.StripeAccount, "from_environment", classmethod(lambda cls, env: fake))
        yield {"client": client, "store": EventStore(DynamoDBTransactionsTable(client, TABLE)), "stripe": fake,
               "outputs": str(outputs)}


def pay(store, tid: str, *steps: tuple[str, dict], amount: int = 1000, created_at: datetime = NOW):
    """A payment stored through the state machine, as the platform's functions append its events."""
    request = PaymentRequest(amount=amount, currency="usd", customer_id="cus_1", payment_method_id="pm_1",
                             order_id=f"order-{tid}")
    first = created_event(tid, request, occurred_at=reconcile.iso(created_at))
    projection = apply(None, first)
    store.create(projection, first)
    for event_type, detail in steps:
        projection = append_event(store, projection, event_type, detail)
    return projection


def run(stack, capsys, *args: str, window: tuple[str, str] | None = None) -> tuple[int, dict | str]:
    start, end = window or (reconcile.iso(NOW - timedelta(minutes=5)), reconcile.iso(NOW + timedelta(minutes=5)))
    code = cli.main(["--outputs", stack["outputs"], "reconcile", "--from", start, "--to", end, *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if "--json" in args else out)


def events_of(store, tid: str) -> list:
    return store.load(tid)[1]


def by_kind(report: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for m in report["mismatches"]:
        found.setdefault(m["kind"], set()).add(m["transaction_id"])
    return found


def test_every_kind_is_found_and_payments_ahead_of_stripe_are_not_mismatches(stack, capsys):
    store, stripe = stack["store"], stack["stripe"]
    ok = lambda pid: {"payment_intent_id": pid}  # noqa: E731
    # Agreeing payments, and payments legitimately ahead of Stripe.
    pay(store, "t-ok", ("payment.succeeded", ok("pi_ok")))
    stripe.add("pi_ok", "t-ok")
    pay(store, "t-review", ("payment.processing", ok("pi_review")), ("payment.review", {}))
    stripe.add("pi_review", "t-review", status="requires_capture")
    pay(store, "t-queued", ("payment.queued", {"reason": "provider unavailable"}))
    pay(store, "t-refunded", ("payment.succeeded", ok("pi_refunded")), ("payment.refunded", {"amount_refunded": 400}))
    stripe.add("pi_refunded", "t-refunded", refunded=400)
    stripe.add("pi_other", None)  # another system's PaymentIntent on the same account
    # One of each kind.
    stripe.add("pi_ghost", "t-ghost")  # missing_here
    pay(store, "t-gone", ("payment.succeeded", ok("pi_gone")))  # missing_there: Stripe does not know it
    pay(store, "t-nopi", ("payment.succeeded", {}))  # missing_there: succeeded without a PaymentIntent
    pay(store, "t-status", ("payment.processing", ok("pi_status")))
    stripe.add("pi_status", "t-status")  # status: Stripe says succeeded
    pay(store, "t-amount", ("payment.succeeded", ok("pi_amount")))
    stripe.add("pi_amount", "t-amount", amount=999)  # amount
    pay(store, "t-refund", ("payment.succeeded", ok("pi_refund")))
    stripe.add("pi_refund", "t-refund", refunded=1000)  # refund

    code, report = run(stack, capsys, "--json")
    assert code == reconcile.EXIT_FOUND
    assert by_kind(report) == {"missing_here": {"t-ghost"}, "missing_there": {"t-gone", "t-nopi"},
                               "status": {"t-status"}, "amount": {"t-amount"}, "refund": {"t-refund"}}
    assert report["stripe"] == {"payment_intents": 8, "not_paystream": 1}
    assert report["platform"] == {"payments": 9}
    fixable = {m["transaction_id"] for m in report["mismatches"] if m["fixable"]}
    assert fixable == {"t-status", "t-refund"}

    # The tables: one per kind, naming the payments.
    code, text = run(stack, capsys)
    assert code == reconcile.EXIT_FOUND
    for kind in reconcile.KINDS:
        assert f"{kind} (1" in text or f"{kind} (2" in text
    assert "t-ghost" in text and "pi_gone" in text


def test_the_window_bounds_both_sides(stack, capsys):
    store, stripe = stack["store"], stack["stripe"]
    pay(store, "t-old", ("payment.succeeded", {}), created_at=NOW - timedelta(days=2))  # outside: not listed
    stripe.add("pi_old", "t-old-ghost", created=T0 - 2 * 86400)
    code, report = run(stack, capsys, "--json")
    assert code == 0 and report["mismatches"] == [] and report["platform"]["payments"] == 0
    assert stripe.listed[-1] == (T0 - 300, T0 + 300)  # Stripe's created filter: the window in epoch seconds
    assert cli.main(["--outputs", stack["outputs"], "reconcile", "--from", "now", "--to", "2h"]) == 2


def test_a_payment_created_just_outside_the_window_is_still_found_for_its_payment_intent(stack, capsys):
    store, stripe = stack["store"], stack["stripe"]
    pay(store, "t-edge", ("payment.succeeded", {"payment_intent_id": "pi_edge"}), created_at=NOW - timedelta(minutes=6))
    stripe.add("pi_edge", "t-edge")
    pay(store, "t-edge2", ("payment.processing", {"payment_intent_id": "pi_edge2"}))
    stripe.add("pi_edge2", "t-edge2", created=T0 - 400)  # listed by nobody: retrieved by id
    code, report = run(stack, capsys, "--json")
    assert by_kind(report) == {"status": {"t-edge2"}}


def test_fix_appends_what_stripe_implies_once_and_a_second_run_appends_nothing(stack, capsys):
    store, stripe = stack["store"], stack["stripe"]
    pay(store, "t-status", ("payment.processing", {"payment_intent_id": "pi_status"}))
    stripe.add("pi_status", "t-status", refunded=300)  # succeeded and partly refunded: two events
    pay(store, "t-refund", ("payment.succeeded", {"payment_intent_id": "pi_refund"}))
    stripe.add("pi_refund", "t-refund", refunded=1000)
    pay(store, "t-failed", ("payment.processing", {"payment_intent_id": "pi_failed"}))
    stripe.add("pi_failed", "t-failed", status="requires_payment_method",
               last_payment_error={"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                                   "message": "Your card has insufficient funds."})
    pay(store, "t-intent", ("payment.review", {}))  # held before the PaymentIntent was recorded
    stripe.add("pi_intent", "t-intent", status="requires_capture")

    code, dry = run(stack, capsys, "--fix", "--dry-run", "--json")
    assert code == reconcile.EXIT_FOUND
    assert {f["transaction_id"]: f["appended"] for f in dry["fix"]["appended"]} == {
        "t-status": ["payment.succeeded", "payment.refunded"], "t-refund": ["payment.refunded"],
        "t-failed": ["payment.failed"], "t-intent": ["payment.processing"]}
    assert [e.event_type for e in events_of(store, "t-status")] == ["payment.created", "payment.processing"]

    code, report = run(stack, capsys, "--fix", "--yes", "--json")
    assert code == 0 and report["fix"]["needs_a_person"] == []
    status_events = events_of(store, "t-status")
    assert [e.event_type for e in status_events][2:] == ["payment.succeeded", "payment.refunded"]
    succeeded, refunded = status_events[2:]
    assert succeeded.detail["reconciled"] is True and succeeded.detail["payment_intent_id"] == "pi_status"
    raw = json.loads(succeeded.detail["stripe_payment_intent"])
    assert raw["id"] == "pi_status" and "client_secret" not in raw
    assert refunded.detail["amount_refunded"] == 300 and json.loads(refunded.detail["stripe_charge"])["id"] == "ch_pi_status"
    assert store.get_projection("t-status").status.value == "partially_refunded"
    assert store.get_projection("t-refund").status.value == "refunded"
    failed = store.load("t-failed")
    assert failed[0].status.value == "failed" and failed[1][-1].detail["failure_code"] == "insufficient_funds"
    assert failed[1][-1].detail["retryable"] is False  # a decline: the retry rule never matches it
    intent = store.get_projection("t-intent")
    assert (intent.status.value, intent.payment_intent_id) == ("review", "pi_intent")  # recorded, hold kept
    assert store.find_transaction_ids(["pi_intent"]) == {"pi_intent": "t-intent"}  # the link a charge webhook needs

    counts = {tid: len(events_of(store, tid)) for tid in ("t-status", "t-refund", "t-failed", "t-intent")}
    code, again = run(stack, capsys, "--fix", "--yes", "--json")
    assert code == 0 and again["mismatches"] == [] and again["fix"]["appended"] == []
    assert {tid: len(events_of(store, tid)) for tid in counts} == counts
    assert run(stack, capsys, "--json")[0] == 0


def test_fix_never_moves_a_payment_backwards_it_reports_it_for_a_person(stack, capsys):
    store, stripe = stack["store"], stack["stripe"]
    pay(store, "t-back", ("payment.succeeded", {"payment_intent_id": "pi_back"}),
        ("payment.refunded", {"amount_refunded": 1000}))
    stripe.add("pi_back", "t-back", refunded=0)  # Stripe shows no refund: the platform is not moved back
    pay(store, "t-canceled", ("payment.succeeded", {"payment_intent_id": "pi_canceled"}))
    stripe.add("pi_canceled", "t-canceled", status="canceled")  # succeeded never becomes canceled

    code, report = run(stack, capsys, "--json")
    assert code == reconcile.EXIT_FOUND and by_kind(report) == {"status": {"t-canceled"}, "refund": {"t-back"}}
    assert not any(m["fixable"] for m in report["mismatches"])
    before = {tid: len(events_of(store, tid)) for tid in ("t-back", "t-canceled")}
    code, report = run(stack, capsys, "--fix", "--yes", "--json")
    assert code == 1
    assert {(n["transaction_id"], n["kind"]) for n in report["fix"]["needs_a_person"]} == {
        ("t-back", "refund"), ("t-canceled", "status")}
    assert {tid: len(events_of(store, tid)) for tid in before} == before
    assert store.get_projection("t-back").status.value == "refunded"


def test_fix_needs_confirmation_without_yes(stack, capsys):
    store, stripe = stack["store"], stack["stripe"]
    pay(store, "t-status", ("payment.processing", {"payment_intent_id": "pi_status"}))
    stripe.add("pi_status", "t-status")
    code = cli.main(["--outputs", stack["outputs"], "reconcile", "--from", "10m", "--to", "now", "--fix"])
    assert code == 2  # no terminal to confirm on
    assert len(events_of(store, "t-status")) == 2


def stripe_event(event_id: str, event_type: str = "charge.refunded", created: int = T0) -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "created": created, "livemode": False,
            "data": {"object": {"id": f"ch_{event_id}", "object": "charge", "amount_refunded": 500,
                                "payment_intent": "pi_x"}}, "pending_webhooks": 1}


def test_failed_deliveries_are_listed_and_stored_in_the_webhook_inbox_once(stack, capsys):
    client, stripe = stack["client"], stack["stripe"]
    inbox = DynamoDBWebhookInbox(boto3.resource("dynamodb", region_name=REGION).Table(TABLE), ttl_days=90)
    stripe.events = [stripe_event("evt_here"), stripe_event("evt_missing", "payment_intent.succeeded"),
                     stripe_event("evt_before", created=T0 - 3600)]
    assert inbox.put_if_absent(parse_event(json.dumps(stripe.events[0])))  # its webhook did arrive after all

    code, report = run(stack, capsys, "--json")
    assert code == reconcile.EXIT_FOUND and report["mismatches"] == []
    deliveries = report["failed_deliveries"]
    assert (deliveries["listed"], deliveries["already_here"], deliveries["ingested"]) == (2, 1, [])
    assert "Item" not in client.get_item(TableName=TABLE, Key={"pk": {"S": "STRIPE_EVENT#evt_missing"},
                                                                "sk": {"S": "INBOX"}})

    code, report = run(stack, capsys, "--fix", "--yes", "--json")
    assert code == 0 and report["failed_deliveries"]["ingested"] == ["evt_missing"]
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": "STRIPE_EVENT#evt_missing"}, "sk": {"S": "INBOX"}})["Item"]
    # Exactly what the webhook function stores: the relay publishes it as stripe.<type>.
    assert (item["item_type"]["S"], item["event_type"]["S"]) == ("stripe_event", "payment_intent.succeeded")
    assert json.loads(item["payload"]["S"])["id"] == "evt_missing" and item["object_id"]["S"] == "ch_evt_missing"

    code, report = run(stack, capsys, "--fix", "--yes", "--json")
    assert code == 0 and report["failed_deliveries"]["already_here"] == 2 and report["failed_deliveries"]["ingested"] == []
    inbox_items = client.scan(TableName=TABLE, FilterExpression="item_type = :t",
                              ExpressionAttributeValues={":t": {"S": "stripe_event"}})["Items"]
    assert sorted(i["event_id"]["S"] for i in inbox_items) == ["evt_here", "evt_missing"]


def test_stripe_account_reads_pages_and_treats_an_unknown_payment_intent_as_none():
    import stripe

    class Page:
        def __init__(self, objects):
            self.objects = objects

        def auto_paging_iter(self):
            return iter(self.objects)

    class Obj(dict):
        def to_dict(self, recursive=True):
            return dict(self)

    calls = []

    class Intents:
        def list(self, params):
            calls.append(params)
            return Page([Obj(id="pi_1"), Obj(id="pi_2")])

        def retrieve(self, pid, params=None):
            raise stripe.InvalidRequestError("No such payment_intent", "id", code="resource_missing", http_status=404)

    class Client:
        class v1:  # noqa: N801 - stripe-python's namespace
            payment_intents = Intents()

    account = reconcile.StripeAccount(Client())
    assert [i["id"] for i in account.payment_intents(10, 20)] == ["pi_1", "pi_2"]
    assert calls == [{"created": {"gte": 10, "lte": 20}, "limit": 100, "expand": ["data.latest_charge"]}]
    assert account.payment_intent("pi_unknown") is None


# ------------------------------------------------------------------------------------------------ localstripe


# localstripe 1.15.10 registers plain-function routes, which aiohttp deprecates: its own noise, not ours.
LOCALSTRIPE_WARNINGS = pytest.mark.filterwarnings("ignore:Bare functions are deprecated:DeprecationWarning")


@pytest.fixture()
def localstripe(monkeypatch):
    """localstripe's resources in this process, with the launcher's patches (persistence off first: nothing
    may reach /tmp/localstripe.pickle) and webhook POSTs answered by a fake instead of the network."""
    from localdev import stripe_server

    stripe_server.make_app()
    from localstripe import resources, webhooks

    posted: list[tuple[str, str]] = []

    async def post(url, payload, headers):
        posted.append((url, json.loads(payload)["type"]))
        if "dead" in url:
            raise OSError("connection refused")
        return 200 if "ok" in url else 500

    monkeypatch.setattr(stripe_server, "_post", post)
    monkeypatch.setattr(stripe_server, "WEBHOOK_DELAY_SECONDS", 0)
    resources.store.clear()
    webhooks._webhooks.clear()
    yield resources, webhooks, posted
    resources.store.clear()
    webhooks._webhooks.clear()


async def _settle():
    """Let the scheduled webhook senders run to completion."""
    for _ in range(5):
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not pending:
            return
        await asyncio.gather(*pending)


@LOCALSTRIPE_WARNINGS
def test_localstripe_records_failed_deliveries_and_lists_them_with_delivery_success(localstripe):
    resources, webhooks, posted = localstripe
    listed = lambda **kw: [(e.type, e.data["object"]["id"]) for e in resources.Event._api_list_all(None, **kw)._list]  # noqa: E731

    async def scenario():
        webhooks.register_webhook("paystream", "http://127.0.0.1:9/dead", "whsec_x", None)
        intent = resources.PaymentIntent._api_create(amount="1000", currency="usd", payment_method="pm_card_visa",
                                                     confirm="true", metadata={"transaction_id": "t1"})
        # Not sent yet: pending counts as not delivered, as on Stripe.
        assert listed(delivery_success="false") == [("payment_intent.succeeded", intent.id)]
        resources.Refund(payment_intent=intent.id, amount=400)
        await _settle()
        charge_id = intent.latest_charge.id
        failed = listed(delivery_success="false")
        assert failed == [("payment_intent.succeeded", intent.id), ("charge.refunded", charge_id)]
        refunded = [e for e in resources.Event._api_list_all(None)._list if e.type == "charge.refunded"][0]
        assert refunded.data["object"]["amount_refunded"] == 400 and refunded.data["object"]["payment_intent"] == intent.id
        assert refunded._export()["pending_webhooks"] == 1
        assert listed(delivery_success="true") == []

        webhooks.register_webhook("paystream", "http://127.0.0.1:1/ok", "whsec_x", None)  # the endpoint is back
        other = resources.PaymentIntent._api_create(amount="500", currency="usd", payment_method="pm_card_visa",
                                                    confirm="true")
        await _settle()
        assert listed(delivery_success="true") == [("payment_intent.succeeded", other.id)]
        assert len(listed(delivery_success="false")) == 2

        webhooks.register_webhook("paystream", "http://127.0.0.1:1/error", "whsec_x", None)  # answers 500
        resources.Refund(payment_intent=other.id)
        await _settle()
        assert listed(delivery_success="false")[-1] == ("charge.refunded", other.latest_charge.id)

    asyncio.run(scenario())
    assert [kind for _, kind in posted] == ["payment_intent.succeeded", "charge.refunded", "payment_intent.succeeded",
                                            "charge.refunded"]
    now = int(datetime.now(timezone.utc).timestamp())
    assert len(listed(delivery_success="false", created={"gte": str(now - 60), "lte": str(now + 60)})) == 3
    assert listed(delivery_success="false", created={"gte": str(now + 60)}) == []
    from localstripe.errors import UserError

    with pytest.raises(UserError):
        listed(delivery_success="maybe")


@LOCALSTRIPE_WARNINGS
def test_localstripe_lists_payment_intents_by_created(localstripe):
    resources, _, _ = localstripe

    async def scenario():
        first = resources.PaymentIntent._api_create(amount="100", currency="usd")
        second = resources.PaymentIntent._api_create(amount="200", currency="usd")
        first.created -= 3600
        return first, second

    first, second = asyncio.run(scenario())
    ids = lambda **kw: [i.id for i in resources.PaymentIntent._api_list_all(None, **kw)._list]  # noqa: E731
    assert ids() == [first.id, second.id]
    assert ids(created={"gte": str(second.created - 60)}) == [second.id]
    assert ids(created={"lt": str(second.created - 60)}) == [first.id]
    assert ids(created={"gte": str(first.created), "lte": str(second.created)}, limit="1") == [first.id, second.id]
    from localstripe.errors import UserError

    with pytest.raises(UserError):
        ids(created={"after": "1"})
