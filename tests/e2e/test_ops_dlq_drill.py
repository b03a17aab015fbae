"""DLQ drill (docs/runbooks/dlq.md) through the local stack: poison messages → DLQ → fix → `paystream-ops dlq
redrive`, interrupted half-way and run again → every message processed exactly once.

The failure is one a real deployment can have and an operator can fix: a deploy points process_payment at a
transactions table that does not exist (`TRANSACTIONS_TABLE` with a suffix, as a half-done table rename
would), so every Stripe webhook it receives fails with ResourceNotFoundException and is retried by SQS until
`maxReceiveCount` (3; visibility 30 s locally) moves it to the `process-payment` DLQ. The fix is deploying the
right configuration again. On the embedded backend a deploy is UpdateFunctionConfiguration plus the data
plane's reload (what `localdev up` does after Terraform changes a function); LocalStack applies the update
itself. Nothing of the function's code changes.

The messages are real webhooks with a real effect: a refund made outside the platform (the Stripe dashboard)
reaches it only as `charge.refunded`, which process_payment turns into `payment.refunded`, which the notifier
publishes to `payment-notifications`. Exactly once is checked where it shows: one `payment.refunded` event per
payment (no duplicated event ids or types), one notification per refund on a subscribed queue, and nothing of
ours left in the DLQ or the source queue. Only this test's payments, webhooks and messages are asserted on.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter

import pytest

from .test_payments_api import call, eventually, pay, payment_event_types
from .test_webhook_processing import inbox_item, send_webhook

pytestmark = pytest.mark.e2e

PAYMENTS = 12  # 12 poison messages: several redrive batches at --rate 2, done in seconds
DLQ = "process-payment"  # the DLQ's key in the outputs' dlq_urls, as `dlq list` shows it
INTERRUPTED = ("paystream-ops dlq redrive: interrupted; run it again to finish (see its --help for what an "
               "interruption leaves)")


def ops(outputs_path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`paystream-ops --outputs PATH ARGS...` as an operator runs it (PYTHONPATH inherited unchanged)."""
    return subprocess.run([sys.executable, "-m", "paystream_ops.cli", "--outputs", str(outputs_path), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def depth(sqs, url: str) -> int:
    """Visible plus in-flight messages."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def stripe_event_id(message: dict) -> str | None:
    """The Stripe event id of a relayed webhook (detail.stripe_event_id), else None."""
    try:
        return json.loads(message["Body"])["detail"]["stripe_event_id"]
    except (ValueError, KeyError, TypeError):
        return None


def receive_all(sqs, url: str) -> list[dict]:
    """Every visible message of a queue, received (invisible for 20 s): the caller deletes or releases them."""
    seen: dict[str, dict] = {}
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=20,
                                    WaitTimeSeconds=0).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            return list(seen.values())
        seen.update((m["MessageId"], m) for m in fresh)


def in_batches(sqs_call, url: str, messages: list[dict], **entry) -> None:
    for start in range(0, len(messages), 10):
        sqs_call(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **entry}
                                        for i, m in enumerate(messages[start:start + 10])])


def dlq_messages(sqs, url: str) -> dict[str, dict]:
    """The DLQ's messages that carry a Stripe event id, by that id; left in place (visible again at once).
    The DLQ has no redrive policy of its own, so these receives move nothing anywhere."""
    messages = receive_all(sqs, url)
    in_batches(sqs.change_message_visibility_batch, url, messages, VisibilityTimeout=0)
    return {stripe_event_id(m): m for m in messages if stripe_event_id(m)}


def delete_from(sqs, url: str, event_ids: set[str]) -> None:
    """Remove this test's own messages (by Stripe event id) from a queue; every other message stays as it was."""
    messages = receive_all(sqs, url)
    in_batches(sqs.delete_message_batch, url, [m for m in messages if stripe_event_id(m) in event_ids])
    in_batches(sqs.change_message_visibility_batch, url, [m for m in messages if stripe_event_id(m) not in event_ids],
               VisibilityTimeout=0)


def localstripe_webhooks(stripe_client, payment_intent_ids: set[str], event_type: str) -> dict[str, str]:
    """localstripe's events of `event_type` for these PaymentIntents: PaymentIntent id -> event id (every page:
    the session's load and chaos tests leave thousands of events)."""
    return {e.data.object.id: e.id
            for e in stripe_client.v1.events.list(params={"type": event_type, "limit": 100}).auto_paging_iter()
            if e.data.object.id in payment_intent_ids}


def table_row(output: str, key: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(f"│ {key} "))
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


class Deployment:
    """process_payment's environment as deployed, changed and put back the way a deploy does it."""

    def __init__(self, outputs: dict, aws_client):
        self.outputs, self.lam = outputs, aws_client("lambda")
        self.function = outputs["function_names"]["process_payment"]
        self.original = self.variables()

    def variables(self) -> dict[str, str]:
        return self.lam.get_function_configuration(FunctionName=self.function)["Environment"]["Variables"]

    def deploy(self, variables: dict[str, str]) -> None:
        self.lam.update_function_configuration(FunctionName=self.function, Environment={"Variables": variables})
        if self.outputs.get("dataplane_url"):  # embedded backend: the data plane adopts the new configuration
            request = urllib.request.Request(f"{self.outputs['dataplane_url']}/_dataplane/reload", data=b"{}",
                                             method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as response:
                summary = json.loads(response.read())
            assert not summary.get("errors"), summary
        else:
            self.lam.get_waiter("function_updated_v2").wait(FunctionName=self.function)

    def restore(self) -> None:
        if self.variables() != self.original:
            self.deploy(self.original)


def refunded_charge(payment: dict) -> dict:
    """The charge object of Stripe's `charge.refunded` for a full refund of `payment`."""
    return {"id": f"ch_e2e_{uuid.uuid4().hex[:12]}", "object": "charge", "amount": payment["amount"],
            "amount_refunded": payment["amount"], "currency": payment["currency"], "paid": True, "status": "succeeded",
            "refunded": True, "payment_intent": payment["payment_intent_id"], "metadata": {}}


def test_poison_webhooks_dead_lettered_then_redriven_after_the_fix_are_processed_exactly_once(
        outputs, outputs_path, aws_client, stripe_client, subscribe_to_topic, payment_method):
    marks = {"start": time.monotonic()}
    sqs = aws_client("sqs")
    dlq_url = outputs["dlq_urls"][DLQ]
    notifications = subscribe_to_topic("payment-notifications")
    deployment = Deployment(outputs, aws_client)
    table = deployment.original["TRANSACTIONS_TABLE"]
    assert table == outputs["table_names"]["transactions"]
    redrive: subprocess.Popen | None = None
    refunds: dict[str, dict] = {}  # Stripe event id -> payment
    try:
        # Payments taken while everything is healthy; localstripe's own payment_intent.succeeded webhooks
        # are processed (nothing to append) before the break, so only the refunds below dead-letter.
        # One new customer each: no velocity or amount history to make the fraud scorer hold one for review.
        payments = [pay(outputs, payment_method, amount=1000 + n, customer_id=f"cus_dlq_drill_{uuid.uuid4().hex[:10]}")
                    for n in range(PAYMENTS)]
        assert {p["status"] for p in payments} == {"succeeded"}
        by_intent = {p["payment_intent_id"]: p for p in payments}

        def localstripe_webhooks_processed() -> bool:
            found = localstripe_webhooks(stripe_client, set(by_intent), "payment_intent.succeeded")
            return len(found) == PAYMENTS and all(
                (inbox_item(outputs, aws_client, event_id) or {}).get("processing_status") for event_id in found.values())

        eventually(localstripe_webhooks_processed, "localstripe's webhooks for the drill's payments processed", timeout=60)
        marks["payments taken"] = time.monotonic()

        # The bad deploy: process_payment now reads a table that does not exist.
        deployment.deploy({**deployment.original, "TRANSACTIONS_TABLE": f"{table}-v2"})
        for p in payments:  # refunded in the Stripe dashboard: the platform hears of it only by webhook
            refunds[send_webhook(outputs, "charge.refunded", refunded_charge(p))] = p

        # 3 receives × 30 s visibility, then the next receive moves each to the DLQ.
        eventually(lambda: depth(sqs, dlq_url) >= PAYMENTS and set(refunds) <= set(dlq_messages(sqs, dlq_url)),
                   "every refund webhook in the process-payment DLQ", timeout=150)
        marks["dead-lettered"] = time.monotonic()
        for event_id, p in refunds.items():  # stored, not processed: the payments still show succeeded
            assert not (inbox_item(outputs, aws_client, event_id) or {}).get("processing_status"), event_id
            assert call(outputs, "GET", f"/payments/{p['transaction_id']}")[1]["status"] == "succeeded"

        # The operator sees it: `dlq list` exits 3 with the DLQ's depth, `dlq peek` shows what and why.
        before = depth(sqs, dlq_url)
        listed = ops(outputs_path, "dlq", "list")
        assert listed.returncode == 3, listed.stderr
        row = table_row(listed.stdout, DLQ)
        assert row[1] == "sqs-dlq" and int(row[2]) in {before, depth(sqs, dlq_url)} and int(row[2]) >= PAYMENTS, row
        assert "DLQ(s) hold messages" in listed.stderr
        peeked = ops(outputs_path, "dlq", "peek", DLQ, "--max", str(before + 10))
        assert peeked.returncode == 0, peeked.stderr
        for event_id in refunds:
            assert f'"stripe_event_id": "{event_id}"' in peeked.stdout, event_id
        assert peeked.stdout.count('"detail-type": "stripe.charge.refunded"') >= PAYMENTS
        assert '"reason": ' in peeked.stdout and "process-payment" in peeked.stdout

        # The fix: the right configuration deployed again.
        deployment.restore()
        assert deployment.variables() == deployment.original

        # Redrive at 2 messages/s, interrupted (Ctrl-C) once a few messages have moved ...
        redrive = subprocess.Popen([sys.executable, "-m", "paystream_ops.cli", "--outputs", str(outputs_path), "dlq",
                                    "redrive", DLQ, "--yes", "--rate", "2"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        eventually(lambda: redrive.poll() is not None or depth(sqs, dlq_url) <= before - 4,
                   "the redrive to move a few messages", timeout=60)
        assert redrive.poll() is None, "the redrive finished before it could be interrupted"
        redrive.send_signal(signal.SIGINT)
        out, err = redrive.communicate(timeout=30)
        assert redrive.returncode == 1, (out, err)
        assert err.strip().splitlines()[-1] == INTERRUPTED and "Traceback" not in err, err
        left = set(refunds) & set(dlq_messages(sqs, dlq_url))
        assert 0 < len(left) < PAYMENTS, f"not interrupted half-way: {len(left)} of {PAYMENTS} refunds left in the DLQ"
        # Visible and in flight: a batch the interrupted run left hidden would be counted here but missed by
        # the re-run below.
        remaining = depth(sqs, dlq_url)
        marks["redrive interrupted"] = time.monotonic()

        # ... and run again to completion: it moves everything that is left.
        rerun = ops(outputs_path, "dlq", "redrive", DLQ, "--yes", "--rate", "2")
        assert rerun.returncode == 0, rerun.stderr
        assert f"{remaining} message(s) redriven from" in rerun.stdout, rerun.stdout
        assert depth(sqs, dlq_url) == 0
        marks["redrive finished"] = time.monotonic()

        # Exactly once: each refund became one payment.refunded, notified once; nothing of ours left anywhere.
        def all_refunded() -> list[dict] | None:
            got = [call(outputs, "GET", f"/payments/{p['transaction_id']}")[1] for p in payments]
            return got if all(g["status"] == "refunded" for g in got) else None

        refund_event_ids = {}
        for got in eventually(all_refunded, "every drill payment refunded", timeout=60):
            assert payment_event_types(got) == ["payment.created", "payment.succeeded", "payment.refunded"], got
            ids = [e["id"] for e in got["events"]]
            assert len(ids) == len(set(ids)), got["events"]
            refund_event_ids[got["transaction_id"]] = next(e["id"] for e in got["events"] if e["type"] == "payment.refunded")
        for event_id, p in refunds.items():
            item = inbox_item(outputs, aws_client, event_id)
            # "no_change" when the interruption delivered a webhook twice: the second appended nothing.
            assert item["processing_status"] in ("applied", "no_change") and item["transaction_id"] == p["transaction_id"]

        mine = {p["transaction_id"] for p in payments}
        received: list[dict] = []

        def refund_notifications() -> Counter:
            while batch := sqs.receive_message(QueueUrl=notifications, MaxNumberOfMessages=10).get("Messages", []):
                for m in batch:
                    received.append(json.loads(json.loads(m["Body"])["Message"]))
                sqs.delete_message_batch(QueueUrl=notifications, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
            return Counter((n["transaction_id"], n["notification_id"]) for n in received
                           if n.get("event_type") == "payment.refunded" and n.get("transaction_id") in mine)

        eventually(lambda: {t for t, _ in refund_notifications()} == mine, "a refund notification for every payment",
                   timeout=60)
        # A duplicate would come from a webhook delivered twice: processed within moments of the first, and
        # its notification published moments later. (The queues are shared with the session's other tests,
        # which may leave their own messages waiting in them: only this test's effects are counted.)
        time.sleep(5)
        assert refund_notifications() == Counter(refund_event_ids.items())  # one each, about that very event
        assert depth(sqs, dlq_url) == 0  # nothing went back to the DLQ
        marks["verified"] = time.monotonic()
        times = list(marks.values())
        print("DLQ drill, seconds per phase: " + ", ".join(f"{name} {end - begin:.0f}" for name, begin, end in
                                                          zip(list(marks)[1:], times, times[1:]))
              + f"; total {times[-1] - times[0]:.0f}")
    finally:
        if redrive is not None and redrive.poll() is None:
            redrive.kill()
            redrive.communicate()
        deployment.restore()
        # After a failure half-way, this test's webhooks must not stay in the DLQ (its alarm, other tests' lists).
        delete_from(sqs, dlq_url, set(refunds))
