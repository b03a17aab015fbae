"""`paystream-ops reconcile --from T --to T [--fix]`: the platform's payments against Stripe (issue 7, item 5).

Runbook: docs/runbooks/reconcile.md. Two sides for the window:

- Stripe: the PaymentIntents created in it (`created[gte]/[lte]`, auto-paginated, `latest_charge` expanded
  for its cumulative `amount_refunded`). Only paystream's count: the platform creates every PaymentIntent
  with `metadata.transaction_id` (paystream.adapters.stripe_gateway); others are counted, never compared.
- The platform: the projections created in it (one parallel Scan, paystream_ops.table), linked to
  PaymentIntents by `payment_intent_id`. Every projection is read, so a PaymentIntent whose payment was
  created just outside the window still finds it; a payment whose PaymentIntent was created just outside
  it is retrieved from Stripe by id.

Mismatch kinds:

    missing_here   a paystream PaymentIntent with no payment (or whose payment records another PaymentIntent)
    missing_there  a payment whose payment_intent_id Stripe does not know, or in a status that needs a
                   PaymentIntent (processing, requires_action, succeeded, refunded, …) without one
    status         what Stripe's PaymentIntent implies (payments.INTENT_STATUS_EVENT, the mapping that
                   records Stripe's answers) is a move the state machine would make (`decide` appends), or
                   contradicts the payment (needs a person). A payment legitimately ahead of Stripe is not a
                   mismatch: `review` while Stripe is processing/requires_action/requires_capture; refunded or
                   disputed while the PaymentIntent says succeeded.
    amount         amount or currency differ
    refund         the charge's amount_refunded differs from the payment's

`--fix` appends, for status and refund mismatches, the events Stripe's current data implies through the state
machine (`payments.append_event`: `decide`, `next_event`, `EventStore.append` guarded by last_sequence; detail
`reconciled: true` and the raw Stripe object), so the outbox relay publishes them and consumers react. What
`decide` refuses (it would move a payment backwards) is reported as "needs a person". Running it again
appends nothing: the facts are known by then. missing_here, missing_there and amount are only reported (see
the runbook: the platform cannot invent a payment, nor a charge, nor rewrite an amount).

Failed webhook deliveries: Stripe's events of the window with `delivery_success=false` are listed; those not
in the webhook inbox yet are, with --fix, stored through the webhook's own storage-first path
(`webhooks.parse_event` + `DynamoDBWebhookInbox.put_if_absent`: one item per Stripe event id; one already
there is counted as "already here"), after which the relay publishes them like any webhook. They come from
Stripe's API with the account's key, so there is no signature to verify. The reconciliation events are
appended first: they carry Stripe's current state, and the older events then append nothing twice.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Protocol

from paystream_ops.common import (EXIT_DONE, EXIT_FOUND, Context, OperationFailed, Refused, iso, parse_time,
                                  positive_int, progress)
from paystream_ops.environment import Environment

KINDS = ("missing_here", "missing_there", "status", "amount", "refund")
FIXED_KINDS = frozenset({"status", "refund"})
CONFIRMATION = "fix"
# As the webhook function stores them (INBOX_TTL_DAYS in terraform/modules/platform/main.tf).
INBOX_TTL_DAYS = 90
PAGE_SIZE = 100  # Stripe's largest list page


# ------------------------------------------------------------------------------------------------ Stripe side


class StripeSide(Protocol):
    """What reconcile reads from Stripe (StripeAccount; the unit tests pass an in-memory fake). Objects are
    plain dicts as Stripe returns them."""

    def payment_intents(self, created_gte: int, created_lte: int) -> Iterable[dict]:
        """PaymentIntents created in [gte, lte] (epoch seconds), every page, `latest_charge` expanded."""

    def payment_intent(self, payment_intent_id: str) -> dict | None:
        """One PaymentIntent with `latest_charge` expanded; None when Stripe does not know it."""

    def charge(self, charge_id: str) -> dict: ...

    def failed_events(self, created_gte: int, created_lte: int) -> Iterable[dict]:
        """Events created in [gte, lte] whose webhook delivery failed (or is still pending)."""


class StripeAccount:
    """StripeSide over stripe-python's StripeClient (v1 namespace), with the functions' key and API base."""

    def __init__(self, client: Any):
        self._client = client

    @classmethod
    def from_environment(cls, environment: Environment) -> "StripeAccount":
        import stripe

        base = environment.outputs.get("stripe_api_base")
        return cls(stripe.StripeClient(environment.stripe_api_key(), base_addresses={"api": base} if base else None,
                                        max_network_retries=2))

    def payment_intents(self, created_gte: int, created_lte: int) -> Iterator[dict]:
        yield from self._every(self._client.v1.payment_intents.list, {
            "created": {"gte": created_gte, "lte": created_lte}, "limit": PAGE_SIZE, "expand": ["data.latest_charge"]})

    def payment_intent(self, payment_intent_id: str) -> dict | None:
        import stripe

        try:
            intent = self._client.v1.payment_intents.retrieve(payment_intent_id, params={"expand": ["latest_charge"]})
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404 or exc.code == "resource_missing":
                return None
            raise OperationFailed(f"Stripe refused to retrieve {payment_intent_id}: {exc}") from None
        except stripe.StripeError as exc:
            raise OperationFailed(f"Stripe: {exc}; nothing was changed, run it again") from None
        return intent.to_dict(recursive=True)

    def charge(self, charge_id: str) -> dict:
        return self._call(self._client.v1.charges.retrieve, charge_id).to_dict(recursive=True)

    def failed_events(self, created_gte: int, created_lte: int) -> Iterator[dict]:
        yield from self._every(self._client.v1.events.list, {
            "created": {"gte": created_gte, "lte": created_lte}, "delivery_success": False, "limit": PAGE_SIZE})

    @classmethod
    def _every(cls, list_method: Any, params: dict) -> Iterator[dict]:
        """Every object of a list, page after page (`starting_after`, stripe-python's auto-pagination)."""
        import stripe

        try:
            for obj in list_method(params=params).auto_paging_iter():
                yield obj.to_dict(recursive=True)
        except stripe.StripeError as exc:
            raise OperationFailed(f"Stripe: {exc}; nothing was changed, run it again") from None

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        import stripe

        try:
            return function(*args, **kwargs)
        except stripe.StripeError as exc:
            raise OperationFailed(f"Stripe: {exc}; nothing was changed, run it again") from None


def latest_charge(stripe: StripeSide, intent: dict) -> dict | None:
    """The PaymentIntent's latest charge (refunds and disputes live on it): expanded, or retrieved by id."""
    charge = intent.get("latest_charge")
    if isinstance(charge, str) and charge:
        return stripe.charge(charge)
    return charge if isinstance(charge, dict) else None


# ------------------------------------------------------------------------------------------------ comparison

# Statuses that exist only once Stripe has a PaymentIntent for the payment.
NEEDS_PAYMENT_INTENT = frozenset({"processing", "requires_action", "succeeded", "partially_refunded", "refunded",
                                  "disputed"})
# Stripe's PaymentIntent status S (as the state it implies) → payment statuses that are legitimately ahead of it:
# facts Stripe's PaymentIntent does not show (a fraud-review hold; refunds and disputes live on the charge).
AHEAD_OF_STRIPE = {
    "processing": frozenset({"review"}),
    "requires_action": frozenset({"review"}),
    "succeeded": frozenset({"partially_refunded", "refunded", "disputed"}),
}


@dataclass
class Mismatch:
    kind: str  # one of KINDS
    transaction_id: str | None
    payment_intent_id: str | None
    platform: str  # what the platform records
    stripe: str  # what Stripe says
    note: str = ""
    fixable: bool = False  # --fix appends what Stripe implies (status, refund only)


@dataclass
class Pair:
    """A payment (its Projection) and its PaymentIntent and latest charge, as read."""

    projection: Any  # paystream.models.Projection
    intent: dict
    charge: dict | None


def implied_steps(projection: Any, intent: dict, charge: dict | None) -> list[tuple[str, dict[str, Any]]]:
    """The payment events Stripe's current PaymentIntent and charge imply, in order, with their details
    (each recorded only if the state machine accepts it): the status event of payments.INTENT_STATUS_EVENT
    (what initiation records from Stripe's answer), then `payment.refunded` with the charge's cumulative total."""
    from paystream.payments import INTENT_STATUS_EVENT, stored_intent
    from paystream.stripe_failures import failure_is_retryable

    status = intent.get("status")
    event_type = INTENT_STATUS_EVENT.get(status, "payment.processing")
    common = {"reconciled": True, "payment_intent_id": intent.get("id")}
    detail: dict[str, Any] = {**common, "stripe_status": status, "stripe_payment_intent": stored_intent(intent)}
    if event_type == "payment.failed":
        error = intent.get("last_payment_error") if isinstance(intent.get("last_payment_error"), dict) else {}
        detail |= {
            "retryable": failure_is_retryable(error_type=error.get("type"), code=error.get("code"),
                                              decline_code=error.get("decline_code")),
            "failure_code": error.get("decline_code") or error.get("code") or "requires_payment_method",
            "failure_message": error.get("message") or "the payment failed at Stripe",
            "attempt": projection.attempt,  # like a webhook: reconciling records, it never starts an attempt
        }
    elif event_type == "payment.canceled":
        detail["cancellation_reason"] = intent.get("cancellation_reason")
    steps = [(event_type, detail)]
    refunded = stripe_refunded(charge)
    if refunded:
        steps.append(("payment.refunded", {
            **common, "charge_id": charge.get("id"), "amount_refunded": refunded,
            "stripe_charge": json.dumps(charge, sort_keys=True, separators=(",", ":"), default=str)}))
    return steps


def stripe_refunded(charge: dict | None) -> int:
    value = (charge or {}).get("amount_refunded")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def simulate(projection: Any, steps: list[tuple[str, dict[str, Any]]]) -> tuple[Any, list[tuple[str, str]]]:
    """The projection after the steps the state machine accepts (pure), and those steps with its reasons."""
    from paystream.states import apply, decide, next_event

    accepted = []
    for event_type, detail in steps:
        decision = decide(projection, event_type, detail)
        if decision.append:
            projection = apply(projection, next_event(projection, event_type, detail))
            accepted.append((event_type, decision.reason))
    return projection, accepted


def compare(pair: Pair) -> list[Mismatch]:
    """The mismatches of one payment with its PaymentIntent (pure)."""
    from paystream.payments import INTENT_STATUS_EVENT
    from paystream.states import EVENT_STATUS, decide

    projection, intent, charge = pair.projection, pair.intent, pair.charge
    tid, pid = projection.transaction_id, intent.get("id")
    found: list[Mismatch] = []
    amount, currency = intent.get("amount"), str(intent.get("currency") or "").lower()
    if (amount, currency) != (projection.amount, projection.currency):
        found.append(Mismatch("amount", tid, pid, f"{projection.amount} {projection.currency}",
                              f"{amount} {currency}", "a person must look: the platform never rewrites an amount"))

    steps = implied_steps(projection, intent, charge)
    status_step = steps[0]
    implied = EVENT_STATUS[INTENT_STATUS_EVENT.get(intent.get("status"), "payment.processing")].value
    current = projection.status.value
    said = intent.get("status") if intent.get("status") == implied else f"{intent.get('status')} (= {implied})"
    decision = decide(projection, *status_step)
    if decision.append:
        note = (f"PaymentIntent not recorded on the payment ({decision.reason})" if decision.intent_only
                else f"append {status_step[0]} ({decision.reason})")
        found.append(Mismatch("status", tid, pid, current, said, note, fixable=True))
    elif current != implied and current not in AHEAD_OF_STRIPE.get(implied, ()):
        found.append(Mismatch("status", tid, pid, current, said, f"needs a person: {decision.reason}"))
    if (charge or {}).get("disputed") and current != "disputed":
        found.append(Mismatch("status", tid, pid, current, "charge disputed",
                              "needs a person: a dispute is open at Stripe; its charge.dispute.created event "
                              "(see failed deliveries) records it"))

    refunded = stripe_refunded(charge)
    if refunded != projection.amount_refunded:
        after_status, _ = simulate(projection, [status_step])
        refund = decide(after_status, "payment.refunded", {"amount_refunded": refunded}) if refunded else None
        if refund is not None and refund.append and refunded > projection.amount_refunded:
            found.append(Mismatch("refund", tid, pid, f"amount_refunded {projection.amount_refunded}",
                                  f"amount_refunded {refunded}", f"append payment.refunded ({refund.reason})",
                                  fixable=True))
        else:
            reason = refund.reason if refund is not None else "Stripe shows less refunded than the platform"
            found.append(Mismatch("refund", tid, pid, f"amount_refunded {projection.amount_refunded}",
                                  f"amount_refunded {refunded}", f"needs a person: {reason}"))
    return found


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class Report:
    window: dict[str, str]
    stripe_payment_intents: int = 0
    not_paystream: int = 0  # PaymentIntents without metadata.transaction_id: another system's
    platform_payments: int = 0  # projections created in the window
    mismatches: list[Mismatch] = field(default_factory=list)
    failed_deliveries: list[dict[str, Any]] = field(default_factory=list)  # {id, type, created, here}
    fixed: list[dict[str, Any]] = field(default_factory=list)  # {transaction_id, appended: [types], dry_run}
    needs_a_person: list[dict[str, Any]] = field(default_factory=list)  # {transaction_id, kind, reason}
    ingested: list[str] = field(default_factory=list)

    @property
    def fixable(self) -> list[Mismatch]:
        return [m for m in self.mismatches if m.fixable]

    @property
    def missing_deliveries(self) -> list[dict[str, Any]]:
        return [d for d in self.failed_deliveries if not d["here"]]

    def counts(self) -> dict[str, int]:
        return {kind: sum(1 for m in self.mismatches if m.kind == kind) for kind in KINDS}

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "stripe": {"payment_intents": self.stripe_payment_intents, "not_paystream": self.not_paystream},
            "platform": {"payments": self.platform_payments},
            "counts": self.counts(),
            "mismatches": [asdict(m) for m in self.mismatches],
            "failed_deliveries": {
                "listed": len(self.failed_deliveries),
                "already_here": sum(1 for d in self.failed_deliveries if d["here"]),
                "events": self.failed_deliveries,
                "ingested": self.ingested,
            },
            "fix": {"appended": self.fixed, "needs_a_person": self.needs_a_person},
        }


