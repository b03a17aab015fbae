"""Fidelity patches to moto 5.2.5, each the smallest change that makes one behaviour match AWS.

Every patch is checked by tests/unit/test_emulator_patches.py against the upstream code it relies on
(so a moto upgrade that fixes or moves the behaviour is noticed) and by
tests/integration/test_emulator.py against the running server.
"""

from __future__ import annotations

import json
import threading
from typing import Any

_applied = False
# What each patch replaced, by dotted name: the unit tests check these still behave as the patches assume.
UPSTREAM: dict[str, Any] = {}


class _NoMappings:
    """Class attribute standing in for `lambda_event_source_mappings` on event sources.

    Reads give a fresh empty dict and writes are dropped, so moto never finds a mapping to dispatch.
    """

    def __get__(self, instance: Any, owner: type) -> dict[str, Any]:
        return {}

    def __set__(self, instance: Any, value: Any) -> None:
        pass


def disable_event_source_dispatch() -> None:
    """Stop moto from running event source mappings itself; the local data plane polls them as Lambda does.

    moto dispatches inside the producer's request, from the mappings it attaches to each source in
    `LambdaBackend.create_event_source_mapping`: `sqs.models.Queue.add_message` re-receives the visible
    messages on every send (raising receive counts, pushing unrelated messages into the DLQ),
    `dynamodb.models.table.StreamShard.add` empties the stream buffer once a function "took" it, and
    `kinesis.models.Stream.put_record` invokes per record. All three read
    `<source>.lambda_event_source_mappings`; making that always empty switches all of them off while
    the mappings themselves stay stored in the Lambda backend (Get/List/Update/Delete unchanged).
    """
    from moto.dynamodb.models.table import Table
    from moto.kinesis.models import Stream
    from moto.sqs.models import Queue

    for source in (Queue, Table, Stream):
        source.lambda_event_source_mappings = _NoMappings()  # type: ignore[assignment]


