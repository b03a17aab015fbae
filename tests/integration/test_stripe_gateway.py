"""The Stripe adapter against a real localstripe, a recording fake of Stripe's HTTP API (for the status
codes localstripe never returns and the headers it ignores), a closed port and a server that never answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import stripe
from conftest import PROJECT_ROOT, free_port, wait_for_http

from localdev.stripe_server import health_url
from paystream.adapters.stripe_gateway import PaymentProviderError, StripeGateway

pytestmark = pytest.mark.integration

API_KEY = "sk_test_paystream"


@pytest.fixture(scope="module")
def stripe_base(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("stripe") / "stripe.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "localdev", "stripe", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(health_url(base), proc=proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def gateway(stripe_base):
    return StripeGateway(API_KEY, api_base=stripe_base)


def payment_method(stripe_base: str, card_number: str) -> str:
    """What the client does with Stripe directly: card data never reaches the platform, only the pm id."""
    client = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_base}, max_network_retries=0)
    return client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": card_number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
    }).id


def pay(gateway, pm_id, amount=2500, **overrides):
    args = dict(transaction_id=f"txn_{uuid.uuid4().hex}", amount=amount, currency="EUR", customer_id="cust_42",
                payment_method_id=pm_id, description=None, metadata={"order_id": "ord_7"},
                idempotency_key=f"pi-{uuid.uuid4().hex}")
    args.update(overrides)
    return gateway.create_and_confirm_payment_intent(**args)


def test_successful_payment_returns_the_payment_intent_as_a_dict(gateway, stripe_base):
    intent = pay(gateway, payment_method(stripe_base, "4242424242424242"), transaction_id="txn_ok")
    assert type(intent) is dict
    assert intent["status"] == "succeeded"
    assert intent["id"].startswith("pi_") and intent["client_secret"].startswith(intent["id"])
    assert (intent["amount"], intent["currency"]) == (2500, "eur")
    assert intent["metadata"] == {"order_id": "ord_7", "transaction_id": "txn_ok", "customer_id": "cust_42"}
    assert intent["last_payment_error"] is None
    assert gateway.retrieve_payment_intent(intent["id"])["status"] == "succeeded"


def test_client_metadata_cannot_overwrite_the_platform_keys(gateway, stripe_base):
    intent = pay(gateway, payment_method(stripe_base, "4242424242424242"), transaction_id="txn_real",
                 metadata={"transaction_id": "txn_spoofed", "customer_id": "someone_else"})
    assert intent["metadata"] == {"transaction_id": "txn_real", "customer_id": "cust_42"}


def test_decline_is_not_retryable_and_exposes_the_payment_intent(gateway, stripe_base):
    with pytest.raises(PaymentProviderError) as info:
        pay(gateway, payment_method(stripe_base, "4000000000000341"), transaction_id="txn_declined")
    error = info.value
    assert (error.kind, error.code, error.http_status) == ("card_declined", "card_declined", 402)
    assert not error.retryable and not error.unavailable
    assert error.payment_intent["id"].startswith("pi_")
    assert error.payment_intent["metadata"]["transaction_id"] == "txn_declined"
    assert error.payment_intent["last_payment_error"]["code"] == "card_declined"


def test_three_d_secure_card_requires_action(gateway, stripe_base):
    intent = pay(gateway, payment_method(stripe_base, "4000002500003155"))
    assert intent["status"] == "requires_action"
    assert intent["next_action"]["type"] == "use_stripe_sdk"
    assert intent["client_secret"]


def test_full_and_partial_refunds(gateway, stripe_base):
    full = pay(gateway, payment_method(stripe_base, "4242424242424242"), amount=4000)
    refund = gateway.create_refund(full["id"], idempotency_key=f"re-{uuid.uuid4().hex}")
    assert (refund["amount"], refund["payment_intent"], refund["status"]) == (4000, full["id"], "succeeded")

    partial = pay(gateway, payment_method(stripe_base, "4242424242424242"), amount=4000)
    refund = gateway.create_refund(partial["id"], amount=1500, idempotency_key=f"re-{uuid.uuid4().hex}")
    assert (refund["amount"], refund["payment_intent"]) == (1500, partial["id"])


def test_cancel_a_payment_waiting_for_action(gateway, stripe_base):
    intent = pay(gateway, payment_method(stripe_base, "4000002500003155"))
    canceled = gateway.cancel_payment_intent(intent["id"], idempotency_key=f"cancel-{intent['id']}")
    assert canceled["status"] == "canceled"


def test_unknown_payment_intent_is_an_invalid_request(gateway):
    with pytest.raises(PaymentProviderError) as info:
        gateway.retrieve_payment_intent("pi_doesnotexist")
    assert (info.value.kind, info.value.retryable, info.value.unavailable) == ("invalid_request", False, False)
    assert info.value.http_status == 404


def test_wrong_api_key_is_a_configuration_error(stripe_base):
    with pytest.raises(PaymentProviderError) as info:
        StripeGateway("not-a-key", api_base=stripe_base).retrieve_payment_intent("pi_x")
    assert (info.value.kind, info.value.retryable, info.value.http_status) == ("configuration", False, 401)


def test_too_much_metadata_is_refused_before_calling_stripe():
    gateway = StripeGateway(API_KEY, api_base=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(ValueError, match="at most 50 metadata keys, got 52"):
        pay(gateway, "pm_x", metadata={f"k{i}": "v" for i in range(50)})


def test_connection_refused_is_retryable_and_unavailable():
    gateway = StripeGateway(API_KEY, api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PaymentProviderError) as info:
        pay(gateway, "pm_card_visa")
    assert (info.value.kind, info.value.retryable, info.value.unavailable) == ("unavailable", True, True)
    assert isinstance(info.value.__cause__.__cause__, requests.exceptions.ConnectionError)


@pytest.mark.timeout(30)  # a hang guard only: the assertion is on which error ended the call
def test_a_server_that_never_answers_times_out_as_unavailable():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        gateway = StripeGateway(API_KEY, api_base=f"http://127.0.0.1:{silent.getsockname()[1]}", read_timeout=0.5)
        with pytest.raises(PaymentProviderError) as info:
            pay(gateway, "pm_card_visa")
    finally:
        silent.close()
    assert (info.value.retryable, info.value.unavailable) == (True, True)
    assert isinstance(info.value.__cause__.__cause__, requests.exceptions.ReadTimeout)


# --- A recording fake of Stripe's API -------------------------------------------------------------


class FakeStripe(BaseHTTPRequestHandler):
    """Records each request and answers with the next scripted (status, json body) of its server."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._answer()

    def do_POST(self):  # noqa: N802
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode()) if length else {}
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "form": {k: v[0] for k, v in form.items()}})
        status, body = self.server.script.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def fake_stripe():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeStripe)
    server.requests, server.script = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, StripeGateway(API_KEY, api_base=f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


INTENT = {"id": "pi_1", "object": "payment_intent", "status": "succeeded", "client_secret": "pi_1_secret_x"}


def test_every_mutating_call_sends_its_idempotency_key_and_fields(fake_stripe):
    server, gateway = fake_stripe
    server.script = [(200, INTENT), (200, {**INTENT, "status": "canceled"}),
                     (200, {"id": "re_1", "object": "refund", "amount": 100})]
    pay(gateway, "pm_123", idempotency_key="pi-key", description="Order 7", transaction_id="txn_1")
    gateway.cancel_payment_intent("pi_1", idempotency_key="cancel-key")
    gateway.create_refund("pi_1", amount=100, reason="requested_by_customer", idempotency_key="refund-key")

    create, cancel, refund = server.requests
    assert [r["headers"].get("Idempotency-Key") for r in server.requests] == ["pi-key", "cancel-key", "refund-key"]
    assert (create["path"], cancel["path"], refund["path"]) == (
        "/v1/payment_intents", "/v1/payment_intents/pi_1/cancel", "/v1/refunds")
    assert create["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert create["form"] == {
        "amount": "2500", "currency": "eur", "payment_method": "pm_123", "payment_method_types[0]": "card",
        "confirm": "true", "description": "Order 7", "metadata[order_id]": "ord_7",
        "metadata[transaction_id]": "txn_1", "metadata[customer_id]": "cust_42",
    }
    assert refund["form"] == {"payment_intent": "pi_1", "amount": "100", "reason": "requested_by_customer"}


def test_card_error_carrying_the_payment_intent_exposes_it_without_another_call(fake_stripe):
    server, gateway = fake_stripe
    declined = {**INTENT, "status": "requires_payment_method", "last_payment_error": {"code": "card_declined"}}
    server.script = [(402, {"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                                      "message": "Your card has insufficient funds.", "payment_intent": declined}})]
    with pytest.raises(PaymentProviderError) as info:
        pay(gateway, "pm_123")
    assert (info.value.kind, info.value.decline_code, info.value.retryable) == ("card_declined", "insufficient_funds", False)
    assert info.value.message == "Your card has insufficient funds."
    assert info.value.payment_intent["status"] == "requires_payment_method"
    assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "error", "kind", "retryable", "unavailable"), [
    (500, {"type": "api_error", "message": "boom"}, "unavailable", True, True),
    (503, {"type": "api_error", "message": "down"}, "unavailable", True, True),
    (429, {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}, "rate_limited", True, False),
    (403, {"type": "invalid_request_error", "message": "restricted key"}, "configuration", False, False),
    (400, {"type": "idempotency_error", "message": "keys reused"}, "idempotency_conflict", False, False),
    (400, {"type": "invalid_request_error", "param": "amount", "message": "bad amount"}, "invalid_request", False, False),
])
def test_http_errors_are_classified(fake_stripe, status, error, kind, retryable, unavailable):
    server, gateway = fake_stripe
    server.script = [(status, {"error": error})]
    with pytest.raises(PaymentProviderError) as info:
        gateway.retrieve_payment_intent("pi_1")
    assert (info.value.kind, info.value.retryable, info.value.unavailable, info.value.http_status) == (
        kind, retryable, unavailable, status)
    assert len(server.requests) == 1, "stripe-python retried on its own"
