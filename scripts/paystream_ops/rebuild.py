"""`paystream-ops rebuild`: every payment's projection folded again from its events (issue 7, item 3).

Runbook: docs/runbooks/rebuild.md. The events are the truth (DESIGN.md: "projection rebuilt at will"); a
projection is only a cache of `paystream.states.rebuild(events)`. This command reads the whole table with one
parallel Scan (`paystream_ops.table`), folds each payment's events in memory, batch by batch, and compares
the result with the stored projection field by field:

    missing     events but no projection
    behind      the projection's last_sequence is below the last event's
    different   same last_sequence, some field differs (a projection-logic fix, a corrupted item)
    unreadable  events that do not parse or do not fold, or a projection ahead of its events: reported,
                never written (a person must look)

A Scan is eventually consistent and not a point-in-time read: a payment that was being written while it was
scanned can look missing, behind or unreadable (a gap). Before being reported, a missing or behind one is
confirmed with a consistent read of its projection (BatchGetItem: still as scanned means really so), and an
unreadable one, or one whose projection moved, is read again whole with a consistent Query and re-examined.

Applying writes only the changed projections, each with `EventStore.replace_projection` guarded by the
stored `last_sequence` (or by the projection's absence): a payment that got a new event since it was read is
skipped and reported ("changed while rebuilding: run again", exit 1), never overwritten with an older state.
An interrupted apply leaves some projections rebuilt and the rest as they were: running it again finishes.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from pydantic import ValidationError

from paystream_ops.common import EXIT_DONE, EXIT_FOUND, Context, OperationFailed, Refused, positive_int, progress
from paystream_ops.table import PaymentItems

CHANGE_KINDS = ("missing", "behind", "different")
# Key and index attributes of the projection item (paystream.store.projection_item): derived from the fields
# compared, so they are rewritten with them and never compared themselves.
NOT_COMPARED = frozenset({"pk", "sk", "item_type", "customer_pk", "status_pk"})
BATCH_PAYMENTS = 1000  # payments folded per batch (one progress step each)
WRITERS = 8  # parallel guarded writes: each is one small TransactWriteItems
CONFIRMATION = "rebuild"


@dataclass
class Finding:
    """One payment whose stored projection is not what its events fold to (or whose events cannot be folded)."""

    transaction_id: str
    kind: str  # missing | behind | different | unreadable
    stored_last_sequence: int | None = None  # the write's guard (None: no projection stored)
    rebuilt: Any = None  # paystream.models.Projection; None when unreadable
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field: (stored, rebuilt)
    reason: str = ""


@dataclass
class Report:
    payments: int = 0
    events: int = 0
    seconds: float = 0.0
    read_seconds: float = 0.0  # of which reading the table (the rest: folding and comparing)
    recheck_seconds: float = 0.0  # consistent re-reads of what a concurrent write can explain
    findings: list[Finding] = field(default_factory=list)

    @property
    def changes(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in CHANGE_KINDS]

    @property
    def unreadable(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "unreadable"]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------------------------------------ fold + compare


def _stored_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The stored projection as the model dumps it; a projection the model refuses (a corrupted item) as its
    raw attributes, so the difference still shows field by field."""
    from paystream.models import Projection

    try:
        return Projection.model_validate(item).model_dump(mode="json", exclude_none=True)
    except ValidationError:
        return {k: v for k, v in item.items() if k not in NOT_COMPARED and v is not None}