def aws_eventbridge_envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge delivers it to a target without an input transformer."""
    return {
        "version": event.get("version", "0"),
        "id": event["id"],
        "detail-type": event["detail-type"],
        "source": event["source"],
        "account": event["account"],
        "time": event["time"],
        "region": event["region"],
        "resources": event["resources"],
        "detail": event["detail"],
        # A replayed event names its replay (AWS adds the field to what targets receive).
        **({"replay-name": event["replay-name"]} if "replay-name" in event else {}),
    }


def deliver_full_eventbridge_envelope() -> None:
    """Give EventBridge target deliveries the full AWS envelope, including `account`.

    moto builds the untransformed envelope from `EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE`,
    which leaves out `account`, so Powertools' `EventBridgeModel` rejects what SQS consumers receive.
    The template is also filled by string replacement, which breaks on a detail that contains text like
    `<id>`; building the envelope from the event avoids both. Transformed inputs keep moto's code.
    """
    from moto.events.utils import EventTemplateParser

    upstream_parse = EventTemplateParser.parse

    def parse(input_template: str, input_paths_map: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        if not input_template:
            return aws_eventbridge_envelope(event)
        return upstream_parse(input_template, input_paths_map, event)

    UPSTREAM["EventTemplateParser.parse"] = upstream_parse
    EventTemplateParser.parse = staticmethod(parse)  # type: ignore[method-assign,assignment]


COMPACT_JSON_ATTRIBUTES = ("Policy", "RedrivePolicy", "RedriveAllowPolicy")


def compact_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except ValueError:  # moto does not validate RedriveAllowPolicy; return what was stored
        return text


def compact_sqs_json_attributes() -> None:
    """Return SQS queue attributes that hold JSON compact, as AWS does.

    moto re-serialises RedrivePolicy (and the queue Policy) with `json.dumps` defaults, i.e. with
    spaces; the Terraform provider compares redrive_policy as a string, so every plan after an apply
    showed a change.
    """
    from moto.sqs.models import Queue

    upstream_attributes = Queue.attributes

    def attributes(self: Queue) -> dict[str, Any]:
        result = upstream_attributes.fget(self)
        for name in COMPACT_JSON_ATTRIBUTES:
            value = result.get(name)
            if value == "":  # how the provider clears a policy; AWS then no longer lists it
                del result[name]
            elif isinstance(value, str):
                result[name] = compact_json(value)
        return result

    UPSTREAM["Queue.attributes"] = upstream_attributes
    Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]


def expose_sqs_redrive_allow_policy() -> None:
    """Return a queue's RedriveAllowPolicy from GetQueueAttributes, as AWS does.

    moto stores the attribute when it is set but neither lists it under "All" nor accepts it as a
    name ("Unknown Attribute RedriveAllowPolicy"), so Terraform's aws_sqs_queue_redrive_allow_policy
    could never read back what it created.
    """
    from moto.sqs.models import Queue

    UPSTREAM["Queue.BASE_ATTRIBUTES"] = Queue.BASE_ATTRIBUTES
    Queue.BASE_ATTRIBUTES = [*Queue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]
    # Queues that never had it set read this default; moto leaves None attributes out of responses.
    Queue.redrive_allow_policy = None  # type: ignore[attr-defined]


DYNAMODB_LOCK = threading.RLock()


def serialize_dynamodb_requests() -> None:
    """Run DynamoDB (and DynamoDB Streams) requests one at a time, so transactions are atomic as in AWS.

    moto's TransactWriteItems takes no lock: it checks every condition, writes, and on failure puts
    back a copy of the whole table. Under concurrent requests two writers can both pass a
    condition (two appends of one sequence number), one writer's rollback can erase another's
    committed write, and iterating a table that another request changes raises RuntimeError.
    DynamoDB serialises conflicting transactions; one lock around each request does the same here.
    """
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        upstream = handler.call_action
        UPSTREAM[f"{handler.__name__}.call_action"] = upstream

        def call_action(self, _upstream=upstream):
            with DYNAMODB_LOCK:
                return _upstream(self)

        handler.call_action = call_action  # type: ignore[method-assign]


def transact_without_copying_tables() -> None:
    """A TransactWriteItems costs the same whatever the tables hold, leaves no copy of them behind, and a
    cancelled one leaves no trace in the table's stream.

    moto deep-copies every table a transaction touches before writing, to put the copy back if a
    condition fails, and moto's instance tracker keeps every `Table` ever built (`Table.instances`),
    copies included. So each transaction took time and memory in proportion to the tables (with their
    stream shards): ~0.4 s and ~20 MB per transaction on a transactions table of 650 items, and the
    emulator grew to 10 GB after a few hundred payments. And the copy put back on failure has its own
    copy of the stream shard: the records of the items written before the failing one stay in the old
    shard, where open iterators still read them, and the restored shard numbers its next records from
    its shorter length, reusing those phantom records' sequence numbers — a poller that read a phantom
    record then asks for records AFTER its sequence number and skips the real record now carrying it (a
    committed event never relayed).

    Here the tables are not copied: the items the transaction names are remembered (or their absence)
    and put back if it is cancelled, and each touched table's stream shard is cut back to its length
    before the transaction. Tables and shards keep their identity, so open iterators stay valid.
    """
    import copy

    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class _TablesNotCopied:
        """`copy` as moto.dynamodb.models sees it: a Table "copy" is the table itself."""

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    UPSTREAM["dynamodb.models.copy"] = dynamodb_models.copy
    dynamodb_models.copy = _TablesNotCopied  # type: ignore[assignment]
    UPSTREAM["DynamoDBBackend.transact_write_items"] = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        saved = []  # (table, hash key, range key or None, the item before or None)
        shards = {}  # id(table) -> (shard, its length before)
        for entry in transact_items if isinstance(transact_items, list) else []:
            op = next(iter(entry.values()), None) if isinstance(entry, dict) else None
            table = self.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            key = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in key or (table.range_key_attr and table.range_key_attr not in key):
                continue  # upstream refuses it before writing anything
            if table.stream_shard is not None:
                shards.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = (table.items.get(hash_key, {}).get(range_key) if range_key is not None
                       else table.items.get(hash_key))
            # A copy: an Update changes the stored item in place.
            saved.append((table, hash_key, range_key, copy.deepcopy(current) if current is not None else None))
        try:
            return UPSTREAM["DynamoDBBackend.transact_write_items"](self, transact_items)
        except Exception:
            for table, hash_key, range_key, before in reversed(saved):
                if range_key is None:
                    if before is None:
                        table.items.pop(hash_key, None)
                    else:
                        table.items[hash_key] = before
                    continue
                partition = table.items.get(hash_key, {})
                if before is None:
                    partition.pop(range_key, None)
                else:
                    partition[range_key] = before
                    table.items[hash_key] = partition
                if not partition:
                    table.items.pop(hash_key, None)
            for shard, length in shards.values():
                del shard.items[length:]
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _epoch_seconds(value: Any) -> float | None:
    """A time as moto keeps it (epoch seconds as number or text, or a datetime); None if it is none of these."""
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def replay_only_the_window_to_the_chosen_rules() -> None:
    """Replay an archive as AWS does: only events whose time is within [EventStartTime, EventEndTime], only to
    the rules of `Destination.FilterArns` when given, and through the targets' normal delivery.

    moto's `Replay.replay_events` sends every archived event ever kept, whatever the window, to every rule
    of the bus, ignoring FilterArns, and skips the targets' input handling (`transform_input=False`), so a
    replayed event reached an SQS target without the envelope AWS delivers. The state still ends
    COMPLETED within the StartReplay call, as upstream.
    """
    from moto.core.utils import unix_time
    from moto.events.models import Replay, ReplayState, events_backends
    from moto.moto_api._internal import mock_random

    def replay_events(self: Replay, archive: Any) -> None:
        start, end = _epoch_seconds(self.event_start_time), _epoch_seconds(self.event_end_time)
        only = set(self.destination.get("FilterArns") or [])
        bus = events_backends[self.account_id][self.region].describe_event_bus(self.destination["Arn"].split("/")[-1])
        for event in list(archive.events):
            at = _epoch_seconds(event.get("time"))
            if at is None or (start is not None and at < start) or (end is not None and at > end):
                continue
            for rule in list(bus.rules.values()):
                if only and rule.arn not in only:
                    continue
                rule.send_to_targets(dict(event, **{"id": str(mock_random.uuid4()), "replay-name": self.name}))
        self.state = ReplayState.COMPLETED
        self.end_time = unix_time()

    UPSTREAM["Replay.replay_events"] = Replay.replay_events
    Replay.replay_events = replay_events  # type: ignore[method-assign]


# DynamoDB reads whose items dominate the response: their JSON is written directly.
FAST_DYNAMODB_READS = frozenset({"Scan", "Query", "GetItem", "BatchGetItem"})


def _json_default(value: Any) -> Any:
    """What the JSON protocol does with the non-JSON types of a DynamoDB read: blobs in base64, timestamps as
    epoch seconds (the DEFAULT_TIMESTAMP_FORMAT of moto's JSON serializer)."""
    import base64
    from datetime import datetime

    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def serialize_dynamodb_reads_directly() -> None:
    """Write the JSON of DynamoDB's item reads (Scan, Query, GetItem, BatchGetItem) directly.

    moto 5.2 serializes every response by walking the operation's output shape value by value
    (`moto.core.serialize`); for item reads that walk costs about 2 ms per item, most of a Scan's time
    (measured: 19 of 27 s for 10,000 items of ~1.5 KB), so `paystream-ops rebuild` read ~270 events/s
    from the local stack. The result of these operations is already the wire document (plain dicts and
    lists, DynamoDB attribute values as {type: value}, binary values as bytes); json.dumps writes the same
    document — tests/unit/test_emulator_patches.py compares it with the upstream serializer's output.
    Errors and every other operation keep moto's serializer.
    """
    from moto import settings
    from moto.dynamodb.responses import DynamoResult

    upstream = DynamoResult.execute_result

    def execute_result(self: Any, context: Any):
        if context.operation_model.name not in FAST_DYNAMODB_READS or settings.PRETTIFY_RESPONSES \
                or isinstance(self.result, Exception):
            return upstream(self, context)
        body = json.dumps(self.result, default=_json_default, separators=(",", ":"))
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    UPSTREAM["DynamoResult.execute_result"] = upstream
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]


