"""The outbox relay: publish the events stored in the transactions table, read from its DynamoDB stream.

Pure logic: the bus, the fraud stream and the relay marks are injected (see `paystream.adapters.publishers`).

What goes out, per inserted item (other stream records are ignored — the mapping's filter normally
keeps them away; ignoring them here also stops the relay's own `relayed_at` MODIFYs from looping):
- `item_type="event"` (payment and fraud events): `Source` = the event's `source`, `DetailType` =
  its `event_type`, `Detail` = `transaction_id, event_id, sequence, occurred_at, amount, currency,
  customer_id` plus the event's own `detail` fields (DESIGN.md §2; the common fields win a name clash).
  `payment.created` also goes to the Kinesis fraud stream: partition key `customer_id`, data = the same
  detail JSON. So does a card decline — a `payment.failed` whose detail says `retryable: false` and is
  not `final: true` — with `"event_type": "payment.failed"` added to the data, which makes the scorer count
  it as a card-testing signal instead of scoring it (docs/fraud.md, "Declines"). A retryable failure is not
  the card being refused, and a `final: true` one comes from the retry function after an earlier retryable
  failure: neither is a card-testing signal the relay can tell apart from its flags. A decline's detail has
  no `device_id` / `ip_address` / `country` (only `payment.created` carries them), so it counts for its
  customer only.
- `item_type="stripe_event"` (webhook inbox): `Source` = `paystream.stripe`, `DetailType` =
  `stripe.<stripe event type>`, `Detail` = `{"event_id", "stripe_event_id", "stripe_event_type",
  "object_id", "event": <the stored raw Stripe event, parsed>}`; `event_id` equals `stripe_event_id`
  so every consumer dedupes on the same field name.

Failures. Delivery is at least once: consumers dedupe by `event_id`. With a DynamoDB stream Lambda
retries from the lowest reported sequence number, so once a record fails, it and every later record of
the batch are reported (nothing after it is skipped) and nothing after the failing chunk is sent. A
chunk never holds two events of one payment, so an event is never accepted by the bus before the
previous event of the same payment. Entries EventBridge rejects are retried alone (bounded attempts,
short backoff) before being reported. An item that can never be published (too large for EventBridge,
missing fields, unparseable stored payload) is reported as a failure with the reason logged: the
mapping's retry limit then sends it to its on-failure destination instead of it vanishing.

Events that also go to the fraud stream go there after the bus has accepted them, in the same chunk,
under the same rules: a rejected stream record is retried alone, then reported like a rejected entry.

Re-delivered records resume, they are not published again. Reporting from the first failure on also
reports records the bus (or the fraud stream) already accepted — the rest of the failing chunk — and a
record whose mark failed after it was published. The relay remembers, in its process, how far each such
record got (bus event id, stream sequence number, marked); when Lambda sends it again it only does what
is left (in AWS the retry of a shard's batch normally reaches the same warm environment). Without this, a
PutEvents partial failure put the chunk's other events on the bus twice. A retry that reaches another
environment (a cold start) still publishes them again: delivery stays at least once.

After publishing, each event item gets `relayed_at` and `bus_event_id` (`fraud_stream_sequence_number`
too for what went to the fraud stream), so a checker can list the events never relayed. The marks of a
whole batch are written together once its chunks are published (events, immutable once written, are put
again whole from the stream record's image, 25 per BatchWriteItem; see
`paystream.adapters.publishers.RelayMarks`). A mark that cannot be written fails its record like a rejected
entry: reported from it on, remembered as published, so a re-delivery only writes the mark.

Webhook inbox items are NOT marked (it cost one UpdateItem per webhook): process_payment records its outcome
on the item (`processing_status`), which says more — the webhook went out and was processed. An inbox item
without it never got through (`unpublished`); publishing it again is harmless, since processing goes through
the state machine and a duplicate appends nothing.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, Protocol

from boto3.dynamodb.types import TypeDeserializer

MAX_ENTRIES_PER_PUT_EVENTS = 10
# EventBridge's limit, both for one entry and for one PutEvents request (entry size as AWS computes it).
MAX_PUT_EVENTS_BYTES = 256 * 1024
STRIPE_SOURCE = "paystream.stripe"
PAYMENT_CREATED, PAYMENT_FAILED = "payment.created", "payment.failed"
RELAYED_ITEM_TYPES = frozenset({"event", "stripe_event"})
# Records published but reported failed, remembered until Lambda sends them again (a bound, not a target).
MAX_REMEMBERED = 10_000
EVENT_FIELDS = ("transaction_id", "event_id", "sequence", "occurred_at", "amount", "currency", "customer_id")


class EventBus(Protocol):
    def put(self, entries: list[dict]) -> list[dict]:
        """PutEvents; one result per entry, in order: `{"EventId"}` or `{"ErrorCode", "ErrorMessage"}`."""


class FraudStream(Protocol):
    def put(self, records: list[dict]) -> list[dict]:
        """PutRecords; one result per record, in order: `{"SequenceNumber", "ShardId"}` or `{"ErrorCode", "ErrorMessage"}`."""


@dataclass(frozen=True)
class Mark:
    """What one published event gets written: when and as what it was published."""

    key: dict[str, str]
    relayed_at: str
    bus_event_id: str
    # The stream record's NEW_IMAGE (typed attributes): an event is never changed after it is written (only the
    # relay writes to it again, and only these marks), so putting it again whole with the marks added loses nothing.
    image: dict
    stream_sequence_number: str | None = None


class Marks(Protocol):
    def mark(self, marks: list[Mark]) -> list[bool | Exception]:
        """Record the publications; one result per mark, in order: True when written, or the exception that
        kept it from being written."""


def unpublished(item: dict) -> bool:
    """Whether a stored event or webhook inbox item (plain attributes) may never have reached the bus: an event
    without its relay mark, an inbox item without the outcome process_payment records (inbox items are not
    marked: module docstring). What `paystream-ops gaps` lists and `replay --source table` publishes."""
    if item.get("item_type") == "stripe_event":
        return not item.get("processing_status")
    return not item.get("relayed_at")


class Unpublishable(Exception):
    """The item can never be published as stored; the message says why."""


@dataclass(frozen=True)
class Outgoing:
    """One stored item, ready to publish."""

    sequence_number: str  # the stream record's: the batch item failure identifier
    key: dict[str, str]
    event_id: str
    order_key: str  # events sharing it keep their order: the payment (or Stripe object) they belong to
    entry: dict  # PutEvents entry without EventBusName (the bus adapter adds it)
    stream_record: dict | None  # PutRecords record, for events that also go to the fraud stream
    image: dict | None = None  # Mark.image: the stream record's NEW_IMAGE for an event; None: not marked (inbox)


@dataclass(frozen=True)
class Failure:
    sequence_number: str
    reason: str


@dataclass
class Progress:
    """How far one record got: what a re-delivery of it still has to do."""

    bus_event_id: str | None = None
    stream_sequence_number: str | None = None
    marked: bool = False


@dataclass
class RelayOutcome:
    published: list[str] = field(default_factory=list)  # sequence numbers, marked relayed
    failures: list[Failure] = field(default_factory=list)  # every record from the first failed one on
    ignored: int = 0

    def batch_item_failures(self) -> list[dict[str, str]]:
        return [{"itemIdentifier": failure.sequence_number} for failure in self.failures]


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def entry_size(entry: dict) -> int:
    """An entry's size as EventBridge counts it against its 256 KiB limit."""
    size = 14 if "Time" in entry else 0
    for name in ("Source", "DetailType", "Detail"):
        size += len(entry.get(name, "").encode())
    return size + sum(len(resource.encode()) for resource in entry.get("Resources", []))


