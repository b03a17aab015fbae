"""`paystream-ops replay`: deliver a time window's events again, from the bus archive or from the table.

- `--source archive` (default): EventBridge StartReplay of the bus's archive (Terraform's event_bus module
  archives every event) for [--from, --to] into the bus, then DescribeReplay polled until the replay
  ends, with progress as the share of the window replayed. For consumers that missed or mishandled events
  that did reach the bus (a consumer bug fixed since, a rule added later). StartReplay cannot filter
  events, only choose rules (Destination.FilterArns), so `--pattern` picks the rules that events matching
  it reach (found from the window's events in the table): every archived event of the window that those
  rules match is delivered to them again. Consumers are idempotent on the event's data (event_id,
  the state machine), so the extra deliveries change nothing. Events reach the archive a few minutes after
  the bus (AWS): replay a window that ended at least that long ago.
- `--source table`: the events and webhook inbox items stored in the window that never got through
  (`paystream.relay.unpublished`, what `gaps` lists: an event without `relayed_at`; an inbox item without the
  `processing_status` process_payment records, since the relay does not mark inbox items), published now by
  the relay's own code (paystream.relay.OutboxRelay: same entries, same fraud-stream records, same order per
  payment, events marked `relayed_at` afterwards; a webhook counts as through once process_payment has
  recorded its outcome, and publishing one again is harmless: the state machine appends nothing twice).
  `--all` re-publishes the rest of the window too (e.g. the archive is gone). For a relay outage whose stream records are lost (past the stream's 24 h, or skipped to the
  relay's on-failure destination). While the relay still has the records (its mapping disabled, or
  failing and retrying), fix the relay first: it catches up by itself, and a replay from the table before
  that would publish those events twice (harmless, but noisy).

Both change what consumers receive: `--dry-run` shows what would be sent; otherwise a typed confirmation
unless `--yes`. An interrupted archive replay is cancelled (CancelReplay); run it again for the window.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable

from paystream_ops.common import (EXIT_DONE, Context, OperationFailed, Refused, iso, parse_duration, parse_time,
                                  progress)
from paystream_ops.table import instant, scan


def _unpublished(item: dict) -> bool:
    from paystream.relay import unpublished

    return unpublished(item)

CONFIRMATION = "replay"
POLL_SECONDS = 2.0
RELAY_BATCH = 100  # stream records per OutboxRelay.relay call (Lambda's batch size for the relay is 100)
DONE_STATES = {"COMPLETED", "FAILED", "CANCELLED"}


# ------------------------------------------------------------------------------------------------ the window's events


def stored_at(item: dict) -> datetime | None:
    return instant(item.get("occurred_at") if item.get("item_type") == "event" else item.get("received_at"))


def as_stream_record(item: dict, position: int) -> dict:
    """The INSERT stream record the relay would have received for `item` (NEW_IMAGE, typed attributes)."""
    from paystream.adapters.dynamodb_store import serialize

    sequence_number = f"{position:021d}"
    image = serialize({k: v for k, v in item.items() if k not in ("relayed_at", "bus_event_id",
                                                                   "fraud_stream_sequence_number")})
    return {"eventName": "INSERT", "dynamodb": {"Keys": {"pk": image["pk"], "sk": image["sk"]},
                                                "NewImage": image, "SequenceNumber": sequence_number}}


def envelope(entry: dict) -> dict:
    """A PutEvents entry as an event pattern sees it."""
    return {"source": entry["Source"], "detail-type": entry["DetailType"], "detail": json.loads(entry["Detail"])}


def compile_pattern(text: str | None) -> dict | None:
    """The --pattern JSON, checked with the same rules as EventBridge patterns (Refused when invalid)."""
    if text is None:
        return None
    from localdev.dataplane.filters import FilterError, FilterSet

    try:
        pattern = json.loads(text)
    except ValueError as exc:
        raise Refused(f"--pattern is not JSON ({exc})") from None
    if not isinstance(pattern, dict) or not pattern:
        raise Refused("--pattern must be a non-empty JSON object (an EventBridge event pattern)")
    try:
        FilterSet({"Filters": [{"Pattern": json.dumps(pattern)}]})
    except FilterError as exc:
        raise Refused(f"--pattern is not a valid event pattern: {exc}") from None
    return pattern


def matches(pattern: dict | None, event: dict) -> bool:
    from localdev.dataplane.filters import matches_pattern

    return pattern is None or matches_pattern(pattern, event)


def window_events(items: list[dict], start: datetime, end: datetime, pattern: dict | None,
                  relayed: Callable[[dict], bool]) -> tuple[list[tuple[dict, Any]], list[str]]:
    """The stored items of [start, end] that `relayed` keeps and `pattern` matches, as (stream record,
    paystream.relay.Outgoing) in the order they were stored; and why the unpublishable ones cannot go."""
    from paystream.relay import Unpublishable, to_outgoing

    chosen, unpublishable = [], []
    in_window = [(at, item) for item in items if (at := stored_at(item)) is not None and start <= at <= end]
    in_window.sort(key=lambda pair: (pair[0], int(pair[1].get("sequence") or 0)))
    for position, (_, item) in enumerate(in_window):
        if not relayed(item):
            continue
        record = as_stream_record(item, position)
        try:
            outgoing = to_outgoing(record)
        except Unpublishable as exc:
            unpublishable.append(str(exc))
            continue
        if outgoing is not None and matches(pattern, envelope(outgoing.entry)):
            chosen.append((record, outgoing))
    return chosen, unpublishable


# ------------------------------------------------------------------------------------------------ from the table


def replay_from_table(context: Context, start: datetime, end: datetime, pattern: dict | None,
                      include_relayed: bool) -> int:
    environment, console = context.environment, context.console
    bar, task = progress(None, "scanning the transactions table")
    with bar:
        items = scan(environment, ["event", "stripe_event"], on_page=lambda n: bar.update(task, advance=n))
    chosen, unpublishable = window_events(items, start, end, pattern,
                                          (lambda item: True) if include_relayed else _unpublished)
    what = "stored events" if include_relayed else "stored events never relayed"
    _summary(console, f"{what} from {iso(start)} to {iso(end)}" + (" matching the pattern" if pattern else ""),
             [outgoing for _, outgoing in chosen])
    for reason in unpublishable[:5]:
        console.print(f"[red]cannot be published[/red]: {reason}")
    if not chosen:
        console.print("nothing to publish")
        return _unpublishable_outcome(unpublishable)
    if context.dry_run:
        console.print(f"dry run: {len(chosen)} event(s) would be published to the bus (nothing sent)")
        return EXIT_DONE
    if not context.confirm(f"publish {len(chosen)} event(s) to the bus? type '{CONFIRMATION}' to go on: ",
                           CONFIRMATION):
        raise OperationFailed("not confirmed: nothing published")

    from paystream.adapters.publishers import EventBusPublisher, FraudStreamPublisher, RelayMarks
    from paystream.relay import OutboxRelay

    relay = OutboxRelay(EventBusPublisher(environment.client("events"), environment.need("bus_name")),
                        FraudStreamPublisher(environment.client("kinesis"), environment.need("stream_name")),
                        RelayMarks(environment.client("dynamodb"), environment.need("table_names", "transactions")))
    published = 0
    bar, task = progress(len(chosen), "publishing")
    with bar:
        for first in range(0, len(chosen), RELAY_BATCH):
            outcome = relay.relay([record for record, _ in chosen[first:first + RELAY_BATCH]])
            published += len(outcome.published)
            bar.update(task, advance=len(outcome.published))
            if outcome.failures:
                raise OperationFailed(
                    f"{published} of {len(chosen)} published; stopped at a failure: {outcome.failures[0].reason}. "
                    "Run the same command again: events published are marked relayed and are not sent again")
    console.print(f"published {published} event(s); events are marked relayed, webhooks count once processed "
                  "(`paystream-ops gaps` then no longer lists them)")
    return _unpublishable_outcome(unpublishable)


def _unpublishable_outcome(unpublishable: list[str]) -> int:
    if unpublishable:
        raise OperationFailed(f"{len(unpublishable)} stored item(s) of the window can never be published as stored "
                              f"(first: {unpublishable[0]}); see docs/runbooks/gaps.md")
    return EXIT_DONE


def _summary(console: Any, title: str, outgoing: list[Any]) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("detail-type")
    table.add_column("events", justify="right")
    table.add_column("also to the fraud stream", justify="right")
    kinds = Counter(item.entry["DetailType"] for item in outgoing)
    to_stream = Counter(item.entry["DetailType"] for item in outgoing if item.stream_record is not None)
    for kind, count in sorted(kinds.items()):
        table.add_row(kind, str(count), str(to_stream.get(kind, 0)))
    table.add_row("total", str(len(outgoing)), str(sum(to_stream.values())))
    console.print(table)


# ------------------------------------------------------------------------------------------------ from the archive


def bus_rules(events: Any, bus_name: str) -> list[dict]:
    """The bus's own rules (not the managed rule an archive adds)."""
    rules, token = [], None
    while True:
        page = events.list_rules(EventBusName=bus_name, **({"NextToken": token} if token else {}))
        rules.extend(rule for rule in page.get("Rules", []) if not rule.get("ManagedBy"))
        token = page.get("NextToken")
        if not token:
            return rules