def read_platform(environment: Environment) -> dict[str, Any]:
    """Every projection, by transaction id (one parallel Scan; items that do not validate are skipped and
    reported on stderr: `rebuild` is the tool for them)."""
    from paystream.models import Projection
    from pydantic import ValidationError

    from paystream_ops.table import scan

    bar, task = progress(None, "reading the transactions table")
    with bar:
        items = scan(environment, ["projection"], on_page=lambda n: bar.advance(task, n))
    projections, unreadable = {}, 0
    for item in items:
        try:
            projection = Projection.model_validate(item)
        except ValidationError:
            unreadable += 1
            continue
        projections[projection.transaction_id] = projection
    if unreadable:
        print(f"reconcile: {unreadable} projection(s) do not validate and were left out (paystream-ops rebuild "
              "--dry-run lists them)", file=sys.stderr)
    return projections


def collect(stripe: StripeSide, projections: dict[str, Any], start: datetime, end: datetime) -> tuple[Report, list[Pair]]:
    """Match both sides of the window and list the mismatches."""
    gte, lte = int(start.timestamp()), int(end.timestamp())
    report = Report(window={"from": iso(start), "to": iso(end)})
    by_intent = {p.payment_intent_id: p for p in projections.values() if p.payment_intent_id}
    pairs: list[Pair] = []
    compared: set[str] = set()  # transaction ids
    seen_intents: set[str] = set()

    bar, task = progress(None, "listing Stripe's PaymentIntents")
    with bar:
        for intent in stripe.payment_intents(gte, lte):
            bar.advance(task)
            report.stripe_payment_intents += 1
            tid = ((intent.get("metadata") or {}).get("transaction_id")) or None
            pid = intent.get("id")
            seen_intents.add(pid)
            if not tid:
                report.not_paystream += 1
                continue
            projection = projections.get(tid) or by_intent.get(pid)
            if projection is None:
                report.mismatches.append(Mismatch("missing_here", tid, pid, "no payment",
                                                  f"{intent.get('status')} {intent.get('amount')} {intent.get('currency')}",
                                                  "a PaymentIntent the platform created, with no payment recorded"))
                continue
            if projection.payment_intent_id not in (None, pid):
                report.mismatches.append(Mismatch(
                    "missing_here", tid, pid, f"payment records {projection.payment_intent_id}",
                    f"{intent.get('status')} {intent.get('amount')} {intent.get('currency')}",
                    "a second PaymentIntent for this payment: check whether it charged the customer twice"))
                continue
            pairs.append(Pair(projection, intent, latest_charge(stripe, intent)))
            compared.add(projection.transaction_id)

    start_text, end_text = iso(start), iso(end)
    in_window = [p for p in projections.values() if start_text <= p.created_at <= end_text]
    report.platform_payments = len(in_window)
    for projection in sorted(in_window, key=lambda p: p.created_at):
        if projection.transaction_id in compared:
            continue
        pid = projection.payment_intent_id
        if pid is None:
            if projection.status.value in NEEDS_PAYMENT_INTENT:
                report.mismatches.append(Mismatch("missing_there", projection.transaction_id, None,
                                                  projection.status.value, "no PaymentIntent",
                                                  f"a {projection.status.value} payment without a PaymentIntent"))
            continue
        intent = None if pid in seen_intents else stripe.payment_intent(pid)  # created outside the window?
        if intent is None:
            report.mismatches.append(Mismatch("missing_there", projection.transaction_id, pid,
                                              projection.status.value, "unknown to Stripe",
                                              "the payment's PaymentIntent does not exist at Stripe"))
            continue
        pairs.append(Pair(projection, intent, latest_charge(stripe, intent)))
    for pair in pairs:
        report.mismatches.extend(compare(pair))
    report.mismatches.sort(key=lambda m: (KINDS.index(m.kind), m.transaction_id or "", m.payment_intent_id or ""))
    return report, pairs


