"""The localstripe launcher (localdev.stripe_server): isolated in-memory state, health route,
webhook registration, and webhooks that stripe-python verifies."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe
from conftest import PROJECT_ROOT, free_port, wait_for_http

from localdev.stripe_server import health_url, is_healthy, register_webhook

pytestmark = pytest.mark.integration

PICKLE = Path("/tmp/localstripe.pickle")  # hard-coded in localstripe 1.15.10


def _pickle_state():
    return PICKLE.stat().st_mtime_ns if PICKLE.exists() else None


@pytest.fixture()
def start_stripe(tmp_path):
    procs: list[subprocess.Popen] = []

    def start() -> tuple[str, dict]:
        port = free_port()
        with open(tmp_path / f"stripe-{port}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "localdev", "stripe", "--host", "127.0.0.1", "--port", str(port)],
                stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
            )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        return base, json.loads(wait_for_http(health_url(base), proc=proc))

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_local", base_addresses={"api": base}, max_network_retries=0)


def test_instances_are_isolated_and_nothing_is_pickled(start_stripe):
    pickle_before = _pickle_state()
    (base_a, health_a), (base_b, health_b) = start_stripe(), start_stripe()
    assert health_a["status"] == health_b["status"] == "ok"
    assert health_a["instance_id"] != health_b["instance_id"]
    assert is_healthy(base_a) and is_healthy(base_b)

    intent = _client(base_a).v1.payment_intents.create(params={"amount": 1234, "currency": "eur"})
    assert _client(base_a).v1.payment_intents.retrieve(intent.id).amount == 1234
    with pytest.raises(stripe.InvalidRequestError):
        _client(base_b).v1.payment_intents.retrieve(intent.id)
    assert [pi.id for pi in _client(base_b).v1.payment_intents.list().data] == []

    assert _pickle_state() == pickle_before, "localstripe wrote /tmp/localstripe.pickle"


def test_port_in_use_is_one_clear_line(start_stripe):
    base, _ = start_stripe()
    port = base.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "localdev", "stripe", "--port", port],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


class _Receiver(BaseHTTPRequestHandler):
    received: queue.Queue

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.put((body, self.headers.get("Stripe-Signature")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook_receiver():
    received: queue.Queue = queue.Queue()
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe", received
    server.shutdown()
    server.server_close()


def _wait_for_event(received: queue.Queue, secret: str, event_type: str, timeout: float = 20.0) -> stripe.Event:
    deadline = time.monotonic() + timeout
    seen = []
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            body, signature = received.get(timeout=remaining)
        except queue.Empty:
            break
        event = stripe.Webhook.construct_event(body, signature, secret)
        if event.type == event_type:
            return event
        seen.append(event.type)
    raise AssertionError(f"no {event_type} webhook within {timeout}s (got {seen})")


def test_registered_webhook_receives_signed_events(start_stripe, webhook_receiver):
    base, _ = start_stripe()
    url, received = webhook_receiver
    secret = "whsec_" + os.urandom(12).hex()
    register_webhook(base, "paystream", url, secret)

    intent = _client(base).v1.payment_intents.create(
        params={"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert intent.status == "succeeded"

    event = _wait_for_event(received, secret, "payment_intent.succeeded")
    assert event.data.object.id == intent.id


def test_register_webhook_rejects_a_bad_url(start_stripe):
    base, _ = start_stripe()
    with pytest.raises(RuntimeError, match="refused webhook 'paystream'"):
        register_webhook(base, "paystream", "ftp://example.invalid/hook", "whsec_x")


def test_is_healthy_is_false_when_nothing_listens():
    assert not is_healthy(f"http://127.0.0.1:{free_port()}")


def test_payment_intent_description_and_refund_reason_are_accepted_as_by_stripe(start_stripe):
    base, _ = start_stripe()
    client = _client(base)
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    intent = client.v1.payment_intents.create(
        params={"amount": 1500, "currency": "eur", "payment_method": method.id, "confirm": True,
                "description": "order 42"}
    )
    assert intent.status == "succeeded" and intent.description == "order 42"
    refund = client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 500, "reason": "requested_by_customer"})
    assert refund.amount == 500 and refund.reason == "requested_by_customer"


def test_idempotency_keys_are_honoured_as_by_stripe(start_stripe):
    base, _ = start_stripe()
    client = _client(base)
    params = {"amount": 700, "currency": "eur"}
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "key-1"})
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": "key-1"})
    other = client.v1.payment_intents.create(params=params, options={"idempotency_key": "key-2"})
    assert again.id == first.id and other.id != first.id
    assert len(client.v1.payment_intents.list().data) == 2
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(params={"amount": 701, "currency": "eur"}, options={"idempotency_key": "key-1"})


def test_a_simulated_outage_answers_503_until_it_ends(start_stripe):
    from localdev.stripe_server import set_outage

    base, _ = start_stripe()
    client = _client(base)
    set_outage(base, True)
    with pytest.raises(stripe.APIError) as error:
        client.v1.payment_intents.create(params={"amount": 100, "currency": "eur"})
    assert error.value.http_status == 503
    assert is_healthy(base)  # the health check still answers during the outage
    set_outage(base, False)
    assert client.v1.payment_intents.create(params={"amount": 100, "currency": "eur"}).amount == 100


def test_refunds_never_exceed_what_is_left_on_the_charge_as_on_stripe(start_stripe):
    base, _ = start_stripe()
    client = _client(base)
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    intent = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "eur", "payment_method": method.id, "confirm": True})
    assert client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 300}).amount == 300

    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 701})
    assert too_much.value.param == "amount" and "700" in str(too_much.value)

    rest = client.v1.refunds.create(params={"payment_intent": intent.id})  # no amount: what is left, not 1000
    assert rest.amount == 700
    assert client.v1.charges.retrieve(rest.charge).amount_refunded == 1000

    for params in ({"payment_intent": intent.id}, {"payment_intent": intent.id, "amount": 1}, {"charge": rest.charge}):
        with pytest.raises(stripe.InvalidRequestError) as nothing_left:
            client.v1.refunds.create(params=params)
        assert nothing_left.value.code == "charge_already_refunded"
    assert client.v1.charges.retrieve(rest.charge).amount_refunded == 1000


def test_a_simulated_rate_limit_answers_429_for_the_next_matching_posts_only(start_stripe):
    from localdev.stripe_server import set_rate_limit

    base, _ = start_stripe()
    client = _client(base)
    assert set_rate_limit(base, 1, "/v1/payment_intents") == {"requests": 1, "path_prefix": "/v1/payment_intents"}
    client.v1.customers.create(params={"email": "a@example.com"})  # another path: not limited
    params = {"amount": 900, "currency": "eur"}
    with pytest.raises(stripe.RateLimitError) as error:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "rl-1"})
    assert error.value.http_status == 429
    # As on Stripe, a rate-limited request saved no idempotent result: the same key now executes once.
    first = client.v1.payment_intents.create(params=params, options={"idempotency_key": "rl-1"})
    again = client.v1.payment_intents.create(params=params, options={"idempotency_key": "rl-1"})
    assert again.id == first.id and len(client.v1.payment_intents.list().data) == 1


def test_manual_capture_and_cancel_send_the_webhooks_stripe_sends(start_stripe, webhook_receiver):
    base, _ = start_stripe()
    url, received = webhook_receiver
    secret = "whsec_" + os.urandom(12).hex()
    register_webhook(base, "paystream", url, secret)
    client = _client(base)

    held = client.v1.payment_intents.create(params={"amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
                                                    "confirm": True, "capture_method": "manual"})
    assert held.status == "requires_capture"
    authorized = _wait_for_event(received, secret, "payment_intent.amount_capturable_updated")
    assert (authorized.data.object.id, authorized.data.object.status) == (held.id, "requires_capture")

    captured = client.v1.payment_intents.capture(held.id)
    assert captured.status == "succeeded"
    assert _wait_for_event(received, secret, "payment_intent.succeeded").data.object.id == held.id

    other = client.v1.payment_intents.create(params={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa",
                                                     "confirm": True, "capture_method": "manual"})
    canceled_now = client.v1.payment_intents.cancel(other.id, params={"cancellation_reason": "fraudulent"})
    assert (canceled_now.status, canceled_now.cancellation_reason) == ("canceled", "fraudulent")
    canceled = _wait_for_event(received, secret, "payment_intent.canceled")
    assert (canceled.data.object.id, canceled.data.object.status) == (other.id, "canceled")
