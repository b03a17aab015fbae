"""`make bench` (webhooks part): the Stripe webhook path measured on a running local stack.

Writes bench/webhooks.json with:
- `webhook_ms` (`p50`, `p95`, `n`): `POST /webhooks/stripe` from request to `200`, one signed event at
  a time (distinct event ids of a type the platform stores and acknowledges without a payment);
- `aws_requests_per_webhook`: every AWS request the emulator served while localstripe's
  `payment_intent.succeeded` webhooks for N payments waiting on 3-D Secure were stored, relayed,
  processed and notified, divided by the number of webhooks localstripe sent in that window —
  split into the functions' own requests (`clients`) and the data plane's polling (`dataplane`), by
  operation;
- `succeeded_to_notification_ms` (`p50`, `p95`, `n`): from asking localstripe to complete 3-D Secure
  (it then sends `payment_intent.succeeded`) to the `payment.succeeded` notification arriving on an
  SQS queue subscribed to the `payment-notifications` topic.

Usage: `python -m localdev.bench_webhooks [--state-dir DIR]` against the stack `make local-up`
started (default `.local`), or `--own-stack` to start one on free ports and stop it afterwards.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from localdev.bench_stack import NoStack, bench_stack

from localdev.stack import PROJECT_ROOT

THREE_D_SECURE_CARD = "4000002500003155"


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"p50": round(statistics.median(ordered), 2), "p95": round(p95, 2), "n": len(ordered)}


def _request(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
             timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Stack:
    """The running stack as outputs.json describes it."""

    def __init__(self, outputs: dict):
        import boto3
        import stripe
        from botocore.config import Config

        self.outputs = outputs
        config = Config(retries={"max_attempts": 2, "mode": "standard"})
        self._boto = lambda service: boto3.client(
            service, endpoint_url=outputs["aws_endpoint_url"], region_name=outputs["region"],
            aws_access_key_id="test", aws_secret_access_key="test", config=config)
        self.stripe = stripe.StripeClient(outputs["stripe_api_key"], base_addresses={"api": outputs["stripe_api_base"]})

    def client(self, service: str):
        return self._boto(service)

    def post_webhook(self, event: dict) -> tuple[int, float]:
        import stripe

        body = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(body, self.outputs["webhook_secret"])
        started = time.perf_counter()
        status, _ = _request(f"{self.outputs['api_url']}/webhooks/stripe", method="POST", body=body.encode(),
                             headers={"Stripe-Signature": header, "Content-Type": "application/json"})
        return status, (time.perf_counter() - started) * 1000

    def requires_action_payment(self) -> dict:
        method = self.stripe.v1.payment_methods.create(params={
            "type": "card", "card": {"number": THREE_D_SECURE_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        body = {"amount": 1999, "currency": "eur", "customer_id": f"cus_bench_{uuid.uuid4().hex[:6]}",
                "payment_method_id": method.id, "order_id": f"bench-{uuid.uuid4().hex[:8]}"}
        status, raw = _request(f"{self.outputs['api_url']}/payments", method="POST", body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json", "x-api-key": self.outputs["api_key"],
                                        "Idempotency-Key": uuid.uuid4().hex})
        payment = json.loads(raw)
        if status != 201 or payment.get("status") != "requires_action":
            raise RuntimeError(f"expected a 201 requires_action payment from the 3-D Secure card, got {status}: {payment}")
        return payment

    def complete_3ds(self, payment: dict) -> None:
        """localstripe's 3-D Secure simulation: the PaymentIntent succeeds and localstripe sends its webhook."""
        url = (f"{self.outputs['stripe_api_base']}/v1/payment_intents/{payment['payment_intent_id']}/_authenticate"
               f"?success=true&client_secret={payment['client_secret']}")
        status, raw = _request(url, method="POST", body=b"",
                               headers={"Authorization": f"Bearer {self.outputs['stripe_api_key']}"})
        if status != 200:
            raise RuntimeError(f"localstripe refused to authenticate {payment['payment_intent_id']}: {status} {raw[:200]!r}")

    def emulator_requests(self, *, reset: bool = False) -> dict:
        status, raw = _request(f"{self.outputs['aws_endpoint_url']}/_localdev/requests", method="DELETE" if reset else "GET")
        if status != 200:
            raise RuntimeError(f"the emulator did not answer /_localdev/requests ({status}): is it this repository's emulator?")
        return json.loads(raw)["requests"]


def measure_webhook_latency(stack: Stack, count: int) -> dict:
    samples = []
    for _ in range(count):
        event = {"id": f"evt_bench_{uuid.uuid4().hex}", "object": "event", "type": "customer.updated",
                 "created": int(time.time()), "livemode": False,
                 "data": {"object": {"id": f"cus_bench_{uuid.uuid4().hex[:8]}", "object": "customer"}}}
        status, ms = stack.post_webhook(event)
        if status != 200:
            raise RuntimeError(f"POST /webhooks/stripe answered {status}")
        samples.append(ms)
    return percentiles(samples)