_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    """A deserialized DynamoDB value as JSON-ready Python (numbers as int where integral)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    return value


def _image(typed: dict) -> dict:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in typed.items()}


def _dumps(detail: dict) -> str:
    return json.dumps(detail, separators=(",", ":"), ensure_ascii=False)


def is_card_decline(detail: dict) -> bool:
    """A `payment.failed` detail reporting that the card (payment method) was refused.

    `retryable: true` is Stripe's or the network's trouble, not the card's; `final: true` is the retry
    function's last word on a payment whose first failure was retryable. Only an explicit `false` counts:
    a detail without the flag says nothing about the card."""
    return detail.get("retryable") is False and detail.get("final") is not True


def fraud_stream_data(event_type: str, detail: dict, bus_detail_json: str) -> str | None:
    """The fraud stream record's data for this event, or None when it does not go to the fraud stream."""
    if event_type == PAYMENT_CREATED:
        return bus_detail_json  # the scorer reads a record without event_type as payment.created
    if event_type == PAYMENT_FAILED and is_card_decline(detail):
        return _dumps({**detail, "event_type": PAYMENT_FAILED})
    return None


def to_outgoing(record: dict) -> Outgoing | None:
    """The publication for one stream record; None for records the relay ignores. Raises Unpublishable."""
    stream = record.get("dynamodb") or {}
    new_image = stream.get("NewImage") or {}
    item_type = (new_image.get("item_type") or {}).get("S")
    if record.get("eventName") != "INSERT" or item_type not in RELAYED_ITEM_TYPES:
        return None
    try:
        item = _image(new_image)
    except (TypeError, ValueError) as exc:  # e.g. a binary attribute: stream records carry it as base64 text
        raise Unpublishable(f"item {stream.get('Keys')} has an attribute the relay cannot read ({exc})") from exc
    key = {"pk": item.get("pk"), "sk": item.get("sk")}
    where = f"item {key['pk']} / {key['sk']}"
    if item_type == "event":
        missing = [name for name in ("source", "event_type", *EVENT_FIELDS) if item.get(name) in (None, "")]
        if missing:
            raise Unpublishable(f"{where} lacks {', '.join(missing)}: an event item needs them to be published")
        extra = item.get("detail") or {}
        if not isinstance(extra, dict):
            raise Unpublishable(f"{where} has a `detail` that is not a map")
        detail = {**extra, **{name: item[name] for name in EVENT_FIELDS}}
        data = _dumps(detail)
        entry = {"Source": item["source"], "DetailType": item["event_type"], "Detail": data}
        stream_data = fraud_stream_data(item["event_type"], detail, data)
        stream_record = None
        if stream_data is not None:
            stream_record = {"Data": stream_data.encode(), "PartitionKey": str(item["customer_id"])}
        event_id, order_key = item["event_id"], f"TXN#{item['transaction_id']}"
        image = new_image  # read whole above (no binary attribute): safe to write back as it came
    else:
        missing = [name for name in ("event_id", "event_type", "payload") if not item.get(name)]
        if missing:
            raise Unpublishable(f"{where} lacks {', '.join(missing)}: a webhook inbox item needs them to be published")
        try:
            stripe_event = json.loads(item["payload"])
        except ValueError as exc:
            raise Unpublishable(f"{where} has a stored Stripe payload that is not JSON ({exc})") from exc
        detail = {
            "event_id": item["event_id"],
            "stripe_event_id": item["event_id"],
            "stripe_event_type": item["event_type"],
            "object_id": item.get("object_id"),
            "event": stripe_event,
        }
        entry = {"Source": STRIPE_SOURCE, "DetailType": f"stripe.{item['event_type']}", "Detail": _dumps(detail)}
        stream_record = None
        event_id, order_key = item["event_id"], f"STRIPE#{item.get('object_id') or item['event_id']}"
        image = None  # not marked: process_payment's outcome on the item shows it went through
    size = entry_size(entry)
    if size > MAX_PUT_EVENTS_BYTES:
        raise Unpublishable(f"{where} (event {event_id}) is {size} bytes as an EventBridge entry, over the "
                            f"{MAX_PUT_EVENTS_BYTES}-byte limit")
    return Outgoing(stream["SequenceNumber"], key, event_id, order_key, entry, stream_record, image)