def _sequence(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def examine(payment: PaymentItems) -> Finding | None:
    """None when the stored projection is exactly what the events fold to, else what differs."""
    from paystream.models import PaymentEvent
    from paystream.states import rebuild

    tid, stored = payment.transaction_id, payment.projection
    stored_sequence = _sequence(stored.get("last_sequence")) if stored is not None else None
    if not payment.events:
        if stored is None:
            return None  # nothing stored (a re-read of a payment that is gone)
        return Finding(tid, "unreadable", stored_sequence, reason="a projection without any event")
    try:
        rebuilt = rebuild(PaymentEvent.model_validate(item) for item in payment.events)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return Finding(tid, "unreadable", stored_sequence, reason=f"an event does not parse: {where}: {first['msg']}")
    except (ValueError, KeyError, TypeError) as exc:  # UnknownEventType is a ValueError; KeyError: detail lacks a field
        return Finding(tid, "unreadable", stored_sequence, reason=f"the events do not fold: {type(exc).__name__}: {exc}")
    if stored is None:
        return Finding(tid, "missing", None, rebuilt, {"(projection)": (
            None, f"status {rebuilt.status.value}, last_sequence {rebuilt.last_sequence}")})
    if stored_sequence is None:  # corrupted guard attribute: the guarded write cannot name it
        return Finding(tid, "unreadable", None,
                       reason=f"the stored projection's last_sequence is {stored.get('last_sequence')!r}, not a number")
    if stored_sequence > rebuilt.last_sequence:
        return Finding(tid, "unreadable", stored_sequence,
                       reason=f"the projection is at sequence {stored_sequence} but the events end at "
                              f"{rebuilt.last_sequence} (events missing?): not rewritten backwards")
    before, after = _stored_fields(stored), rebuilt.model_dump(mode="json", exclude_none=True)
    fields = {name: (before.get(name), after.get(name)) for name in sorted(set(before) | set(after))
              if before.get(name) != after.get(name)}
    if not fields:
        return None
    kind = "behind" if stored_sequence < rebuilt.last_sequence else "different"
    return Finding(tid, kind, stored_sequence, rebuilt, fields)


def _racy(finding: Finding) -> bool:
    """What a Scan that ran while the payment was being written can show without anything being wrong: its
    segments are read at different moments, so a new payment's projection can be seen without its events (or
    the reverse), an append's event without its projection, or a later event without an earlier one."""
    return finding.kind != "different"


def read_payment(table: Any, transaction_id: str) -> PaymentItems:
    """One payment's projection and events, with one consistent Query (what `EventStore.load` reads, also
    when the projection is missing)."""
    from paystream.store import PROJECTION_SK, partition_key

    payment = PaymentItems(transaction_id)
    for item in table.query_partition(partition_key(transaction_id)):
        if item.get("item_type") == "event":
            payment.events.append(item)
        elif item.get("sk") == PROJECTION_SK:
            payment.projection = item
    payment.events.sort(key=lambda item: int(item.get("sequence") or 0))
    return payment


def analyse(payments: Iterable[PaymentItems], count: int, table: Any, *, recheck: bool,
            projections: Callable[[list[str]], dict[str, int | None]] | None = None) -> Report:
    """Fold and compare every payment, BATCH_PAYMENTS at a time; with `recheck`, findings a concurrent write
    can explain are confirmed with a consistent read first (`projections`: the stored last_sequence of
    payments' projections now, None where there is none)."""
    report, started = Report(), time.monotonic()
    bar, task = progress(count, "folding events")
    batch: list[PaymentItems] = []
    with bar:

        def fold(batch: list[PaymentItems]) -> None:
            for payment in batch:
                report.payments += 1
                report.events += len(payment.events)
                finding = examine(payment)
                if finding is not None:
                    report.findings.append(finding)
            bar.advance(task, len(batch))

        for payment in payments:
            batch.append(payment)
            if len(batch) >= BATCH_PAYMENTS:
                fold(batch)
                batch = []
        fold(batch)
    if recheck:
        recheck_started = time.monotonic()
        racy = [f for f in report.findings if _racy(f)]
        if racy and projections is not None:
            # A missing or behind projection whose item is still as the Scan saw it is really so (the events
            # seen are stored for good): one consistent BatchGetItem per 100 instead of a Query each.
            now = projections([f.transaction_id for f in racy if f.kind in ("missing", "behind")])
            racy = [f for f in racy if f.kind == "unreadable" or now.get(f.transaction_id) != f.stored_last_sequence]
        if racy:
            with ThreadPoolExecutor(max_workers=WRITERS) as pool:
                again = dict(zip((f.transaction_id for f in racy),
                                 pool.map(lambda f: examine(read_payment(table, f.transaction_id)), racy)))
            report.findings = [again[f.transaction_id] if f.transaction_id in again else f for f in report.findings]
            report.findings = [f for f in report.findings if f is not None]
        report.recheck_seconds = time.monotonic() - recheck_started
    report.seconds = time.monotonic() - started
    return report


# ----------------------------------------------------------------------------------------------- reading


def projection_sequences(client: Any, table_name: str, transaction_ids: list[str]) -> dict[str, int | None]:
    """The stored projections' last_sequence now (None: no projection), consistent BatchGetItems of 100."""
    from paystream.adapters.dynamodb_store import deserialize
    from paystream.store import PROJECTION_SK, partition_key

    found: dict[str, int | None] = dict.fromkeys(transaction_ids)
    for start in range(0, len(transaction_ids), 100):
        keys = [{"pk": {"S": partition_key(tid)}, "sk": {"S": PROJECTION_SK}} for tid in transaction_ids[start:start + 100]]
        request = {table_name: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk, last_sequence"}}
        while request:
            page = client.batch_get_item(RequestItems=request)
            for item in map(deserialize, page.get("Responses", {}).get(table_name, [])):
                found[item["pk"][len("TXN#"):]] = _sequence(item.get("last_sequence"))
            request = page.get("UnprocessedKeys") or {}
    return found


def read_all(context: Context) -> tuple[list[PaymentItems], float]:
    """Every payment of the table (one parallel Scan), with a progress bar; and the Scan's seconds."""
    from paystream_ops.table import scan, snapshot

    environment = context.environment
    client = environment.client("dynamodb")
    try:  # DynamoDB's item count is refreshed about every 6 hours: the bar's total is an estimate
        total = client.describe_table(TableName=environment.need("table_names", "transactions"))["Table"].get("ItemCount")
    except Exception:  # noqa: BLE001 - only the bar's total; the Scan reports real errors
        total = None
    bar, task = progress(total or None, "scanning transactions")
    started = time.monotonic()
    with bar:
        items = scan(environment, ["event", "projection"], on_page=lambda n: bar.advance(task, n), client=client)
    seconds = time.monotonic() - started
    return list(snapshot(items).payments.values()), seconds


# ------------------------------------------------------------------------------------------------ writing


@dataclass
class Applied:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # got a new event (or projection) since it was read
    failed: list[tuple[str, str]] = field(default_factory=list)


def write_changes(store: Any, changes: list[Finding]) -> Applied:
    """Each changed projection written with its guard, WRITERS at a time, with a progress bar."""
    from paystream.store import ConcurrentAppendError, EventStoreError

    result = Applied()
    bar, task = progress(len(changes), "writing projections")

    def write(finding: Finding) -> tuple[str, str, str]:
        try:
            store.replace_projection(finding.transaction_id, finding.stored_last_sequence, finding.rebuilt)
            return finding.transaction_id, "written", ""
        except ConcurrentAppendError:
            return finding.transaction_id, "skipped", ""
        except EventStoreError as exc:
            return finding.transaction_id, "failed", str(exc)

    with bar, ThreadPoolExecutor(max_workers=WRITERS) as pool:
        for transaction_id, outcome, message in pool.map(write, changes):
            if outcome == "written":
                result.written.append(transaction_id)
            elif outcome == "skipped":
                result.skipped.append(transaction_id)
            else:
                result.failed.append((transaction_id, message))
            bar.advance(task)
    return result


# ----------------------------------------------------------------------------------------------- printing


def _short(value: Any, width: int = 60) -> str:
    text = "(absent)" if value is None else str(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def print_report(console: Any, report: Report, examples: int, dry_run: bool) -> None:
    from collections import Counter

    from rich.table import Table

    summary = Table(title="rebuild" + (" (dry run: nothing written)" if dry_run else ""), show_header=False)
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("payments scanned", str(report.payments))
    summary.add_row("events folded", str(report.events))
    summary.add_row("seconds (read + fold)", f"{report.seconds:.2f} ({report.read_seconds:.2f} reading)")
    summary.add_row("events/s", f"{report.events_per_second:,.0f}")
    verb = "would change" if dry_run else "to change"
    kinds = Counter(f.kind for f in report.findings)
    for kind in CHANGE_KINDS:
        summary.add_row(f"{verb}: {kind}", str(kinds[kind]))
    summary.add_row("unreadable (never written)", str(kinds["unreadable"]))
    console.print(summary)

    by_field = Counter(name for f in report.changes for name in f.fields)
    if by_field:
        table = Table(title=f"fields that {'would change' if dry_run else 'change'}")
        table.add_column("field")
        table.add_column("payments", justify="right")
        for name, count in by_field.most_common():
            table.add_row(name, str(count))
        console.print(table)
    if report.changes and examples:
        table = Table(title=f"examples (up to {examples})")
        table.add_column("transaction_id")
        table.add_column("kind")
        table.add_column("field: stored → rebuilt")
        for finding in report.changes[:examples]:
            lines = [f"{name}: {_short(old)} → {_short(new)}" for name, (old, new) in finding.fields.items()]
            table.add_row(finding.transaction_id, finding.kind, "\n".join(lines))
        console.print(table)
    if report.unreadable:
        table = Table(title="unreadable (never written: look at these events; docs/runbooks/rebuild.md)")
        table.add_column("transaction_id")
        table.add_column("reason")
        for finding in report.unreadable[:max(examples, 20)]:
            table.add_row(finding.transaction_id, finding.reason)
        console.print(table)
        if len(report.unreadable) > max(examples, 20):
            console.print(f"… and {len(report.unreadable) - max(examples, 20)} more unreadable")


# ------------------------------------------------------------------------------------------------ command


def run(context: Context, payment_ids: list[str] | None, examples: int,
        confirm: Callable[[str], bool] | None = None) -> int:
    from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
    from paystream.store import EventStore

    environment = context.environment
    table = DynamoDBTransactionsTable(environment.client("dynamodb"), environment.need("table_names", "transactions"))
    if payment_ids:
        started = time.monotonic()
        payments = [read_payment(table, tid) for tid in dict.fromkeys(payment_ids)]
        unknown = [p.transaction_id for p in payments if p.projection is None and not p.events]
        if unknown:
            raise Refused(f"no such payment: {', '.join(unknown)} (nothing stored under it)")
        report = analyse(payments, len(payments), table, recheck=False)  # consistent reads already
        fold_seconds = report.seconds
        report.seconds = time.monotonic() - started  # with the Queries
        report.read_seconds = report.seconds - fold_seconds
    else:
        payments, scan_seconds = read_all(context)
        client, table_name = environment.client("dynamodb"), environment.need("table_names", "transactions")
        report = analyse(payments, len(payments), table, recheck=True,
                         projections=lambda ids: projection_sequences(client, table_name, ids))
        report.seconds += scan_seconds
        report.read_seconds = scan_seconds + report.recheck_seconds
    print_report(context.console, report, examples, context.dry_run)

    changes = report.changes
    if context.dry_run:
        return EXIT_FOUND if changes or report.unreadable else EXIT_DONE
    if changes:
        asked = confirm or (lambda prompt: context.confirm(prompt, CONFIRMATION))
        if not asked(f"Rewrite {len(changes)} projection(s) from their events? Type '{CONFIRMATION}' to confirm: "):
            raise OperationFailed("not confirmed: nothing written")
        started = time.monotonic()
        result = write_changes(EventStore(table), changes)
        seconds = time.monotonic() - started
        context.console.print(f"{len(result.written)} projection(s) rebuilt in {seconds:.2f} s; "
                              f"{report.payments - len(changes)} already matched their events (not written)")
    else:
        result = Applied()
        context.console.print("every projection matches its events: nothing written")
    problems = []
    if result.skipped:
        problems.append(f"{len(result.skipped)} changed while rebuilding: run again "
                        f"({', '.join(result.skipped[:10])}{' …' if len(result.skipped) > 10 else ''})")
    if result.failed:
        problems.append(f"{len(result.failed)} write(s) failed: {result.failed[0][0]}: {result.failed[0][1]} "
                        "(run again)")
    if report.unreadable:
        problems.append(f"{len(report.unreadable)} unreadable payment(s) not rebuilt "
                        "(see docs/runbooks/rebuild.md)")
    if problems:
        raise OperationFailed("; ".join(problems))
    return EXIT_DONE


def register(commands_root: Any, common: dict) -> None:
    """`paystream-ops rebuild [--payment ID ...] [--dry-run] [--yes] [--examples N]` (see paystream_ops.common)."""
    p = commands_root.add_parser(
        "rebuild", help="rebuild projections from their events (exit 3 with --dry-run when any differs)",
        description="Fold every payment's events again (paystream.states.rebuild) and compare with the stored "
                    "projection field by field: missing (events, no projection), behind (projection before the "
                    "last event), different (same sequence, fields differ), unreadable (events that do not parse "
                    "or fold: reported, never written). Applying writes only the changed projections, each "
                    "guarded by the last_sequence it was read at: a payment that got a new event meanwhile is "
                    "skipped ('changed while rebuilding: run again', exit 1). Run it after a fix to the "
                    "projection logic, on a corrupted projection, or when `gaps` lists projections behind; "
                    "runbook: docs/runbooks/rebuild.md.", **common)
    p.add_argument("--payment", action="append", metavar="ID", dest="payments",
                   help="only this payment (repeatable); read with a consistent Query, no Scan")
    p.add_argument("--examples", type=_examples, default=5, metavar="N",
                   help="differences shown as field: stored → rebuilt (default 5; 0 for none)")
    p.add_argument("--dry-run", action="store_true", help="show what would change, change nothing (exit 3 if any)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=handle)


def _examples(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def handle(args: Any, context: Context) -> int:
    return run(context, args.payments, args.examples)
