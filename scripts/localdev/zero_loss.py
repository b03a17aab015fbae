"""The zero-loss audit (issue 8, item 4): did every accepted payment end, completely, with each of its events
published to the bus exactly once and nothing dead-lettered?

    from localdev.zero_loss import BusSubscriber, audit

    with BusSubscriber(outputs) as subscriber:      # a test subscriber on the platform bus, removed afterwards
        ...send payments, keep the accepted transaction ids...
        report = audit(outputs, transaction_ids, subscriber, dlq_baseline=baseline)
    report.ok, report.summary(), report.as_dict()

`outputs` is the stack's outputs.json (DESIGN.md §2 plus the local environment's names: `bus_name`,
`table_names.transactions`, `dlq_urls`); every AWS call goes through `paystream_ops.environment.Environment`,
so against the local stack it talks to the emulator at `aws_endpoint_url`.

What the audit checks, for the given payments only (a shared stack carries other payments too):
(a) terminal: the projection's status is one of TERMINAL_STATUSES. `requires_action` (waits on the customer's
    3-D Secure), `review` (waits on an operator), `queued`, `created` and `processing` are NOT terminal: a load
    of plain succeeding cards never produces them, so one seen after the settle wait is a stuck payment.
(b) complete and contiguous: the stored events are numbered 1..n without a gap or a repeat, the first is
    `payment.created`, the event types the status implies are there (EXPECTED_EVENTS; `fraud.scored` for
    every payment, since each `payment.created` goes to the fraud stream), and the stored projection is what
    the events fold to (`paystream_ops.rebuild.examine`: same status, `last_sequence`, `based_on_event_id`, ...).
(c) published exactly once: each stored event of the payment, and each stored Stripe webhook (inbox item)
    of the payment, was delivered to the subscriber's queue once. `lost` = stored but never seen; `duplicated`
    = seen more than once. Deliveries are counted by event id over distinct SQS message ids, so an SQS
    redelivery of one message (visibility timeout) is not mistaken for a second publication, while a second
    PutEvents of the same event is. Archive replays (envelope `replay-name`) are counted apart, not as
    duplicates. Stored webhooks must also carry a `processing_status` (process_payment handled them).
(d) no DLQ holds anything: ApproximateNumberOfMessages + ...NotVisible of every queue in `dlq_urls`; with a
    `dlq_baseline` (from `dlq_depths` before the run, for a stack shared with other work) only growth counts.

The audit first waits (bounded by `settle_timeout_s`, polling) until each payment is terminal, has its
expected events, all relayed (`relayed_at`) and seen by the subscriber; what is still wrong at the deadline
is reported, not raised. Reads use the project's own code: `paystream_ops.rebuild.read_payment` (one
consistent Query per payment, as `EventStore.load`) and `paystream_ops.table.scan` (the webhook inbox).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

PLATFORM_SOURCES = ("paystream.payments", "paystream.fraud", "paystream.stripe")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "refunded", "partially_refunded", "disputed"})
# Event types a payment in that status must have stored (besides payment.created and fraud.scored).
EXPECTED_EVENTS: dict[str, frozenset[str]] = {
    "succeeded": frozenset({"payment.succeeded"}),
    "failed": frozenset({"payment.failed"}),
    "canceled": frozenset({"payment.canceled"}),
    "refunded": frozenset({"payment.refunded"}),
    "partially_refunded": frozenset({"payment.refunded"}),
    "disputed": frozenset({"payment.disputed"}),
}
ALWAYS_EXPECTED = frozenset({"payment.created", "fraud.scored"})
HANDLED_WEBHOOK_STATUSES = frozenset({"applied", "no_change", "ignored"})
EXAMPLES = 20  # per kind of finding in as_dict(): enough to start debugging, small enough to read


def _environment(outputs: Mapping[str, Any]):
    from paystream_ops.environment import Environment

    return Environment(dict(outputs))


def _not_found(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


# ------------------------------------------------------------------------------------------------ subscriber


@dataclass
class _Seen:
    transaction_id: str | None
    detail_type: str
    messages: set[str] = field(default_factory=set)  # SQS message ids: one per bus delivery


class BusSubscriber:
    """A temporary SQS queue behind a rule on the platform bus matching every platform event (the sources
    PLATFORM_SOURCES), as a downstream consumer would subscribe; removed on exit whatever happens.

    A background thread reads the queue as deliveries come (moto's SQS slows down as a queue grows, and a
    load run delivers thousands of events); `drain()` reads what is left until the queue stays quiet.
    `deliveries()` → {(transaction_id, event_id): deliveries}; `replayed()` the same for archive replays.
    The transaction id of a relayed Stripe webhook (source paystream.stripe, which has none of its own) is
    its object's `metadata.transaction_id` when there is one, else None."""

    def __init__(self, outputs: Mapping[str, Any], name_prefix: str = "zero-loss", background: bool = True):
        environment = _environment(outputs)
        self.bus = environment.need("bus_name")
        self._sqs, self._events = environment.client("sqs"), environment.client("events")
        self.name = f"{name_prefix}-{uuid.uuid4().hex[:10]}"
        self.queue_url: str | None = None
        self._rule_created = self._target_created = False
        self._background = background
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        self._replayed: dict[str, _Seen] = {}
        self._last_message_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> "BusSubscriber":
        try:
            self._create()
        except BaseException:
            self._remove()
            raise
        if self._background:
            self._thread = threading.Thread(target=self._read_continuously, name=f"{self.name}-reader", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self._remove()
        except RuntimeError as error:
            if exc_type is None:
                raise
            # The exception already on its way is the one to see; this one is still worth a line.
            print(error, file=sys.stderr)

    def _create(self) -> None:
        # A long visibility timeout: a message is deleted right after it is read, so it should never reappear.
        self.queue_url = self._sqs.create_queue(QueueName=self.name, Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self.queue_url,
                                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = self._events.put_rule(Name=self.name, EventBusName=self.bus, State="ENABLED",
                                         EventPattern=json.dumps({"source": list(PLATFORM_SOURCES)}))["RuleArn"]
        self._rule_created = True
        self._sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                           "Action": "sqs:SendMessage", "Resource": queue_arn,
                           "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}],
        })})
        self._events.put_targets(Rule=self.name, EventBusName=self.bus, Targets=[{"Id": "zero-loss", "Arn": queue_arn}])
        self._target_created = True

    def _remove(self) -> None:
        """Target, rule, queue: each attempted; a resource already gone (a restarted emulator) is fine."""
        steps = []
        if self._target_created:
            steps.append(lambda: self._events.remove_targets(Rule=self.name, EventBusName=self.bus, Ids=["zero-loss"]))
        if self._rule_created:
            steps.append(lambda: self._events.delete_rule(Name=self.name, EventBusName=self.bus))
        if self.queue_url:
            steps.append(lambda: self._sqs.delete_queue(QueueUrl=self.queue_url))
        failures = []
        for step in steps:
            try:
                step()
            except Exception as error:  # noqa: BLE001 - try every step; report what could not be removed
                if not _not_found(error):
                    failures.append(f"{type(error).__name__}: {error}")
        self._target_created = self._rule_created = False
        self.queue_url = None if not failures else self.queue_url
        if failures:
            raise RuntimeError(f"BusSubscriber {self.name}: could not remove all it created: {'; '.join(failures)}")

    # -- reading -----------------------------------------------------------------------------------
    def _read_continuously(self) -> None:
        while not self._stop.is_set():
            try:
                self._receive(wait_seconds=1)
            except Exception as error:  # noqa: BLE001 - kept for drain() to raise, so a broken reader is not silent
                self._reader_error = error
                self._stop.wait(1)

    def _receive(self, wait_seconds: int) -> int:
        answer = self._sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=wait_seconds, VisibilityTimeout=120)
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        with self._lock:
            for message in messages:
                self._record(message["MessageId"], message["Body"])
            self._last_message_at = time.monotonic()
        self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(messages)

    def _record(self, message_id: str, body: str) -> None:
        try:
            envelope = json.loads(body)
            detail = envelope.get("detail") or {}
            event_id = str(detail["event_id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            event_id, detail, envelope = f"unreadable:{message_id}", {}, {}
        seen = self._replayed if envelope.get("replay-name") else self._seen
        entry = seen.setdefault(event_id, _Seen(transaction_of(detail), str(envelope.get("detail-type", ""))))
        entry.messages.add(message_id)

    def drain(self, quiet_s: float = 3.0, timeout_s: float = 120.0) -> int:
        """Read until no message has arrived for `quiet_s` (or `timeout_s` passed); the messages read by
        this call. Raises what the background reader ran into, if anything."""
        if self._reader_error is not None:
            raise RuntimeError(f"BusSubscriber {self.name}: reading the queue failed: {self._reader_error}")
        read = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self._receive(wait_seconds=1 if quiet_s >= 1 else 0)
            read += got
            with self._lock:
                idle = time.monotonic() - self._last_message_at
            if not got and idle >= quiet_s:
                break
        return read

    def deliveries(self) -> dict[tuple[str | None, str], int]:
        """{(transaction_id, event_id): number of deliveries} of the live events seen so far."""
        with self._lock:
            return {(s.transaction_id, event_id): len(s.messages) for event_id, s in self._seen.items()}

    def replayed(self) -> dict[tuple[str | None, str], int]:
        """The same for archive replays (envelope `replay-name`), which are re-deliveries by design."""
        with self._lock:
            return {(s.transaction_id, event_id): len(s.messages) for event_id, s in self._replayed.items()}

    def counts_by_event_id(self) -> dict[str, int]:
        with self._lock:
            return {event_id: len(s.messages) for event_id, s in self._seen.items()}


def transaction_of(detail: Mapping[str, Any]) -> str | None:
    """The payment a bus event's detail belongs to: `transaction_id`, or for a relayed Stripe webhook its
    object's `metadata.transaction_id` (initiate_payment sets it on every PaymentIntent)."""
    if detail.get("transaction_id"):
        return str(detail["transaction_id"])
    obj = ((detail.get("event") or {}).get("data") or {}).get("object") or {}
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return str(metadata["transaction_id"]) if isinstance(metadata, dict) and metadata.get("transaction_id") else None


# ------------------------------------------------------------------------------------------------ DLQs


def dlq_depths(outputs: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per queue of `dlq_urls`: {"visible", "not_visible"} (SQS's approximate counts)."""
    environment = _environment(outputs)
    sqs = environment.client("sqs")
    by_url: dict[str, dict[str, int]] = {}
    depths = {}
    for key, url in sorted(environment.need("dlq_urls").items()):
        if url not in by_url:  # on-failure destinations are listed under two keys
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            by_url[url] = {"visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
                           "not_visible": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))}
        depths[key] = dict(by_url[url])
    return depths


# ------------------------------------------------------------------------------------------------ the report


@dataclass
class AuditReport:
    payments: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # final status -> payments
    not_terminal: dict[str, str] = field(default_factory=dict)  # transaction id -> status ("missing": no projection)
    incomplete: dict[str, str] = field(default_factory=dict)  # transaction id -> what is wrong with its events
    stored_events: int = 0  # payment events + stored webhooks of these payments
    webhooks: int = 0  # stored webhooks (inbox items) of these payments
    unprocessed_webhooks: dict[str, str] = field(default_factory=dict)  # stripe event id -> processing_status
    published_once: int = 0
    lost: list[dict[str, Any]] = field(default_factory=list)  # {transaction_id, event_id, event_type, relayed}
    duplicated: list[dict[str, Any]] = field(default_factory=list)  # {... , deliveries}
    dlq: dict[str, dict[str, int]] = field(default_factory=dict)  # queue key -> {visible, not_visible[, baseline]}
    dlq_holding: dict[str, int] = field(default_factory=dict)  # queue key -> messages over the allowed
    dlq_samples: dict[str, list[str]] = field(default_factory=dict)  # queue key -> a few bodies held (to debug)
    replayed_deliveries: int = 0
    settle_s: float = 0.0

    @property
    def terminal(self) -> int:
        return self.payments - len(self.not_terminal)

    @property
    def ok(self) -> bool:
        return not (self.not_terminal or self.incomplete or self.unprocessed_webhooks or self.lost
                    or self.duplicated or self.dlq_holding)

    def as_dict(self) -> dict[str, Any]:
        def first(mapping: Mapping[str, Any]) -> dict[str, Any]:
            return dict(sorted(mapping.items())[:EXAMPLES])

        return {
            "ok": self.ok,
            "payments": self.payments,
            "terminal": self.terminal,
            "statuses": dict(sorted(self.statuses.items())),
            "not_terminal": len(self.not_terminal),
            "not_terminal_examples": first(self.not_terminal),
            "incomplete": len(self.incomplete),
            "incomplete_examples": first(self.incomplete),
            "stored_events": self.stored_events,
            "webhooks": self.webhooks,
            "unprocessed_webhooks": len(self.unprocessed_webhooks),
            "unprocessed_webhook_examples": first(self.unprocessed_webhooks),
            "published_once": self.published_once,
            "lost": len(self.lost),
            "lost_examples": self.lost[:EXAMPLES],
            "duplicated": len(self.duplicated),
            "duplicated_examples": self.duplicated[:EXAMPLES],
            "dlq": self.dlq,
            "dlq_holding": self.dlq_holding,
            "dlq_samples": self.dlq_samples,
            "replayed_deliveries": self.replayed_deliveries,
            "settle_s": round(self.settle_s, 2),
        }

    def summary(self) -> str:
        if self.ok:
            return (f"zero-loss audit OK: {self.payments} payments terminal, {self.stored_events} stored events "
                    f"published exactly once, 0 lost, 0 duplicated, no DLQ holds anything")
        problems = []
        if self.lost:
            problems.append(f"{len(self.lost)} lost (e.g. event {self.lost[0]['event_id']} "
                            f"{self.lost[0]['event_type']} of {self.lost[0]['transaction_id']})")
        if self.duplicated:
            d = self.duplicated[0]
            problems.append(f"{len(self.duplicated)} duplicated (e.g. event {d['event_id']} {d['event_type']} "
                            f"of {d['transaction_id']} delivered {d['deliveries']} times)")
        if self.not_terminal:
            tid, status = sorted(self.not_terminal.items())[0]
            problems.append(f"{len(self.not_terminal)} not terminal (e.g. {tid}: {status})")
        if self.incomplete:
            tid, reason = sorted(self.incomplete.items())[0]
            problems.append(f"{len(self.incomplete)} with incomplete events (e.g. {tid}: {reason})")
        if self.unprocessed_webhooks:
            event_id, status = sorted(self.unprocessed_webhooks.items())[0]
            problems.append(f"{len(self.unprocessed_webhooks)} webhooks not processed (e.g. {event_id}: {status})")
        if self.dlq_holding:
            problems.append("DLQ " + ", ".join(f"{key} holds {n}" for key, n in sorted(self.dlq_holding.items())))
        return f"zero-loss audit FAILED for {self.payments} payments: " + "; ".join(problems)


# ------------------------------------------------------------------------------------------------ the checks


def examine_events(payment) -> str | None:
    """What is wrong with one payment's stored events (a `paystream_ops.table.PaymentItems`), None if nothing:
    numbered 1..n, first payment.created, the types its status implies present, the projection their fold."""
    from paystream_ops.rebuild import examine

    events = payment.events
    if not events:
        return "no events stored"
    sequences = [int(event.get("sequence") or 0) for event in events]
    if sequences != list(range(1, len(events) + 1)):
        expected = set(range(1, max(sequences) + 1))
        missing = sorted(expected - set(sequences))
        repeated = sorted(s for s, n in Counter(sequences).items() if n > 1)
        return (f"sequence not contiguous: {sequences[:12]}{'...' if len(sequences) > 12 else ''}"
                + (f", missing {missing[:5]}" if missing else "") + (f", repeated {repeated[:5]}" if repeated else ""))
    if events[0].get("event_type") != "payment.created":
        return f"event 1 is {events[0].get('event_type')}, not payment.created"
    status = str((payment.projection or {}).get("status", ""))
    types = {str(event.get("event_type")) for event in events}
    missing_types = sorted((ALWAYS_EXPECTED | EXPECTED_EVENTS.get(status, frozenset())) - types)
    if missing_types:
        return f"status {status or '(none)'} but no {', '.join(missing_types)} stored"
    finding = examine(payment)
    if finding is not None:
        what = finding.reason or ", ".join(f"{name} stored {stored!r} vs events {rebuilt!r}"
                                           for name, (stored, rebuilt) in list(finding.fields.items())[:3])
        return f"projection {finding.kind}: {what}"
    return None


def webhooks_of(inbox: Iterable[Mapping[str, Any]], transaction_ids: Iterable[str],
                payment_intent_ids: Iterable[str]) -> list[Mapping[str, Any]]:
    """The stored webhooks (inbox items) of these payments: process_payment notes the `transaction_id` it
    found; one not processed yet is recognised by its object, the payment's PaymentIntent."""
    tids, intents = set(transaction_ids), set(payment_intent_ids)
    return [item for item in inbox
            if item.get("transaction_id") in tids or (item.get("object_id") and item.get("object_id") in intents)]


def evaluate(payments: Mapping[str, Any], webhooks: Iterable[Mapping[str, Any]], deliveries: Mapping[str, int],
             dlq: Mapping[str, Mapping[str, int]], dlq_baseline: Mapping[str, Mapping[str, int]] | None = None,
             replayed_deliveries: int = 0, settle_s: float = 0.0) -> AuditReport:
    """The audit's verdict from what was read (pure): `payments` {transaction id: PaymentItems (or None when
    nothing is stored)}, the payments' stored `webhooks`, `deliveries` {event id: live deliveries seen by the
    subscriber}, `dlq` from dlq_depths (and the baseline to compare with, if any)."""
    report = AuditReport(payments=len(payments), replayed_deliveries=replayed_deliveries, settle_s=settle_s)
    statuses: Counter[str] = Counter()
    # (transaction id, event id, type, relayed: an event's relay mark; a webhook's recorded outcome, as inbox items
    # are not marked — paystream.relay.unpublished)
    stored: list[tuple[str, str, str, bool]] = []
    for tid, payment in sorted(payments.items()):
        projection = payment.projection if payment is not None else None
        status = str(projection.get("status")) if projection else "missing"
        statuses[status] += 1
        if status not in TERMINAL_STATUSES:
            report.not_terminal[tid] = status
        if payment is None or (projection is None and not payment.events):
            report.incomplete[tid] = "nothing stored"
            continue
        problem = examine_events(payment)
        if problem:
            report.incomplete[tid] = problem
        for event in payment.events:
            stored.append((tid, str(event.get("event_id")), str(event.get("event_type")), bool(event.get("relayed_at"))))
    for item in webhooks:
        report.webhooks += 1
        event_id = str(item.get("event_id"))
        stored.append((str(item.get("transaction_id") or ""), event_id, f"stripe.{item.get('event_type')}",
                       bool(item.get("processing_status"))))
        if item.get("processing_status") not in HANDLED_WEBHOOK_STATUSES:
            report.unprocessed_webhooks[event_id] = str(item.get("processing_status") or "not processed")
    report.statuses = dict(statuses)
    report.stored_events = len(stored)
    for tid, event_id, event_type, relayed in stored:
        count = deliveries.get(event_id, 0)
        if count == 0:
            report.lost.append({"transaction_id": tid, "event_id": event_id, "event_type": event_type,
                                "relayed": relayed})
        elif count > 1:
            report.duplicated.append({"transaction_id": tid, "event_id": event_id, "event_type": event_type,
                                      "deliveries": count})
        else:
            report.published_once += 1
    for key, depth in sorted(dlq.items()):
        held = depth.get("visible", 0) + depth.get("not_visible", 0)
        entry = dict(depth)
        allowed = 0
        if dlq_baseline is not None:
            base = dlq_baseline.get(key, {})
            allowed = base.get("visible", 0) + base.get("not_visible", 0)
            entry["baseline"] = allowed
        report.dlq[key] = entry
        if held > allowed:
            report.dlq_holding[key] = held - allowed
    return report


# ------------------------------------------------------------------------------------------------ the audit


def _settled(payment, counts: Mapping[str, int]) -> bool:
    """Nothing more to wait for: terminal, its events all there, relayed and seen by the subscriber."""
    if payment is None or payment.projection is None:
        return False
    if str(payment.projection.get("status")) not in TERMINAL_STATUSES or examine_events(payment) is not None:
        return False
    return all(event.get("relayed_at") and counts.get(str(event.get("event_id"))) for event in payment.events)


def audit(outputs: Mapping[str, Any], transaction_ids: Iterable[str], subscriber: BusSubscriber,
          settle_timeout_s: float = 120.0, dlq_baseline: Mapping[str, Mapping[str, int]] | None = None,
          quiet_s: float = 3.0, poll_s: float = 0.5) -> AuditReport:
    """Wait (at most `settle_timeout_s`) for the payments to settle, then check (a)-(d) of the module's
    docstring. `subscriber` must have been up before the first of these payments was sent."""
    from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
    from paystream_ops.rebuild import read_payment
    from paystream_ops.table import scan

    environment = _environment(outputs)
    table = DynamoDBTransactionsTable(environment.client("dynamodb"), environment.need("table_names", "transactions"))
    tids = list(dict.fromkeys(transaction_ids))
    started = time.monotonic()
    deadline = started + settle_timeout_s

    def read(tid: str):
        payment = read_payment(table, tid)
        return payment if (payment.projection is not None or payment.events) else None

    # 1. Payments: terminal, complete, relayed and seen. Only the ones still pending are read again.
    latest: dict[str, Any] = {}
    pending = set(tids)
    while pending and time.monotonic() < deadline:
        subscriber.drain(quiet_s=0, timeout_s=5)
        counts = subscriber.counts_by_event_id()
        for tid in list(pending):
            latest[tid] = read(tid)
            if _settled(latest[tid], counts):
                pending.discard(tid)
        if pending:
            time.sleep(poll_s)

    # 2. Their stored webhooks: processed and seen (a webhook arrives on its own time after the answer; the relay
    # does not mark inbox items, their recorded outcome shows they went through).
    intents = {str(p.projection["payment_intent_id"]) for p in latest.values()
               if p is not None and p.projection and p.projection.get("payment_intent_id")}

    def stored_webhooks() -> list[Mapping[str, Any]]:
        return webhooks_of(scan(environment, item_types=("stripe_event",)), tids, intents)

    while True:
        subscriber.drain(quiet_s=quiet_s, timeout_s=max(5.0, quiet_s * 4))
        counts = subscriber.counts_by_event_id()
        webhooks = stored_webhooks()
        waiting = [w for w in webhooks if w.get("processing_status") not in HANDLED_WEBHOOK_STATUSES
                   or not counts.get(str(w.get("event_id")))]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(max(poll_s, 1.0))

    # 3. The final reads: late appends or re-publications since the wait count too.
    subscriber.drain(quiet_s=quiet_s)
    payments = {tid: read(tid) for tid in tids}
    counts = subscriber.counts_by_event_id()
    replayed = sum(n for (tid, _), n in subscriber.replayed().items() if tid in set(tids))
    report = evaluate(payments, webhooks, counts, dlq_depths(outputs), dlq_baseline, replayed,
                      settle_s=time.monotonic() - started)
    report.dlq_samples = peek_dlqs(outputs, report.dlq_holding)
    return report


def peek_dlqs(outputs: Mapping[str, Any], keys: Iterable[str], count: int = 3) -> dict[str, list[str]]:
    """Up to `count` message bodies (cut to 300 characters) of each of these DLQs, read without hiding them
    (VisibilityTimeout 0: their consumers, redrives and alarms see no change)."""
    environment = _environment(outputs)
    sqs, urls = environment.client("sqs"), environment.need("dlq_urls")
    samples = {}
    for key in sorted(keys):
        messages = sqs.receive_message(QueueUrl=urls[key], MaxNumberOfMessages=min(count, 10),
                                       VisibilityTimeout=0).get("Messages", [])
        samples[key] = [message["Body"][:300] for message in messages]
    return samples