def rules_reached(rules: list[dict], sample_events: list[dict]) -> list[dict]:
    """The rules whose event pattern matches at least one of `sample_events`."""
    from localdev.dataplane.filters import matches_pattern

    reached = []
    for rule in rules:
        pattern = json.loads(rule.get("EventPattern") or "null")
        if isinstance(pattern, dict) and any(matches_pattern(pattern, event) for event in sample_events):
            reached.append(rule)
    return reached


def replay_from_archive(context: Context, start: datetime, end: datetime, pattern: dict | None, name: str | None,
                        timeout: timedelta, sleep: Callable[[float], None] = time.sleep,
                        clock: Callable[[], float] = time.monotonic) -> int:
    environment, console = context.environment, context.console
    events = environment.client("events")
    bus_name = environment.need("bus_name")
    bus_arn = events.describe_event_bus(Name=bus_name)["Arn"]
    archive_name = environment.outputs.get("archive_name")
    if not archive_name:
        archives = events.list_archives(EventSourceArn=bus_arn).get("Archives", [])
        if not archives:
            raise Refused(f"the bus {bus_name} has no archive to replay from")
        archive_name = archives[0]["ArchiveName"]
    archive = events.describe_archive(ArchiveName=archive_name)
    rules = bus_rules(events, bus_name)
    chosen = rules
    if pattern is not None:
        items = scan(environment, ["event", "stripe_event"])
        sample, _ = window_events(items, start, end, pattern, lambda item: not _unpublished(item))
        chosen = rules_reached(rules, [envelope(outgoing.entry) for _, outgoing in sample])
        console.print(f"{len(sample)} relayed event(s) of the window match the pattern; they reach "
                      f"{len(chosen)} of the bus's {len(rules)} rule(s). StartReplay cannot filter events: every "
                      "archived event of the window these rules match is delivered to them again.")
        if not chosen:
            console.print("nothing to replay: no rule receives events matching the pattern in this window")
            return EXIT_DONE
    _rules_table(console, f"archive {archive_name} ({archive.get('EventCount', '?')} events kept) → bus {bus_name}, "
                          f"{iso(start)} to {iso(end)}", chosen)
    if context.dry_run:
        console.print("dry run: no replay started")
        return EXIT_DONE
    if not context.confirm(f"replay the window to {len(chosen)} rule(s)? type '{CONFIRMATION}' to go on: ",
                           CONFIRMATION):
        raise OperationFailed("not confirmed: no replay started")
    replay_name = name or f"paystream-ops-{context.now:%Y%m%d-%H%M%S}"
    destination: dict[str, Any] = {"Arn": bus_arn}
    if pattern is not None:
        destination["FilterArns"] = [rule["Arn"] for rule in chosen]
    events.start_replay(ReplayName=replay_name, EventSourceArn=archive["ArchiveArn"], EventStartTime=start,
                        EventEndTime=end, Destination=destination)
    console.print(f"replay {replay_name} started")
    return _follow(events, replay_name, start, end, timeout, console, sleep, clock)