def check_deliveries(stripe: StripeSide, inbox: Any, report: Report, start: datetime, end: datetime) -> list[dict]:
    """Stripe's undelivered events of the window, each marked whether the webhook inbox has it already."""
    events = []
    for event in stripe.failed_events(int(start.timestamp()), int(end.timestamp())):
        here = inbox.has(event["id"])
        report.failed_deliveries.append({"id": event["id"], "type": event.get("type"), "created": event.get("created"),
                                         "here": here})
        events.append(event)
    return events


class Inbox:
    """The webhook inbox, as the webhook function writes it (paystream.adapters.inbox), plus a lookup."""

    def __init__(self, environment: Environment):
        import boto3

        from paystream.adapters.inbox import DynamoDBWebhookInbox

        self._client = environment.client("dynamodb")
        self._table_name = environment.need("table_names", "transactions")
        kwargs: dict[str, Any] = {"region_name": environment.outputs.get("region")}
        if environment.outputs.get("aws_endpoint_url"):  # as Environment.client: the local emulator
            kwargs |= {"endpoint_url": environment.outputs["aws_endpoint_url"], "aws_access_key_id": "test",
                       "aws_secret_access_key": "test"}
        table = boto3.resource("dynamodb", **kwargs).Table(self._table_name)
        self._inbox = DynamoDBWebhookInbox(table, ttl_days=INBOX_TTL_DAYS)

    def has(self, stripe_event_id: str) -> bool:
        from paystream.adapters.inbox import inbox_key

        key = {k: {"S": v} for k, v in inbox_key(stripe_event_id).items()}
        return "Item" in self._client.get_item(TableName=self._table_name, Key=key, ConsistentRead=True,
                                               ProjectionExpression="pk")

    def ingest(self, event: dict) -> bool:
        """Store the event as the webhook handler does after verifying a signature; False if already stored."""
        from paystream.webhooks import parse_event

        raw = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
        return self._inbox.put_if_absent(parse_event(raw))


