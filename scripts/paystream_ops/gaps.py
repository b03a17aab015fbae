"""`paystream-ops gaps`: what the platform stored but has not finished with, read from the transactions table.

- **Never relayed**: events without `relayed_at` (the outbox relay sets it once the bus accepted the event;
  docs/payments-core.md) and webhook inbox items without `processing_status` (the relay does not mark
  inbox items: process_payment's recorded outcome shows the webhook went through; `paystream.relay.unpublished`),
  stored longer ago than `--grace` (the relay normally publishes within a second or two; younger ones are in
  flight). `paystream-ops replay --source table` publishes them.
- **Projections behind**: a payment whose projection is missing or whose `last_sequence` is below its last
  event's sequence (a write that should be impossible: event and projection go in one transaction; it
  shows a bug or a hand edit). `paystream-ops rebuild` fixes them.
- **Stuck payments**: projections in a non-terminal status (created, queued, processing, requires_action,
  review) not updated for longer than `--stuck-after`.
- **Relay latency**: the distribution of stored → relayed (event `occurred_at` to `relayed_at`) over the
  relayed events of the last `--latency-window`.

One parallel Scan of the table (paystream_ops.table), eventually consistent: an item written during the
scan may be missed or seen half-relayed, which the grace period absorbs. Exit 3 when any gap is found.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from paystream_ops.common import EXIT_DONE, EXIT_FOUND, Context, iso, parse_duration, progress
from paystream_ops.table import TableSnapshot, instant, scan, snapshot

NON_TERMINAL = ("created", "queued", "processing", "requires_action", "review")
DEFAULT_GRACE = "2m"
DEFAULT_STUCK_AFTER = "15m"
DEFAULT_LATENCY_WINDOW = "24h"
EXAMPLES = 10


@dataclass
class Unrelayed:
    kind: str  # event | stripe_event
    event_id: str
    event_type: str
    transaction_id: str | None
    stored_at: str
    age_seconds: float


@dataclass
class Behind:
    transaction_id: str
    projection_sequence: int | None  # None: no projection at all
    last_event_sequence: int
    missing_events: int


@dataclass
class Stuck:
    transaction_id: str
    status: str
    updated_at: str
    age_seconds: float


@dataclass
class Report:
    scanned_items: int
    payments: int
    events: int
    stripe_events: int
    unrelayed: list[Unrelayed] = field(default_factory=list)
    behind: list[Behind] = field(default_factory=list)
    stuck: list[Stuck] = field(default_factory=list)
    relay_latency_ms: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def has_gaps(self) -> bool:
        return bool(self.unrelayed or self.behind or self.stuck)


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def find_gaps(table: TableSnapshot, now: datetime, grace: timedelta, stuck_after: timedelta,
              latency_window: timedelta) -> Report:
    report = Report(table.items_read, len(table.payments), table.event_count, len(table.stripe_events))
    latencies: list[float] = []

    from paystream.relay import unpublished

    def check_relay(kind: str, item: dict, stored: datetime | None, transaction_id: str | None) -> None:
        if stored is None:
            return
        if unpublished(item):
            if now - stored > grace:
                report.unrelayed.append(Unrelayed(kind, str(item.get("event_id")), str(item.get("event_type")),
                                                  transaction_id, iso(stored), round((now - stored).total_seconds(), 1)))
            return
        relayed = instant(item.get("relayed_at"))  # events only: inbox items carry no relay mark
        if relayed is not None and now - stored <= latency_window:
            latencies.append(max(0.0, (relayed - stored).total_seconds() * 1000))

    for transaction_id, payment in table.payments.items():
        for event in payment.events:
            check_relay("event", event, instant(event.get("occurred_at")), transaction_id)
        last_event = max((int(event.get("sequence") or 0) for event in payment.events), default=0)
        projection = payment.projection
        stored_sequence = int(projection["last_sequence"]) if projection and "last_sequence" in projection else None
        if last_event and (stored_sequence is None or stored_sequence < last_event):
            report.behind.append(Behind(transaction_id, stored_sequence, last_event, last_event - (stored_sequence or 0)))
        if projection and projection.get("status") in NON_TERMINAL:
            updated = instant(projection.get("updated_at"))
            if updated is not None and now - updated > stuck_after:
                report.stuck.append(Stuck(transaction_id, projection["status"], projection["updated_at"],
                                          round((now - updated).total_seconds(), 1)))
    for item in table.stripe_events:
        check_relay("stripe_event", item, instant(item.get("received_at")), item.get("transaction_id"))

    report.unrelayed.sort(key=lambda gap: gap.stored_at)
    report.stuck.sort(key=lambda gap: gap.updated_at)
    latencies.sort()
    report.relay_latency_ms = {
        "count": len(latencies),
        **{name: (round(value, 1) if value is not None else None)
           for name, value in (("p50", percentile(latencies, 0.50)), ("p95", percentile(latencies, 0.95)),
                               ("p99", percentile(latencies, 0.99)), ("max", latencies[-1] if latencies else None))},
    }
    return report


# ------------------------------------------------------------------------------------------------ command line


def register(commands_root: Any, common: dict) -> None:
    gaps = commands_root.add_parser(
        "gaps", help="events never relayed, projections behind their events, stuck payments, relay latency "
                     "(exit 3 if any gap)",
        description="Read the whole transactions table (one parallel Scan) and list what is stored but not "
                    "finished with: events never relayed to the bus and webhook inbox items never processed (fix: "
                    "replay --source table), projections missing or behind their events (fix: rebuild), payments in a "
                    "non-terminal status (created, queued, processing, requires_action, review) not updated for "
                    "longer than --stuck-after (see docs/runbooks/), and the stored-to-relayed latency "
                    "distribution. Changes nothing.", **common)
    gaps.add_argument("--grace", type=parse_duration, default=parse_duration(DEFAULT_GRACE), metavar="DURATION",
                      help=f"an unrelayed item younger than this is in flight, not a gap (default {DEFAULT_GRACE})")
    gaps.add_argument("--stuck-after", type=parse_duration, default=parse_duration(DEFAULT_STUCK_AFTER),
                      metavar="DURATION", help=f"non-terminal for longer than this is stuck (default {DEFAULT_STUCK_AFTER})")
    gaps.add_argument("--latency-window", type=parse_duration, default=parse_duration(DEFAULT_LATENCY_WINDOW),
                      metavar="DURATION", help="the latency distribution covers items stored within this "
                                               f"(default {DEFAULT_LATENCY_WINDOW})")
    gaps.add_argument("--json", action="store_true", help="print the whole report as JSON (for scripts)")
    gaps.set_defaults(handler=handle)


def handle(args: Any, context: Context) -> int:
    bar, task = progress(None, "scanning the transactions table")
    with bar:
        items = scan(context.environment, on_page=lambda n: bar.update(task, advance=n))
    report = find_gaps(snapshot(items), context.now, args.grace, args.stuck_after, args.latency_window)
    if args.json:
        print(json.dumps(asdict(report) | {"has_gaps": report.has_gaps}, indent=2))
    else:
        _print(report, context.console, args)
    return EXIT_FOUND if report.has_gaps else EXIT_DONE


def _print(report: Report, console: Any, args: Any) -> None:
    from rich.table import Table

    console.print(f"scanned {report.scanned_items} items: {report.payments} payments, {report.events} events, "
                  f"{report.stripe_events} webhook inbox items")
    summary = Table(title="gaps")
    for column in ("kind", "count", "fix"):
        summary.add_column(column)
    summary.add_row("never relayed", str(len(report.unrelayed)), "paystream-ops replay --source table --from --to")
    summary.add_row("projections behind", str(len(report.behind)), "paystream-ops rebuild")
    summary.add_row(f"stuck > {args.stuck_after}", str(len(report.stuck)), "docs/runbooks/gaps.md")
    console.print(summary)
    if report.unrelayed:
        table = Table(title=f"never relayed (oldest {min(EXAMPLES, len(report.unrelayed))} of {len(report.unrelayed)})")
        for column in ("stored at", "age s", "kind", "type", "event id", "transaction"):
            table.add_column(column)
        for gap in report.unrelayed[:EXAMPLES]:
            table.add_row(gap.stored_at, f"{gap.age_seconds:.0f}", gap.kind, gap.event_type, gap.event_id,
                          gap.transaction_id or "")
        console.print(table)
    if report.behind:
        table = Table(title=f"projections behind their events ({len(report.behind)})")
        for column in ("transaction", "projection at", "last event", "missing"):
            table.add_column(column)
        for gap in report.behind[:EXAMPLES]:
            table.add_row(gap.transaction_id, "none" if gap.projection_sequence is None else str(gap.projection_sequence),
                          str(gap.last_event_sequence), str(gap.missing_events))
        console.print(table)
    if report.stuck:
        by_status: dict[str, int] = {}
        for gap in report.stuck:
            by_status[gap.status] = by_status.get(gap.status, 0) + 1
        table = Table(title="stuck payments: " + ", ".join(f"{status} {n}" for status, n in sorted(by_status.items())))
        for column in ("transaction", "status", "updated at", "age s"):
            table.add_column(column)
        for gap in report.stuck[:EXAMPLES]:
            table.add_row(gap.transaction_id, gap.status, gap.updated_at, f"{gap.age_seconds:.0f}")
        console.print(table)
    latency = report.relay_latency_ms
    console.print(f"stored → relayed over the last {args.latency_window}: {latency['count']} items; "
                  + ", ".join(f"{name} {latency[name]} ms" for name in ("p50", "p95", "p99", "max")))
    console.print("gaps found" if report.has_gaps else "no gaps")