def _rules_table(console: Any, title: str, rules: list[dict]) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("rule")
    table.add_column("pattern")
    for rule in rules:
        table.add_row(rule["Name"], rule.get("EventPattern") or "")
    console.print(table)


def _follow(events: Any, replay_name: str, start: datetime, end: datetime, timeout: timedelta, console: Any,
            sleep: Callable[[float], None], clock: Callable[[], float]) -> int:
    """Poll DescribeReplay until the replay ends; progress = how far into the window it has replayed."""
    window = max(1.0, (end - start).total_seconds())
    deadline = clock() + timeout.total_seconds()
    bar, task = progress(100, f"replay {replay_name} (% of the window)")
    try:
        with bar:
            while True:
                replay = events.describe_replay(ReplayName=replay_name)
                last = replay.get("EventLastReplayedTime")
                if last is not None:
                    bar.update(task, completed=min(100.0, max(0.0, (last - start).total_seconds() / window * 100)))
                state = replay["State"]
                if state in DONE_STATES:
                    break
                if clock() >= deadline:
                    raise OperationFailed(f"replay {replay_name} is still {state} after {timeout}; follow it with "
                                          f"`aws events describe-replay --replay-name {replay_name}`")
                sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        events.cancel_replay(ReplayName=replay_name)
        raise OperationFailed(f"interrupted: replay {replay_name} cancelled; what it delivered stays delivered "
                              "(consumers are idempotent): run the replay again for the whole window") from None
    if state != "COMPLETED":
        raise OperationFailed(f"replay {replay_name} ended {state}: {replay.get('StateReason') or 'no reason given'}")
    bar.update(task, completed=100)
    console.print(f"replay {replay_name} completed")
    return EXIT_DONE