def fix(store: Any, pairs: list[Pair], report: Report, dry_run: bool) -> None:
    """Append what Stripe implies for each payment with a fixable mismatch; record what stays for a person."""
    from paystream.payments import append_event

    flagged = {m.transaction_id for m in report.mismatches if m.kind in FIXED_KINDS}
    bar, task = progress(len(flagged), "appending reconciliation events" if not dry_run else "simulating")
    with bar:
        for pair in pairs:
            tid = pair.projection.transaction_id
            if tid not in flagged:
                continue
            bar.advance(task)
            if dry_run:
                after, accepted = simulate(pair.projection, implied_steps(pair.projection, pair.intent, pair.charge))
                appended = [event_type for event_type, _ in accepted]
            else:
                projection = store.require_projection(tid)  # fresh: the Scan is a while old
                appended = []
                for event_type, detail in implied_steps(projection, pair.intent, pair.charge):
                    before = projection.last_sequence
                    projection = append_event(store, projection, event_type, detail)
                    if projection.last_sequence > before:
                        appended.append(event_type)
                after = projection
            if appended:
                report.fixed.append({"transaction_id": tid, "appended": appended, "dry_run": dry_run})
            for left in compare(Pair(after, pair.intent, pair.charge)):
                if left.kind in FIXED_KINDS:
                    report.needs_a_person.append({"transaction_id": tid, "kind": left.kind, "reason": left.note})


