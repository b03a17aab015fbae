"""`paystream-ops dlq ...`: see what is stuck in the dead-letter queues and put it back safely.

Every place a message ends up unprocessed is read from the outputs' `dlq_urls`:
- a consumer queue's DLQ (key = the consumer queue's short name): its source is that queue;
- `event-bus-targets`: events no rule target accepted (EventBridge writes the original event with the
  ERROR_CODE/ERROR_MESSAGE/RULE_ARN/TARGET_ARN message attributes); redriven by re-publishing to the bus;
- `*-destination`: a stream consumer's on-failure destination (Lambda records pointing at the stream
  records it gave up on, not the events themselves): peek/export/purge only, the events are replayed
  from the table (issue 7: gaps/replay).

Reading never consumes: messages are received with a short visibility timeout and made visible again
(ChangeMessageVisibility 0) as soon as they are printed. A receive still counts as one: on a queue that has
its own redrive policy (the on-failure destinations) every peek brings a message closer to that queue's
own DLQ, so the tools say so and `list` does not sample such a queue.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from paystream_ops.common import Context, OperationFailed, Refused, positive_float, positive_int, progress
from paystream_ops.environment import Environment, EnvironmentError_

METRIC_NAMESPACE = "paystream"  # the platform's own metrics (terraform: local.metrics_namespace)
METRIC_NAME = "DLQRedriven"
# Long enough to print or move a batch, short enough that an interrupted command leaves nothing hidden
# for long; every successful read resets the visibility to 0 right away.
READ_VISIBILITY_SECONDS = 60
# Long polling asks every SQS server (a short poll samples some and may answer empty on a non-empty queue).
RECEIVE_WAIT_SECONDS = 1
MOVE_TASK_POLL_SECONDS = 2.0
SQS_DLQ, BUS_TARGET_DLQ, ON_FAILURE = "sqs-dlq", "event-bus-target-dlq", "on-failure-destination"
# Who writes to each on-failure destination (platform main.tf, on_failure_destination_arn).
ON_FAILURE_WRITERS = {"relay-failures": "outbox_relay (transactions table stream)",
                      "fraud-scoring-failures": "fraud_scorer (fraud Kinesis stream)"}
EVENTBRIDGE_ERROR_ATTRIBUTES = ("ERROR_CODE", "ERROR_MESSAGE", "RULE_ARN", "TARGET_ARN", "RETRY_ATTEMPTS",
                                "EXHAUSTED_RETRY_CONDITION")
# How an emulator (moto 5.2.5 has no StartMessageMoveTask) answers an action it lacks: in process a
# NotImplementedError, as a server a bare HTTP 500 whose error code is "500". Real SQS never answers
# with these codes, so a real internal error is reported, never mistaken for a missing API.
NOT_IMPLEMENTED_CODES = {"500", "501", "NotImplemented", "InvalidAction", "UnknownOperationException",
                         "UnsupportedOperation"}


@dataclass(frozen=True)
class DeadLetterQueue:
    key: str  # the key in the outputs' dlq_urls
    url: str
    kind: str
    source: str  # what feeds it, for people
    source_url: str | None = None  # the queue a redrive sends back to (SQS DLQs)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def catalog(environment: Environment) -> list[DeadLetterQueue]:
    dlq_urls = environment.need("dlq_urls")
    queue_urls = environment.outputs.get("queue_urls") or {}
    bus = environment.outputs.get("bus_name") or environment.outputs.get("event_bus_name") or "the bus"
    queues = []
    for key, url in sorted(dlq_urls.items()):
        if key == "event-bus-targets":
            queues.append(DeadLetterQueue(key, url, BUS_TARGET_DLQ, f"rule targets on {bus}"))
        elif url in queue_urls.values():  # the queue itself is a destination, not a DLQ of one
            queue_key = next(k for k, v in queue_urls.items() if v == url)
            writer = ON_FAILURE_WRITERS.get(queue_key, f"a stream consumer ({queue_key})")
            queues.append(DeadLetterQueue(key, url, ON_FAILURE, f"on-failure of {writer}"))
        elif key in queue_urls:
            queues.append(DeadLetterQueue(key, url, SQS_DLQ, f"queue {key}", queue_urls[key]))
        else:
            queues.append(DeadLetterQueue(key, url, SQS_DLQ, "unknown source"))
    return queues


def resolve(environment: Environment, name: str) -> DeadLetterQueue:
    """A DLQ by its outputs key, its queue name, its URL, or a unique suffix of its name."""
    queues = catalog(environment)
    for match in ((q for q in queues if name in (q.key, q.name, q.url)),
                  (q for q in queues if q.name.endswith(f"-{name}") or q.name.endswith(f"-{name}-dlq"))):
        found = list(match)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise Refused(f"{name!r} names several DLQs ({', '.join(q.key for q in found)}): use the full name")
    raise Refused(f"no DLQ named {name!r}; known: {', '.join(q.key for q in queues)}")


# ---------------------------------------------------------------------------------------------- reading


def receive_batches(sqs: Any, url: str, limit: int | None, visibility: int = READ_VISIBILITY_SECONDS,
                    batch_size: int = 10) -> Iterator[list[dict]]:
    """Batches of messages not seen before in this run, until the queue has nothing new or `limit` is reached.

    A message kept (not deleted) by the caller stays invisible for `visibility` seconds; if it comes back
    during a long run it is recognised by its MessageId and not yielded twice."""
    seen: set[str] = set()
    while limit is None or len(seen) < limit:
        wanted = batch_size if limit is None else min(batch_size, limit - len(seen))
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=wanted, VisibilityTimeout=visibility,
                                       WaitTimeSeconds=RECEIVE_WAIT_SECONDS, AttributeNames=["All"],
                                       MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"])
        fresh = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
        if not fresh:
            return
        seen.update(m["MessageId"] for m in fresh)
        yield fresh


def release(sqs: Any, url: str, messages: list[dict]) -> None:
    """Make messages visible again at once (ChangeMessageVisibility 0), ten at a time."""
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(chunk)])


def read(sqs: Any, url: str, limit: int | None) -> list[dict]:
    """Up to `limit` messages, left in the queue (visible again when this returns)."""
    messages: list[dict] = []
    try:
        for batch in receive_batches(sqs, url, limit):
            messages.extend(batch)
    finally:
        release(sqs, url, messages)
    return messages


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _attribute(message: dict, name: str) -> str | None:
    value = (message.get("MessageAttributes") or {}).get(name)
    return value.get("StringValue") if value else None


def sent_at(message: dict) -> datetime | None:
    stamp = (message.get("Attributes") or {}).get("SentTimestamp")
    return datetime.fromtimestamp(int(stamp) / 1000, timezone.utc) if stamp else None


def is_event(value: Any) -> bool:
    return isinstance(value, dict) and {"source", "detail-type", "detail"} <= set(value)


def decode(message: dict, queue: DeadLetterQueue | None = None) -> dict:
    """What a message is, readable: its envelope decoded, the failure reason when one is known."""
    body = _json(message.get("Body", ""))
    attributes = message.get("Attributes") or {}
    sent = sent_at(message)
    decoded: dict[str, Any] = {"message_id": message["MessageId"], "sent_at": sent.isoformat(timespec="seconds") if sent else None,
                               "receive_count": int(attributes.get("ApproximateReceiveCount", 0) or 0)}
    reason = None
    if is_event(body):
        decoded |= {"kind": "eventbridge", "id": body.get("id"), "source": body["source"],
                    "detail-type": body["detail-type"], "time": body.get("time"), "detail": _json(body["detail"])}
    elif isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
        inner = _json(body["Message"])
        decoded |= {"kind": "sns", "topic": body.get("TopicArn"), "sns_message_id": body.get("MessageId"),
                    "subject": body.get("Subject"), "time": body.get("Timestamp"), "message": inner}
        if is_event(inner):  # an event published through a topic
            decoded |= {"source": inner["source"], "detail-type": inner["detail-type"], "id": inner.get("id")}
    elif isinstance(body, dict) and "requestContext" in body and "responseContext" in body:
        request, response = body["requestContext"], body["responseContext"]
        batch = body.get("DDBStreamBatchInfo") or body.get("KinesisBatchInfo") or body.get("SQSBatchResponse") or {}
        decoded |= {"kind": "lambda-on-failure", "function": request.get("functionArn"),
                    "time": body.get("timestamp"), "records": batch}
        reason = (f"{request.get('condition')}: function error {response.get('functionError') or '-'} "
                  f"(status {response.get('statusCode')}) after {request.get('approximateInvokeCount')} "
                  "invocation(s)")
    else:
        decoded |= {"kind": "raw", "body": body}
    errors = {name: _attribute(message, name) for name in EVENTBRIDGE_ERROR_ATTRIBUTES if _attribute(message, name)}
    if errors:
        reason = (f"{errors.get('ERROR_CODE', '?')}: {errors.get('ERROR_MESSAGE', '')} (rule {errors.get('RULE_ARN', '?')}"
                  f", target {errors.get('TARGET_ARN', '?')}, {errors.get('RETRY_ATTEMPTS', '?')} retries"
                  + (f", {errors['EXHAUSTED_RETRY_CONDITION']}" if "EXHAUSTED_RETRY_CONDITION" in errors else "") + ")")
    if reason is None and attributes.get("DeadLetterQueueSourceArn"):
        reason = f"not processed by the consumer of {attributes['DeadLetterQueueSourceArn'].rsplit(':', 1)[-1]}"
    if reason is None and queue is not None and queue.kind == SQS_DLQ:
        reason = (f"received from {queue.source} more often than its maxReceiveCount without being deleted: the "
                  "consumer failed it (its logs say why)")
    decoded["reason"] = reason
    return decoded


# -------------------------------------------------------------------------------------------------- list


def _age(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = int(max(delta.total_seconds(), 0))
    days, hours, minutes = seconds // 86400, seconds % 86400 // 3600, seconds % 3600 // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds % 60}s" if minutes else f"{seconds}s"


def oldest_age(environment: Environment, sqs: Any, queue: DeadLetterQueue, has_redrive_policy: bool,
               now: datetime) -> tuple[timedelta | None, str]:
    """The age of the oldest message, and where it comes from: CloudWatch's metric, else a sample's SentTimestamp."""
    try:
        points = environment.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue.name}], StartTime=now - timedelta(minutes=15),
            EndTime=now, Period=60, Statistics=["Maximum"])["Datapoints"]
    except (BotoCoreError, ClientError):
        points = []
    if points:
        latest = max(points, key=lambda p: p["Timestamp"])
        return timedelta(seconds=latest["Maximum"]), "metric"
    if has_redrive_policy:  # a sampling receive would count toward this queue's own maxReceiveCount
        return None, "not sampled"
    stamps = [s for s in (sent_at(m) for m in read(sqs, queue.url, 10)) if s]
    return (now - min(stamps), "sample") if stamps else (None, "sample")


def list_queues(environment: Environment, console: Any, now: datetime) -> int:
    from rich.table import Table

    sqs = environment.client("sqs")
    table = Table(title="Dead-letter queues")
    for column in ("name", "kind", "depth", "visible", "in flight", "oldest", "source"):
        table.add_column(column, justify="right" if column in ("depth", "visible", "in flight", "oldest") else "left")
    stuck = 0
    for queue in catalog(environment):
        attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "RedrivePolicy"]).get("Attributes", {})
        visible = int(attributes.get("ApproximateNumberOfMessages", 0))
        in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        depth = visible + in_flight
        age, basis = (None, "") if depth == 0 else oldest_age(environment, sqs, queue, "RedrivePolicy" in attributes, now)
        stuck += depth > 0
        oldest = "-" if depth == 0 else f"{_age(age)} ({basis})" if age is not None else basis
        table.add_row(queue.key, queue.kind, str(depth), str(visible), str(in_flight), oldest, queue.source,
                      style="bold red" if depth else None)
    console.print(table)
    if stuck:
        print(f"{stuck} DLQ(s) hold messages: `paystream-ops dlq peek NAME` to see why", file=sys.stderr)
        return 3
    return 0


# -------------------------------------------------------------------------------------------------- peek


def _redrive_policy_warning(sqs: Any, queue: DeadLetterQueue) -> None:
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
    if "RedrivePolicy" in attributes:
        limit = json.loads(attributes["RedrivePolicy"]).get("maxReceiveCount")
        print(f"note: {queue.name} has its own redrive policy (maxReceiveCount {limit}): each read counts as a "
              "receive", file=sys.stderr)


def peek(environment: Environment, queue: DeadLetterQueue, limit: int, console: Any) -> int:
    from rich.panel import Panel
    from rich.syntax import Syntax

    sqs = environment.client("sqs")
    _redrive_policy_warning(sqs, queue)
    messages = read(sqs, queue.url, limit)
    for message in messages:
        decoded = decode(message, queue)
        title = " · ".join(str(decoded[k]) for k in ("kind", "source", "detail-type", "id") if decoded.get(k))
        console.print(Panel(Syntax(json.dumps(decoded, indent=2, ensure_ascii=False, default=str), "json",
                                   word_wrap=True), title=title, subtitle=f"message {decoded['message_id']}"))
    print(f"{len(messages)} message(s) shown from {queue.name}, left in the queue", file=sys.stderr)
    return 0


def export(environment: Environment, queue: DeadLetterQueue, path: str, limit: int | None) -> int:
    sqs = environment.client("sqs")
    _redrive_policy_warning(sqs, queue)
    messages = read(sqs, queue.url, limit)
    lines = [json.dumps({"message": message, "decoded": decode(message, queue)}, ensure_ascii=False, default=str)
             for message in messages]
    text = "".join(f"{line}\n" for line in lines)
    if path == "-":
        sys.stdout.write(text)
    else:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    print(f"{len(messages)} message(s) of {queue.name} exported to {path}, left in the queue", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------ redrive


class _Pacer:
    """Holds the pace to `rate` messages per second (None: as fast as SQS answers)."""

    def __init__(self, rate: float | None, sleep: Callable[[float], None] = time.sleep):
        self.rate, self.sleep, self.started, self.count = rate, sleep, time.monotonic(), 0

    def done(self, count: int) -> None:
        self.count += count
        if self.rate:
            ahead = self.count / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                self.sleep(ahead)


def _user_attributes(message: dict) -> dict:
    return {name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
            for name, value in (message.get("MessageAttributes") or {}).items()}


def _not_implemented(exc: Exception) -> bool:
    if isinstance(exc, NotImplementedError):
        return True
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NOT_IMPLEMENTED_CODES


def _arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _move_task(sqs: Any, queue: DeadLetterQueue, rate: float | None) -> int | None:
    """Redrive with StartMessageMoveTask (SQS moves and deletes atomically); None when the API is missing."""
    request: dict[str, Any] = {"SourceArn": _arn(sqs, queue.url), "DestinationArn": _arn(sqs, queue.source_url)}
    if rate:
        request["MaxNumberOfMessagesPerSecond"] = max(1, min(500, int(rate)))
    try:
        sqs.start_message_move_task(**request)
    except (NotImplementedError, ClientError) as exc:
        if _not_implemented(exc):
            answer = (exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else "not implemented")
            print(f"note: StartMessageMoveTask is not available here (the endpoint answered {answer}); moving "
                  "message by message (receive, send, then delete)", file=sys.stderr)
            return None
        raise
    bar, task = progress(None, f"redriving {queue.name} (move task)")
    with bar:
        while True:
            tasks = sqs.list_message_move_tasks(SourceArn=request["SourceArn"], MaxResults=1)["Results"]
            current = tasks[0] if tasks else {"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 0}
            bar.update(task, total=current.get("ApproximateNumberOfMessagesToMove"),
                            completed=current.get("ApproximateNumberOfMessagesMoved", 0))
            if current["Status"] in ("COMPLETED", "CANCELLED", "FAILED"):
                break
            time.sleep(MOVE_TASK_POLL_SECONDS)
    moved = int(current.get("ApproximateNumberOfMessagesMoved", 0))
    if current["Status"] != "COMPLETED":
        raise OperationFailed(f"the move task ended {current['Status']} after {moved} message(s) "
                              f"({current.get('FailureReason', 'no reason given')}); run the redrive again")
    return moved


def _by_size(items: list, size: Callable[[Any], int], limit: int = 240_000) -> Iterator[list]:
    """Consecutive groups under `limit` bytes: PutEvents refuses a request over 256 KiB, SendMessageBatch one
    over 1 MiB (256 KiB before 2025), and a batch of large messages must not block a redrive for good."""
    group, total = [], 0
    for item in items:
        if group and total + size(item) > limit:
            yield group
            group, total = [], 0
        group.append(item)
        total += size(item)
    if group:
        yield group


def _send_to_queue(sqs: Any, queue: DeadLetterQueue) -> Callable[[list[dict]], set[str]]:
    fifo = queue.source_url.endswith(".fifo")

    def send(batch: list[dict]) -> set[str]:
        entries = []
        for i, message in enumerate(batch):
            entry = {"Id": str(i), "MessageBody": message["Body"]}
            if _user_attributes(message):
                entry["MessageAttributes"] = _user_attributes(message)
            if fifo:
                attributes = message.get("Attributes") or {}
                entry |= {"MessageGroupId": attributes["MessageGroupId"],
                          "MessageDeduplicationId": attributes.get("MessageDeduplicationId") or message["MessageId"]}
            entries.append(entry)
        sent = set()
        for group in _by_size(entries, lambda e: len(e["MessageBody"].encode()) + len(json.dumps(e.get("MessageAttributes", {})))):
            response = sqs.send_message_batch(QueueUrl=queue.source_url, Entries=group)
            sent |= {batch[int(ok["Id"])]["MessageId"] for ok in response.get("Successful", [])}
        return sent

    return send


def _publish_to_bus(events: Any, bus_name: str) -> Callable[[list[dict]], set[str]]:
    def send(batch: list[dict]) -> set[str]:
        entries, owners = [], []
        for message in batch:
            event = _json(message["Body"])
            if not is_event(event):
                continue  # not an EventBridge event: kept in the DLQ, counted as failed
            detail = event["detail"] if isinstance(event["detail"], str) else json.dumps(event["detail"])
            entry = {"Source": event["source"], "DetailType": event["detail-type"], "Detail": detail,
                     "EventBusName": bus_name}
            if event.get("resources"):
                entry["Resources"] = event["resources"]
            entries.append(entry)
            owners.append(message["MessageId"])
        if not entries:
            return set()
        published, start = set(), 0
        for group in _by_size(entries, lambda e: len(e["Detail"].encode()) + len(e["Source"]) + len(e["DetailType"])):
            response = events.put_events(Entries=group)
            # One result per entry, in order; a failed one has an ErrorCode and stays in the DLQ.
            published |= {owner for owner, result in zip(owners[start:start + len(group)], response["Entries"])
                          if result.get("EventId") and not result.get("ErrorCode")}
            start += len(group)
        return published

    return send


def _manual(sqs: Any, queue: DeadLetterQueue, send: Callable[[list[dict]], set[str]], limit: int | None,
            rate: float | None, total: int | None) -> tuple[int, int]:
    """Receive, send, and delete only what was sent: an interruption leaves every message in the DLQ or
    delivered (a message sent but not yet deleted is delivered again by a re-run: at least once)."""
    moved, kept = 0, []
    # Received but neither deleted nor in `kept` yet. Whatever stops the loop (a failed call, Ctrl-C) releases
    # them too: left invisible for READ_VISIBILITY_SECONDS they would be missed by a re-run, which would then
    # report success while they come back to the DLQ a minute later.
    in_hand: list[dict] = []
    pacer = _Pacer(rate)
    bar, task = progress(total, f"redriving {queue.name}")
    try:
        with bar:
            # Smaller batches keep a low rate smooth.
            for batch in receive_batches(sqs, queue.url, limit, batch_size=max(1, min(10, int(rate or 10)))):
                in_hand = list(batch)
                try:
                    sent = send(batch)
                except (BotoCoreError, ClientError) as exc:
                    raise OperationFailed(f"sending failed after {moved} message(s) moved ({exc}); nothing was "
                                          "deleted that was not sent: run the redrive again", moved) from None
                done = [m for m in batch if m["MessageId"] in sent]
                for start in range(0, len(done), 10):
                    chunk = done[start:start + 10]
                    sqs.delete_message_batch(QueueUrl=queue.url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])
                    deleted = {m["MessageId"] for m in chunk}
                    in_hand = [m for m in in_hand if m["MessageId"] not in deleted]
                kept.extend(in_hand)  # the ones not sent
                in_hand = []
                moved += len(done)
                bar.update(task, advance=len(batch))
                pacer.done(len(done))
                if len(done) < len(batch):
                    raise OperationFailed(f"{len(batch) - len(done)} message(s) could not be sent and stay in the "
                                          f"DLQ ({moved} moved); see `dlq peek {queue.key}`, then run the redrive "
                                          "again", moved)
    finally:
        left = kept + in_hand
        try:  # what was not moved is visible again at once, for a re-run
            release(sqs, queue.url, left)
        except (BotoCoreError, ClientError) as exc:
            print(f"warning: {len(left)} message(s) stay invisible for up to {READ_VISIBILITY_SECONDS} s ({exc})",
                  file=sys.stderr)
    return moved, len(kept)


def _metric(environment: Environment, queue: DeadLetterQueue, count: int) -> None:
    try:
        environment.client("cloudwatch").put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[{
            "MetricName": METRIC_NAME, "Dimensions": [{"Name": "Queue", "Value": queue.name}],
            "Value": count, "Unit": "Count"}])
    except (BotoCoreError, ClientError) as exc:  # the messages are moved; a missing data point is not a failure
        print(f"warning: could not put the {METRIC_NAME} metric ({exc})", file=sys.stderr)


def redrive(environment: Environment, queue: DeadLetterQueue, limit: int | None, rate: float | None,
            dry_run: bool, console: Any, confirm: Callable[[str], bool]) -> int:
    sqs = environment.client("sqs")
    if queue.kind == ON_FAILURE:
        raise Refused(f"{queue.key} holds Lambda on-failure records (pointers to stream records, not the events): "
                      "there is nothing to send back; the events are in the transactions table (replay them), "
                      "then `dlq purge` it")
    if queue.kind == SQS_DLQ and not queue.source_url:
        raise Refused(f"the outputs name no source queue for {queue.key}")
    bus = environment.outputs.get("bus_name") or environment.outputs.get("event_bus_name")
    if queue.kind == BUS_TARGET_DLQ and not bus:
        raise EnvironmentError_("the outputs lack bus_name")
    destination = f"bus {bus} (PutEvents)" if queue.kind == BUS_TARGET_DLQ else queue.source_url.rsplit("/", 1)[-1]
    if dry_run:
        from rich.table import Table

        messages = read(sqs, queue.url, limit)
        table = Table(title=f"Would redrive {len(messages)} message(s) from {queue.name} to {destination}")
        for column in ("message", "kind", "detail-type", "event", "sent", "reason"):
            table.add_column(column)
        for message in messages:
            d = decode(message, queue)
            detail = d.get("detail") if isinstance(d.get("detail"), dict) else {}
            table.add_row(d["message_id"], d["kind"], d.get("detail-type") or "-",
                          str(detail.get("event_id") or d.get("id") or "-"), d["sent_at"] or "-", d["reason"] or "-")
        console.print(table)
        return 0
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"])
    depth = int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))
    total = min(depth, limit) if limit is not None else depth
    if not confirm(f"Redrive {'up to ' + str(limit) if limit is not None else 'every'} message of {queue.name} "
                   f"(about {depth}) to {destination}? Type the DLQ's key ({queue.key}) to confirm: "):
        raise OperationFailed(f"not confirmed: {queue.name} left as it is")
    moved = None
    if queue.kind == SQS_DLQ and limit is None:  # a move task moves everything: --max needs the manual path
        moved = _move_task(sqs, queue, rate)
    try:
        if moved is None:
            send = (_publish_to_bus(environment.client("events"), bus) if queue.kind == BUS_TARGET_DLQ
                    else _send_to_queue(sqs, queue))
            moved, _ = _manual(sqs, queue, send, limit, rate, total)
    except OperationFailed as failed:
        _metric(environment, queue, failed.moved)
        raise
    _metric(environment, queue, moved)
    print(f"{moved} message(s) redriven from {queue.name} to {destination}")
    return 0


# -------------------------------------------------------------------------------------------------- purge


def purge(environment: Environment, queue: DeadLetterQueue, dry_run: bool, confirm: Callable[[str], bool]) -> int:
    sqs = environment.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]).get("Attributes", {})
    depth = sum(int(v) for v in attributes.values())
    if dry_run:
        print(f"would purge {queue.name}: about {depth} message(s) deleted for good")
        return 0
    if not confirm(f"Delete every message of {queue.name} (about {depth}) for good? Type the DLQ's key "
                   f"({queue.key}) to confirm: "):
        raise OperationFailed(f"not confirmed: {queue.name} left as it is")
    sqs.purge_queue(QueueUrl=queue.url)
    print(f"{queue.name} purged (about {depth} message(s); SQS finishes a purge within 60 s)")
    return 0


# ------------------------------------------------------------------------------------------------ command line


def register(commands_root: Any, common: dict) -> None:
    """`paystream-ops dlq list|peek|redrive|export|purge` (see paystream_ops.common)."""
    dlq = commands_root.add_parser("dlq", help="dead-letter queues: list, peek, redrive, export, purge",
                            description="Dead-letter queues: what is stuck, why, and putting it back.", **common)
    commands = dlq.add_subparsers(dest="command", required=True, parser_class=type(dlq))

    commands.add_parser("list", help="every DLQ with depth, oldest message age and source (exit 3 if any holds messages)",
                        description="Every DLQ (consumer DLQs, the event-bus target DLQ, the on-failure "
                                    "destinations) with depth (visible + in flight), the oldest message's age "
                                    "(CloudWatch's ApproximateAgeOfOldestMessage, else the SentTimestamp of a "
                                    "sample) and what feeds it.", **common)

    peek = commands.add_parser("peek", help="messages pretty-printed, envelopes decoded, failure reason; left in place",
                               description="Print messages of a DLQ without consuming them: EventBridge and SNS "
                                           "envelopes decoded, the failure reason when the message carries one. "
                                           "Messages are received with a short visibility timeout and made visible "
                                           "again right after.", **common)
    peek.add_argument("name", metavar="NAME")
    peek.add_argument("--max", type=positive_int, default=10, metavar="N", help="at most N messages (default 10)")

    redrive = commands.add_parser(
        "redrive", help="send messages back to their source (queue, or the bus for event-bus-targets)",
        description="Put a DLQ's messages back where they failed. A consumer DLQ goes back to its queue: with SQS "
                    "StartMessageMoveTask where the API exists (not with --max, which the API lacks), else receive, "
                    "send, and delete only what was sent. The event-bus target DLQ is re-published to the bus with "
                    "PutEvents (original source, detail-type, detail; every matching rule gets it again); entries "
                    "PutEvents rejects stay in the DLQ. Delivery is at least once: an interrupted redrive run again "
                    "may deliver a message twice, which the consumers tolerate (they are idempotent on the event's "
                    "data, not on the envelope: a state machine that appends nothing twice, idempotency records, "
                    "keyed Stripe calls). Puts the metric paystream/DLQRedriven (dimension Queue = the DLQ's name).", **common)
    redrive.add_argument("name", metavar="NAME")
    redrive.add_argument("--max", type=positive_int, metavar="N", help="at most N messages (default all)")
    redrive.add_argument("--rate", type=positive_float, metavar="R", help="at most R messages per second")

    export = commands.add_parser("export", help="write messages as JSON lines to FILE ('-': stdout); left in place",
                                 description="Write a DLQ's messages (raw message and decoded view, one JSON object "
                                             "per line) to FILE, leaving them in the queue.", **common)
    export.add_argument("name", metavar="NAME")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--max", type=positive_int, metavar="N", help="at most N messages (default all)")

    purge = commands.add_parser("purge", help="delete every message of a DLQ (asks for confirmation unless --yes)",
                                description="Delete every message of a DLQ for good (SQS PurgeQueue). Export "
                                            "first if they may be needed.", **common)
    purge.add_argument("name", metavar="NAME")

    for command in (redrive, purge):
        command.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
        command.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    dlq.set_defaults(handler=handle)


def handle(args: Any, context: Context) -> int:
    environment = context.environment
    if args.command == "list":
        return list_queues(environment, context.console, context.now)
    queue = resolve(environment, args.name)

    def confirm(prompt: str) -> bool:
        return context.confirm(prompt, queue.key)

    if args.command == "peek":
        return peek(environment, queue, args.max, context.console)
    if args.command == "export":
        return export(environment, queue, args.file, args.max)
    if args.command == "redrive":
        return redrive(environment, queue, args.max, args.rate, context.dry_run, context.console, confirm)
    return purge(environment, queue, context.dry_run, confirm)