def chunks(items: list[Outgoing]) -> Iterator[list[Outgoing]]:
    """Consecutive PutEvents chunks: ≤ 10 entries, ≤ 256 KiB, at most one event per order key."""
    chunk: list[Outgoing] = []
    size = 0
    for item in items:
        item_size = entry_size(item.entry)
        if chunk and (len(chunk) == MAX_ENTRIES_PER_PUT_EVENTS or size + item_size > MAX_PUT_EVENTS_BYTES
                      or any(other.order_key == item.order_key for other in chunk)):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


class OutboxRelay:
    def __init__(self, bus: EventBus, fraud_stream: FraudStream, marks: Marks, *, max_attempts: int = 3,
                 backoff_seconds: float = 0.05, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], str] = utc_now_iso, logger: logging.Logger | None = None):
        self._bus = bus
        self._fraud_stream = fraud_stream
        self._marks = marks
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep
        self._clock = clock
        self._log = logger or logging.getLogger(__name__)
        # sequence number -> progress of a record reported failed after it was published (module docstring).
        self._remembered: collections.OrderedDict[str, Progress] = collections.OrderedDict()

    def relay(self, records: list[dict]) -> RelayOutcome:
        outcome = RelayOutcome()
        publishable: list[Outgoing] = []
        reasons: dict[str, str] = {}  # sequence number -> why it failed
        progress: dict[str, Progress] = {}
        for record in records:
            try:
                item = to_outgoing(record)
            except Unpublishable as exc:
                # Later records wait behind it: publishing them now would break per-payment order.
                reasons[record["dynamodb"]["SequenceNumber"]] = f"cannot be published: {exc}"
                break
            if item is None:
                outcome.ignored += 1
                continue
            progress[item.sequence_number] = self._remembered.pop(item.sequence_number, None) or Progress()
            if progress[item.sequence_number].marked:  # sent again only because an earlier record had failed
                outcome.published.append(item.sequence_number)
            else:
                publishable.append(item)
        published: list[Outgoing] = []  # to mark: everything that went out, also in a chunk that then failed
        for chunk in chunks(publishable):
            failed = self._publish(chunk, progress, published)
            if failed:
                reasons.update(failed)
                break
        reasons.update(self._mark(published, progress, outcome))
        if reasons:
            self._report_from_first_failure(records, reasons, outcome)
            for failure in outcome.failures:
                done = progress.get(failure.sequence_number)
                if done is not None and done.bus_event_id is not None:
                    self._remember(failure.sequence_number, done)
        return outcome

    def _remember(self, sequence_number: str, done: Progress) -> None:
        self._remembered[sequence_number] = done
        while len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)

    def _report_from_first_failure(self, records: list[dict], reasons: dict[str, str], outcome: RelayOutcome) -> None:
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in records]
        first = min(sequence_numbers.index(sequence_number) for sequence_number in reasons)
        for sequence_number in sequence_numbers[first:]:
            reason = reasons.get(sequence_number, "an earlier record of the batch failed: sent again after it (not "
                                                 "published again if it already was)")
            outcome.failures.append(Failure(sequence_number, reason))
        for sequence_number, reason in reasons.items():
            self._log.error("outbox record not relayed; it will be retried from this record on",
                            extra={"sequence_number": sequence_number, "reason": reason})

    def _publish(self, chunk: list[Outgoing], progress: dict[str, Progress],
                 published: list[Outgoing]) -> dict[str, str]:
        """Publish one chunk, skipping what an earlier delivery of a record already did (`progress`, updated
        here); adds to `published` the items now wholly published (bus, and fraud stream when they go there);
        the reasons of the records that failed."""
        done = [progress[item.sequence_number] for item in chunk]
        to_bus = [i for i in range(len(chunk)) if done[i].bus_event_id is None]
        bus_results = dict(zip(to_bus, self._put_with_retries(
            self._bus.put, [chunk[i].entry for i in to_bus]))) if to_bus else {}
        for i, result in bus_results.items():
            done[i].bus_event_id = result.get("EventId")
        to_stream = [i for i, item in enumerate(chunk) if item.stream_record and done[i].bus_event_id is not None
                     and done[i].stream_sequence_number is None]
        stream_results = dict(zip(to_stream, self._put_with_retries(
            self._fraud_stream.put, [chunk[i].stream_record for i in to_stream]))) if to_stream else {}
        for i, result in stream_results.items():
            done[i].stream_sequence_number = result.get("SequenceNumber")
        failed: dict[str, str] = {}
        for i, item in enumerate(chunk):
            if done[i].bus_event_id is None:
                failed[item.sequence_number] = f"PutEvents rejected event {item.event_id}: {_error(bus_results[i])}"
            elif item.stream_record and done[i].stream_sequence_number is None:
                failed[item.sequence_number] = f"PutRecords rejected event {item.event_id}: {_error(stream_results[i])}"
            else:
                published.append(item)
        return failed

    def _mark(self, published: list[Outgoing], progress: dict[str, Progress], outcome: RelayOutcome) -> dict[str, str]:
        """Mark the published events, all in one `Marks.mark` call (the adapter batches the writes; inbox items
        are not marked, see the module docstring); the reasons of the records whose mark could not be written."""
        to_mark = [item for item in published if item.image is not None]
        results: dict[str, bool | Exception] = {}
        if to_mark:
            relayed_at = self._clock()
            marks = [Mark(item.key, relayed_at, progress[item.sequence_number].bus_event_id, item.image,
                          progress[item.sequence_number].stream_sequence_number) for item in to_mark]
            try:
                answers = self._marks.mark(marks)
            except Exception as exc:  # noqa: BLE001 - remembered as published: a re-delivery only marks them
                answers = [exc] * len(marks)
            results = {item.sequence_number: answer for item, answer in zip(to_mark, answers)}
        failed: dict[str, str] = {}
        for item in published:
            result = results.get(item.sequence_number, True)
            if isinstance(result, Exception):
                failed[item.sequence_number] = f"published event {item.event_id} but could not mark it: {result}"
                continue
            progress[item.sequence_number].marked = True
            outcome.published.append(item.sequence_number)
        return failed

    def _put_with_retries(self, put: Callable[[list[dict]], list[dict]], items: list[dict]) -> list[dict]:
        """Results aligned with `items`; only the rejected ones are sent again."""
        results: list[dict] = [{}] * len(items)
        pending = list(range(len(items)))
        for attempt in range(1, self._max_attempts + 1):
            answers = put([items[i] for i in pending])
            for i, answer in zip(pending, answers):
                results[i] = answer
            pending = [i for i in pending if "ErrorCode" in results[i]]
            if not pending or attempt == self._max_attempts:
                break
            self._sleep(self._backoff_seconds * 2 ** (attempt - 1))
        return results


def _error(result: dict) -> str:
    return f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}"