# ------------------------------------------------------------------------------------------------ output


def print_report(console: Any, report: Report, examples: int) -> None:
    from rich.table import Table

    counts = report.counts()
    console.print(f"window {report.window['from']} .. {report.window['to']}: Stripe {report.stripe_payment_intents} "
                  f"PaymentIntent(s) ({report.not_paystream} not paystream's), platform {report.platform_payments} "
                  f"payment(s); mismatches: " + ", ".join(f"{kind} {n}" for kind, n in counts.items()))
    for kind in KINDS:
        rows = [m for m in report.mismatches if m.kind == kind]
        if not rows:
            continue
        table = Table(title=f"{kind} ({len(rows)}{', first ' + str(examples) if len(rows) > examples else ''})")
        for column in ("transaction", "PaymentIntent", "platform", "Stripe", "note"):
            table.add_column(column)
        for m in rows[:examples]:
            table.add_row(m.transaction_id or "-", m.payment_intent_id or "-", m.platform, m.stripe, m.note)
        console.print(table)
    if report.failed_deliveries:
        table = Table(title=f"Stripe events whose delivery failed ({len(report.failed_deliveries)}, "
                            f"{len(report.missing_deliveries)} not in the webhook inbox)")
        for column in ("event", "type", "created", "webhook inbox"):
            table.add_column(column)
        for d in report.failed_deliveries[:examples]:
            state = "ingested now" if d["id"] in report.ingested else ("already here" if d["here"] else "missing")
            created = iso(datetime.fromtimestamp(d["created"], tz=timezone.utc)) if isinstance(d["created"], int) else "-"
            table.add_row(d["id"], str(d["type"]), created, state)
        console.print(table)
    for fixed in report.fixed:
        verb = "would append" if fixed["dry_run"] else "appended"
        console.print(f"{fixed['transaction_id']}: {verb} {', '.join(fixed['appended'])}")
    for left in report.needs_a_person:
        console.print(f"{left['transaction_id']}: {left['kind']} needs a person: {left['reason']}")