_scan_start = threading.local()  # the key a Scan page starts after, while Table.scan runs for it


def _cast_key(item: Any) -> Any:
    return (item.hash_key.cast_value, item.range_key.cast_value) if item.range_key else item.hash_key.cast_value


def scan_pages_from_their_start_key() -> None:
    """Make a Scan page cost what it returns, not the whole table: sort a table's items on their keys' cast
    values computed once per item, and start a page right after its ExclusiveStartKey by bisection.

    moto's `Table.scan` sorts the whole table through DynamoType's Python-level comparisons for every page
    and then walks every item before the start key, comparing each with it, so a paginated (and segmented)
    Scan of a table of 10,000 items spent most of its time re-reading pages it had already returned. The
    order is the same (DynamoType compares `cast_value`, a key attribute has one type) and so are the pages:
    the items after the start key are exactly the ones upstream stops skipping at. Index scans keep moto's
    code.
    """
    import bisect

    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    upstream_scan = Table.scan

    def all_items(self: Any) -> list:
        items = []
        for hash_set in self.items.values():
            if self.range_key_attr:
                items.extend(hash_set.values())
            else:
                items.append(hash_set)
        items.sort(key=_cast_key)
        after = getattr(_scan_start, "key", None)
        if after is not None:
            return items[bisect.bisect_right(items, after, key=_cast_key):]
        return items

    def scan(self: Any, filters: Any, limit: Any, exclusive_start_key: Any, filter_expression: Any = None,
             index_name: Any = None, consistent_read: bool = False, projection_expression: Any = None,
             segments: Any = (None, None)) -> Any:
        arguments = dict(filter_expression=filter_expression, index_name=index_name, consistent_read=consistent_read,
                         projection_expression=projection_expression, segments=segments)
        if index_name is not None or not exclusive_start_key:
            return upstream_scan(self, filters, limit, exclusive_start_key, **arguments)
        try:
            hash_key = DynamoType(exclusive_start_key[self.hash_key_attr]).cast_value
            after = (hash_key, DynamoType(exclusive_start_key[self.range_key_attr]).cast_value) \
                if self.range_key_attr else hash_key
        except (KeyError, TypeError):  # a malformed start key: moto's own answer
            return upstream_scan(self, filters, limit, exclusive_start_key, **arguments)
        _scan_start.key = after
        try:
            return upstream_scan(self, filters, limit, None, **arguments)
        finally:
            _scan_start.key = None

    UPSTREAM["Table.all_items"] = Table.all_items
    UPSTREAM["Table.scan"] = upstream_scan
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.scan = scan  # type: ignore[method-assign]


def apply_patches() -> None:
    """Apply every patch once per process (later calls do nothing)."""
    global _applied
    if _applied:
        return
    disable_event_source_dispatch()
    deliver_full_eventbridge_envelope()
    compact_sqs_json_attributes()
    expose_sqs_redrive_allow_policy()
    serialize_dynamodb_requests()
    transact_without_copying_tables()
    replay_only_the_window_to_the_chosen_rules()
    serialize_dynamodb_reads_directly()
    scan_pages_from_their_start_key()
    _applied = True
