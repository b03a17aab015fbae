"""`make bench` (rebuild part): `paystream-ops rebuild` measured on a running local stack (issue 7, item 3:
goal >= 2,000 events per second).

Seeds N payments (default 2,000) straight into the stack's transactions table with BatchWriteItem, each a
valid history built with the core's state machine (`paystream.states.created_event` / `next_event` /
`apply`): succeeded (processing, fraud.scored, succeeded; a fifth of them then partially refunded),
declined (processing, fraud.scored, failed) or held for review (processing, fraud.scored, review,
reviewed, succeeded) — about 4.5 events per payment, the Stripe objects kept in the details as the platform
keeps them (~1 KB of JSON). Then it corrupts some projections (a third each missing, behind by one event,
different: status and amount), waits until the stack's stream consumers have read past the seed's stream
records (`settle`: they drop them, but reading ~20,000 records keeps the emulator busy for a minute), and
times, in this process (no interpreter start-up):

- `dry_run`: `paystream-ops rebuild --dry-run` over the whole table (Scan + fold + compare + report);
- `apply`: `paystream-ops rebuild --yes` (Scan + fold + compare + guarded writes of the changed ones), and
  `write` alone (the thread pool of guarded writes);
- `check`: a second `--dry-run`, which must find nothing (exit 0);
- `emulator_scan`: a bare paginated Scan of the same table (all items, and Select=COUNT), for the ceiling the
  emulator sets on any whole-table read (moto copies and re-serializes every item it returns).

events/s = events folded / seconds. The whole table is read, so the stack's own payments count too
(`events` says how many). Writes to bench/rebuild.json (machine, commit, load average).

The seeded events must not feed the platform (the outbox relay would publish 9,000 events, the fraud scorer
score 2,000 payments, and `gaps` list them as never relayed): the relay's stream mapping takes only INSERTs
of item_type event|stripe_event, so each event is first inserted as item_type `bench_seed` and then
overwritten as `event` (a MODIFY), and carries `relayed_at`. The seeded items are deleted afterwards unless
--keep.

Usage: `python -m localdev.bench_rebuild [--outputs FILE]` against a running stack (default
`.local/outputs.json`), or `--own-stack` to start one on free ports and stop it afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path

from typing import Any

from localdev.bench_stack import DEFAULT_OUTPUTS, NoStack, bench_stack

from localdev.stack import PROJECT_ROOT

BATCH_WRITE = 25  # BatchWriteItem's limit
SEED_WRITERS = 4


def _client(outputs: dict, service: str):
    import boto3
    from botocore.config import Config

    return boto3.client(service, endpoint_url=outputs.get("aws_endpoint_url"), region_name=outputs["region"],
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16))


def _intent(rng: random.Random, transaction_id: str, amount: int, status: str) -> str:
    """A PaymentIntent as the platform stores it in a detail (JSON text, client_secret removed)."""
    return json.dumps({
        "id": f"pi_bench_{transaction_id[:12]}", "object": "payment_intent", "amount": amount,
        "amount_capturable": 0, "amount_received": amount if status == "succeeded" else 0, "currency": "usd",
        "capture_method": "automatic", "confirmation_method": "automatic", "created": 1_795_000_000 + rng.randrange(10**6),
        "customer": None, "description": None, "livemode": False, "metadata": {"transaction_id": transaction_id},
        "payment_method": f"pm_bench_{rng.randrange(10**8)}", "payment_method_types": ["card"],
        "status": status, "latest_charge": f"ch_bench_{rng.randrange(10**8)}",
        "last_payment_error": None if status != "requires_payment_method" else {
            "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
        "charges": {"object": "list", "data": [], "has_more": False, "url": "/v1/charges"},
    })


def history(rng: random.Random, index: int) -> list:
    """One payment's events (valid: each built on the projection the previous ones fold to)."""
    from paystream.models import PaymentRequest
    from paystream.states import apply, created_event, next_event

    transaction_id = str(uuid.uuid4())
    amount = rng.randrange(500, 50_000)
    request = PaymentRequest(amount=amount, currency="usd", customer_id=f"cus_bench_{index % 400:03d}",
                             payment_method_id="pm_card_visa", order_id=f"order-bench-{index}",
                             metadata={"cart": str(index)}, device_id=f"dev_{index % 700}",
                             ip_address=f"192.0.2.{index % 250 + 1}", country="DE")
    events = [created_event(transaction_id, request)]
    projection = apply(None, events[0])
    pi = f"pi_bench_{transaction_id[:12]}"
    kind = rng.random()
    steps: list[tuple[str, dict]] = [("payment.processing", {"payment_intent_id": pi, "stripe_status": "processing",
                                                            "stripe_payment_intent": _intent(rng, transaction_id, amount, "processing")})]
    if kind < 0.15:  # held for review, approved, then succeeded
        steps += [("fraud.scored", {"risk_score": rng.randrange(70, 95), "risk_factors": ["velocity"]}),
                  ("payment.review", {"reason": "risk_score >= 70"}),
                  ("payment.reviewed", {"decision": "approved", "operator": "bench", "reason": "known customer"}),
                  ("payment.succeeded", {"payment_intent_id": pi, "stripe_status": "succeeded",
                                         "stripe_payment_intent": _intent(rng, transaction_id, amount, "succeeded")})]
    elif kind < 0.35:  # declined
        steps += [("fraud.scored", {"risk_score": rng.randrange(0, 60), "risk_factors": []}),
                  ("payment.failed", {"payment_intent_id": pi, "retryable": False, "failure_code": "insufficient_funds",
                                      "failure_message": "Your card has insufficient funds.",
                                      "stripe_payment_intent": _intent(rng, transaction_id, amount,
                                                                       "requires_payment_method")})]
    else:
        steps += [("fraud.scored", {"risk_score": rng.randrange(0, 60), "risk_factors": []}),
                  ("payment.succeeded", {"payment_intent_id": pi, "stripe_status": "succeeded",
                                         "stripe_payment_intent": _intent(rng, transaction_id, amount, "succeeded")})]
        if kind > 0.8:
            steps.append(("payment.refunded", {"amount_refunded": amount // 2, "refund_id": f"re_bench_{index}",
                                               "refund_amount": amount // 2, "refund_status": "succeeded"}))
    for event_type, detail in steps:
        event = next_event(projection, event_type, detail,
                           source="paystream.fraud" if event_type == "fraud.scored" else "paystream.payments")
        events.append(event)
        projection = apply(projection, event)
    return events


def _batch_write(client: Any, table: str, requests: list[dict]) -> None:
    def send(chunk: list[dict]) -> None:
        pending = {table: chunk}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    chunks = [requests[i:i + BATCH_WRITE] for i in range(0, len(requests), BATCH_WRITE)]
    with ThreadPoolExecutor(max_workers=SEED_WRITERS) as pool:
        list(pool.map(send, chunks))


def seed(outputs: dict, payments: int, corrupt_fraction: float, rng: random.Random) -> dict:
    """Store `payments` histories, corrupting a fraction of their projections; returns what it stored."""
    from paystream.adapters.dynamodb_store import serialize
    from paystream.states import rebuild
    from paystream.store import event_item, projection_item

    client, table = _client(outputs, "dynamodb"), outputs["table_names"]["transactions"]
    histories = [history(rng, index) for index in range(payments)]
    corrupted = rng.sample(range(payments), int(payments * corrupt_fraction))
    kinds = {index: ("missing", "behind", "different")[n % 3] for n, index in enumerate(corrupted)}
    placeholders, events, projections, keys = [], [], [], []
    for index, items in enumerate(histories):
        for event in items:
            item = {**event_item(event), "relayed_at": event.occurred_at, "bus_event_id": "bench-not-published"}
            placeholders.append({"PutRequest": {"Item": serialize({**item, "item_type": "bench_seed"})}})
            events.append({"PutRequest": {"Item": serialize(item)}})
            keys.append((item["pk"], item["sk"]))
        kind = kinds.get(index)
        projection = rebuild(items[:-1] if kind == "behind" else items)
        stored = projection_item(projection)
        keys.append((stored["pk"], stored["sk"]))  # also for a missing one: the rebuild writes it
        if kind == "missing":
            continue
        if kind == "different":
            stored |= {"status": "refunded" if stored["status"] != "refunded" else "failed", "amount": 1}
        projections.append({"PutRequest": {"Item": serialize(stored)}})
    started = time.monotonic()
    _batch_write(client, table, placeholders)  # INSERTs the relay's stream filter drops
    _batch_write(client, table, events)  # MODIFYs: dropped too
    _batch_write(client, table, projections)
    return {"payments": payments, "events": len(events), "keys": keys,
            "corrupted": {kind: sum(1 for k in kinds.values() if k == kind) for kind in ("missing", "behind", "different")},
            "seed_seconds": round(time.monotonic() - started, 2)}


def delete(outputs: dict, keys: list[tuple[str, str]]) -> None:
    client, table = _client(outputs, "dynamodb"), outputs["table_names"]["transactions"]
    _batch_write(client, table, [{"DeleteRequest": {"Key": {"pk": {"S": pk}, "sk": {"S": sk}}}} for pk, sk in keys])


def stream_positions(dataplane_url: str) -> list:
    """Every stream shard consumer's position in the local data plane (checkpoint and records buffered)."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{dataplane_url}/_dataplane/status", timeout=30) as response:
        mappings = json.loads(response.read())["mappings"]
    return sorted((m.get("uuid"), s.get("shard_id"), s.get("checkpoint"), s.get("buffered"))
                  for m in mappings for s in m.get("shards") or [])


def settle(outputs: dict, quiet_seconds: float = 3.0, limit_seconds: float = 180.0) -> float:
    """Wait until the stack's stream consumers have read past the seed's ~20,000 stream records (the relay's
    filter drops them, but reading them keeps the emulator busy): no shard position moves for `quiet_seconds`.
    Timing a rebuild while they drain measures the drain. Returns the seconds waited (0 without a local data
    plane to ask)."""
    if not outputs.get("dataplane_url"):
        return 0.0
    started = last_change = time.monotonic()
    positions = stream_positions(outputs["dataplane_url"])
    while time.monotonic() - last_change < quiet_seconds and time.monotonic() - started < limit_seconds:
        time.sleep(0.5)
        current = stream_positions(outputs["dataplane_url"])
        if current != positions:
            positions, last_change = current, time.monotonic()
    return round(time.monotonic() - started, 1)


def emulator_scan(outputs: dict) -> dict:
    """The emulator's own Scan rate over the same table (one segment, every attribute, no filter): the ceiling
    any whole-table read has here, beside what `Select=COUNT` costs (the same scan without returning items)."""
    client, table = _client(outputs, "dynamodb"), outputs["table_names"]["transactions"]
    figures = {}
    for name, extra in (("items", {}), ("count_only", {"Select": "COUNT"})):
        request, count, started = {"TableName": table, **extra}, 0, time.monotonic()
        while True:
            page = client.scan(**request)
            count += page.get("Count", 0)
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        seconds = time.monotonic() - started
        figures[name] = {"items": count, "seconds": round(seconds, 2), "items_per_second": round(count / seconds)}
    return figures


def measure(outputs_path: Path) -> dict:
    """The three runs of the command, in this process, with what each read and wrote."""
    from paystream_ops import cli, rebuild

    reports, writes = [], []
    analyse, write_changes = rebuild.analyse, rebuild.write_changes

    def analysing(*args, **kwargs):
        reports.append(analyse(*args, **kwargs))
        return reports[-1]

    def writing(*args, **kwargs):
        started = time.monotonic()
        result = write_changes(*args, **kwargs)
        writes.append((time.monotonic() - started, result))
        return result

    rebuild.analyse, rebuild.write_changes = analysing, writing
    runs = {}
    try:
        for name, args in (("dry_run", ["--dry-run"]), ("apply", ["--yes"]), ("check", ["--dry-run"])):
            output = io.StringIO()
            started = time.monotonic()
            with redirect_stdout(output):  # the report tables; progress bars stay on stderr
                code = cli.main(["--outputs", str(outputs_path), "rebuild", *args])
            seconds = time.monotonic() - started
            report = reports[-1]
            runs[name] = {"exit_code": code, "payments": report.payments, "events": report.events,
                          "seconds": round(seconds, 2), "events_per_second": round(report.events / seconds),
                          "reading_seconds": round(report.read_seconds, 2),
                          "fold_and_compare_events_per_second": round(
                              report.events / max(report.seconds - report.read_seconds, 1e-6)),
                          "differences": {kind: sum(f.kind == kind for f in report.findings)
                                          for kind in ("missing", "behind", "different", "unreadable")}}
    finally:
        rebuild.analyse, rebuild.write_changes = analyse, write_changes
    seconds, result = writes[-1]
    runs["apply"]["write"] = {"projections_written": len(result.written), "skipped": len(result.skipped),
                              "failed": len(result.failed), "seconds": round(seconds, 2),
                              "projections_per_second": round(len(result.written) / seconds) if seconds else None}
    return runs


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout
        return head + ("+uncommitted changes" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_rebuild", description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                        help="the running stack's outputs.json (default .local/outputs.json)")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--payments", type=int, default=2000, help="payments seeded (default 2,000)")
    parser.add_argument("--corrupt", type=float, default=0.05,
                        help="fraction of the seeded projections corrupted (default 0.05)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="leave the seeded payments in the table")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "rebuild.json")
    args = parser.parse_args(argv)

    try:
        with bench_stack("bench_rebuild", args.outputs, args.own_stack) as outputs_path:
            outputs = json.loads(outputs_path.read_text())
            load_at_start = os.getloadavg()[0]
            seeded = seed(outputs, args.payments, args.corrupt, random.Random(args.seed))
            try:
                seeded["settle_seconds"] = settle(outputs)
                runs = {"emulator_scan": emulator_scan(outputs), **measure(outputs_path)}
            finally:
                if not args.keep:
                    delete(outputs, seeded["keys"])
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    results = {
        "machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
        "commit": _commit(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "how": "paystream-ops rebuild run in-process (cli.main) against the local stack's emulator; whole-table "
               "parallel Scan (4 segments) + fold + compare; apply = the same plus guarded writes (8 threads)",
        "goal_events_per_second": 2000,
        "seeded": {k: v for k, v in seeded.items() if k != "keys"},
        **runs,
        "load_average_1m": {"start": round(load_at_start, 2), "end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    ok = runs["dry_run"]["exit_code"] == 3 and runs["apply"]["exit_code"] == 0 and runs["check"]["exit_code"] == 0
    if not ok:
        print("bench_rebuild: the runs did not end as expected (dry run 3, apply 0, check 0)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