# ------------------------------------------------------------------------------------------------ command line


def register(commands_root: Any, common: dict) -> None:
    """`paystream-ops reconcile --from T --to T [--fix] [--yes] [--dry-run] [--json] [--examples N]`."""
    p = commands_root.add_parser(
        "reconcile", help="compare payments with Stripe for a window (exit 3 on mismatches); --fix appends "
                          "what Stripe implies and ingests undelivered webhooks",
        description="Compare the platform's payments with Stripe's PaymentIntents and refunds created in the "
                    "window: missing_here (a paystream PaymentIntent without a payment), missing_there (a "
                    "payment whose PaymentIntent Stripe does not know, or that needs one and has none), status, "
                    "amount, refund. Also lists Stripe's events of the window whose webhook delivery failed. "
                    "--fix appends, for status and refund mismatches, the events Stripe's current data implies "
                    "through the state machine (detail reconciled: true), never moving a payment backwards "
                    "(reported as needs a person, exit 1), and stores the undelivered events in the webhook "
                    "inbox once (storage first; the relay publishes them). Runbook: docs/runbooks/reconcile.md.",
        **common)
    p.add_argument("--from", dest="start", required=True, type=parse_time, metavar="T",
                   help="window start: ISO 8601 (UTC if no offset), 'now', or a duration ago (2h, 3d)")
    p.add_argument("--to", dest="end", default=None, type=parse_time, metavar="T", help="window end (default now)")
    p.add_argument("--fix", action="store_true", help="append reconciliation events and ingest undelivered events")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout (for scripts)")
    p.add_argument("--examples", type=positive_int, default=20, metavar="N", help="rows per table (default 20)")
    p.add_argument("--dry-run", action="store_true", help="with --fix: show what it would append, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=handle)


def handle(args: Any, context: Context) -> int:
    start, end = args.start, args.end or context.now
    if start > end:
        raise Refused(f"--from {iso(start)} is after --to {iso(end)}")
    environment = context.environment
    stripe = StripeAccount.from_environment(environment)
    inbox = Inbox(environment)
    report, pairs = collect(stripe, read_platform(environment), start, end)
    undelivered = check_deliveries(stripe, inbox, report, start, end)
    return finish(args, context, report, pairs, undelivered, inbox)


def finish(args: Any, context: Context, report: Report, pairs: list[Pair], undelivered: list[dict], inbox: Any) -> int:
    found = bool(report.mismatches or report.missing_deliveries)
    if not args.fix or not found:
        _print(args, context, report)
        return EXIT_FOUND if found else EXIT_DONE
    missing = {d["id"] for d in report.missing_deliveries}
    to_ingest = [event for event in undelivered if event["id"] in missing]
    fixable = {m.transaction_id for m in report.fixable}
    if context.dry_run:
        fix(None, pairs, report, dry_run=True)  # needs_a_person: what a real run would leave
        for event in to_ingest:
            print(f"would ingest {event['id']} ({event.get('type')})", file=sys.stderr)
        _print(args, context, report)
        return EXIT_FOUND
    if fixable or to_ingest:
        prompt = (f"Append reconciliation events to {len(fixable)} payment(s) and store {len(to_ingest)} undelivered "
                  f"Stripe event(s) in the webhook inbox? Type '{CONFIRMATION}' to confirm: ")
        if not context.confirm(prompt, CONFIRMATION):
            raise OperationFailed("not confirmed: nothing was appended or stored")
    fix(context.environment.event_store(), pairs, report, dry_run=False)
    for event in to_ingest:
        if inbox.ingest(event):  # False: the webhook got there since it was checked (stored once either way)
            report.ingested.append(event["id"])
    _print(args, context, report)
    if report.needs_a_person:
        raise OperationFailed(f"{len(report.needs_a_person)} status/refund mismatch(es) need a person (the state "
                              "machine refuses to move those payments backwards); see docs/runbooks/reconcile.md")
    return EXIT_DONE


def _print(args: Any, context: Context, report: Report) -> None:
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print_report(context.console, report, args.examples)