# ------------------------------------------------------------------------------------------------ command line


def register(commands_root: Any, common: dict) -> None:
    replay = commands_root.add_parser(
        "replay", help="deliver a window's events again: archive replay (default) or never-relayed events "
                       "from the table",
        description="Deliver a time window's events again.\n\n" + __doc__.split("\n\n", 1)[1].split("\n\nBoth change")[0],
        **common)
    replay.add_argument("--from", dest="start", type=parse_time, required=True, metavar="TIME",
                        help="start of the window: ISO 8601 (UTC unless an offset is given), or a duration ago (2h)")
    replay.add_argument("--to", dest="end", type=parse_time, default=None, metavar="TIME",
                        help="end of the window (default now)")
    replay.add_argument("--pattern", metavar="JSON",
                        help='only events matching this EventBridge event pattern, e.g. '
                             '\'{"detail-type": ["payment.succeeded"]}\' (archive: see above)')
    replay.add_argument("--source", choices=("archive", "table"), default="archive",
                        help="archive: EventBridge archive replay; table: publish stored events never relayed "
                             "and webhooks never processed (default archive)")
    replay.add_argument("--all", action="store_true", dest="include_relayed",
                        help="--source table: the window's relayed events and processed webhooks too")
    replay.add_argument("--name", help="archive replay name (default paystream-ops-<UTC time>)")
    replay.add_argument("--timeout", type=parse_duration, default=parse_duration("30m"), metavar="DURATION",
                        help="stop following an archive replay after this (it goes on; default 30m)")
    replay.add_argument("--dry-run", action="store_true", help="show what would be delivered, deliver nothing")
    replay.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    replay.set_defaults(handler=handle)


def handle(args: Any, context: Context) -> int:
    start, end = args.start, args.end or context.now
    end = min(end, context.now)
    if start >= end:
        raise Refused(f"--from ({iso(start)}) must be before --to ({iso(end)})")
    pattern = compile_pattern(args.pattern)
    if args.source == "table":
        return replay_from_table(context, start, end, pattern, args.include_relayed)
    if args.include_relayed:
        raise Refused("--all goes with --source table (an archive replay always covers every archived event)")
    return replay_from_archive(context, start, end, pattern, args.name, args.timeout)