class NotificationInbox:
    """An SQS queue subscribed to payment-notifications, as a subscriber of the platform would have."""

    def __init__(self, stack: Stack):
        self.sqs, sns = stack.client("sqs"), stack.client("sns")
        self.url = self.sqs.create_queue(QueueName=f"bench-notifications-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topic = stack.outputs["topic_arns"]["payment-notifications"]
        self.sqs.set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                           "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic}}}],
        })})
        self.subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                                          Attributes={"RawMessageDelivery": "true"})["SubscriptionArn"]
        self._sns = sns

    def poll(self, wait_seconds: int = 1) -> list[tuple[float, dict]]:
        """The notifications received in one long poll (deleted from the queue): (perf_counter time, body)."""
        received = []
        for message in self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=wait_seconds).get("Messages", []):
            now = time.perf_counter()
            body = json.loads(message["Body"])
            body = json.loads(body["Message"]) if "Message" in body and "TopicArn" in body else body
            received.append((now, body))
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        return received

    def wait_for(self, transaction_ids: set[str], event_type: str, timeout: float) -> dict[str, float]:
        """transaction id → time (perf_counter) its notification was received."""
        arrived: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while transaction_ids - arrived.keys() and time.monotonic() < deadline:
            for now, body in self.poll():
                if body.get("event_type") == event_type and body.get("transaction_id") in transaction_ids:
                    arrived.setdefault(body["transaction_id"], now)
        return arrived

    def close(self) -> None:
        self._sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.url)


def _settled(stack: Stack, timeout: float) -> None:
    """Wait until nothing the emulator serves changes for a few seconds (all processing done)."""
    deadline = time.monotonic() + timeout
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        clients = stack.emulator_requests().get("clients", {})
        if clients != last:
            last, quiet_since = clients, time.monotonic()
        elif time.monotonic() - quiet_since >= 3:
            return
        time.sleep(0.5)


def measure_succeeded_path(stack: Stack, payments: int) -> dict:
    inbox = NotificationInbox(stack)
    try:
        pending = [stack.requires_action_payment() for _ in range(payments)]
        # Let the creations' own events settle, so the counts below are the webhooks' alone.
        _settled(stack, timeout=60)
        inbox_before = _inbox_items(stack)
        stack.emulator_requests(reset=True)
        latencies = []
        for payment in pending:
            started = time.perf_counter()
            stack.complete_3ds(payment)
            arrived = inbox.wait_for({payment["transaction_id"]}, "payment.succeeded", timeout=60)
            if payment["transaction_id"] not in arrived:
                raise RuntimeError(f"no payment.succeeded notification for {payment['transaction_id']} within 60 s")
            latencies.append((arrived[payment["transaction_id"]] - started) * 1000)
        _settled(stack, timeout=60)
        requests = stack.emulator_requests()
        webhooks = _inbox_items(stack) - inbox_before
    finally:
        inbox.close()
    # The bench's own reads of the notification queue are not the platform's.
    clients = {op: n for op, n in requests.get("clients", {}).items()
               if op not in ("sqs.ReceiveMessage", "sqs.DeleteMessage")}
    dataplane = requests.get("dataplane", {})
    per = max(1, webhooks)
    return {
        "succeeded_to_notification_ms": percentiles(latencies),
        "webhooks_sent_by_localstripe": webhooks,
        "aws_requests_per_webhook": round(sum(clients.values()) / per, 2),
        "aws_requests_per_webhook_by_operation": {op: round(n / per, 2) for op, n in sorted(clients.items())},
        "dataplane_requests_per_webhook": round(sum(dataplane.values()) / per, 2),
    }


def _inbox_items(stack: Stack) -> int:
    """How many webhooks the inbox holds (items `STRIPE_EVENT#…`), counted with a Scan."""
    ddb = stack.client("dynamodb")
    table = stack.outputs["table_names"]["transactions"]
    count, start = 0, None
    while True:
        page = ddb.scan(TableName=table, Select="COUNT", FilterExpression="item_type = :t",
                        ExpressionAttributeValues={":t": {"S": "stripe_event"}},
                        **({"ExclusiveStartKey": start} if start else {}))
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=PROJECT_ROOT / ".local")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--webhooks", type=int, default=200, help="signed webhooks for the latency figures")
    parser.add_argument("--payments", type=int, default=20, help="3-D Secure payments completed for the end-to-end figures")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "webhooks.json")
    args = parser.parse_args(argv)

    try:
        with bench_stack("bench_webhooks", args.state_dir / "outputs.json", args.own_stack) as outputs_path:
            stack = Stack(json.loads(outputs_path.read_text()))
            results = {"machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "webhook_ms": measure_webhook_latency(stack, args.webhooks),
                       **measure_succeeded_path(stack, args.payments)}
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
