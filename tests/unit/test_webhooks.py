"""Stripe webhook ingestion: signature verification with rotation, storage-first dedupe (core logic, fakes)."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from paystream.webhooks import InvalidWebhook, WebhookIngestor

OLD_SECRET = "whsec_old_secret"
NEW_SECRET = "whsec_new_secret"


def stripe_event(event_id="evt_1", event_type="payment_intent.succeeded", object_id="pi_1") -> str:
    return json.dumps(
        {"id": event_id, "object": "event", "type": event_type, "created": 1700000000, "livemode": False,
         "data": {"object": {"id": object_id, "object": "payment_intent", "amount": 1000}}}
    )


def sign(body: str, secret: str, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


class FakeSecrets:
    def __init__(self, cached: list[str], fresh: list[str] | None = None):
        self.cached, self.fresh, self.refreshes = cached, fresh if fresh is not None else cached, 0

    def current(self, *, refresh: bool = False) -> list[str]:
        if refresh:
            self.refreshes += 1
            self.cached = self.fresh
        return self.cached


class FakeInbox:
    def __init__(self):
        self.items = {}

    def put_if_absent(self, event) -> bool:
        if event.event_id in self.items:
            return False
        self.items[event.event_id] = event
        return True


def test_valid_webhook_is_stored_with_its_raw_body():
    inbox = FakeInbox()
    body = stripe_event()
    result = WebhookIngestor(FakeSecrets([OLD_SECRET]), inbox).ingest(body, sign(body, OLD_SECRET))
    assert (result.event_id, result.event_type, result.duplicate) == ("evt_1", "payment_intent.succeeded", False)
    assert inbox.items["evt_1"].raw_body == body
    assert inbox.items["evt_1"].object_id == "pi_1"


def test_duplicate_delivery_is_acknowledged_and_not_stored_again():
    inbox = FakeInbox()
    ingestor = WebhookIngestor(FakeSecrets([OLD_SECRET]), inbox)
    body = stripe_event()
    ingestor.ingest(body, sign(body, OLD_SECRET))
    assert ingestor.ingest(body, sign(body, OLD_SECRET)).duplicate is True
    assert len(inbox.items) == 1


def test_any_of_several_secrets_verifies_during_rotation():
    inbox = FakeInbox()
    ingestor = WebhookIngestor(FakeSecrets([OLD_SECRET, NEW_SECRET]), inbox)
    for i, secret in enumerate((OLD_SECRET, NEW_SECRET)):
        body = stripe_event(event_id=f"evt_{i}")
        ingestor.ingest(body, sign(body, secret))
    assert set(inbox.items) == {"evt_0", "evt_1"}


def test_secret_added_after_caching_is_picked_up_by_one_refresh():
    secrets = FakeSecrets(cached=[OLD_SECRET], fresh=[OLD_SECRET, NEW_SECRET])
    body = stripe_event()
    WebhookIngestor(secrets, FakeInbox()).ingest(body, sign(body, NEW_SECRET))
    assert secrets.refreshes == 1


@pytest.mark.parametrize(
    "header_for, expected",
    [
        (lambda body: None, "missing Stripe-Signature"),
        (lambda body: sign(body, "whsec_wrong"), "invalid Stripe-Signature"),
        (lambda body: sign(body, OLD_SECRET, timestamp=int(time.time()) - 301), "invalid Stripe-Signature"),
        (lambda body: sign(body, OLD_SECRET, timestamp=int(time.time()) + 360), "invalid Stripe-Signature"),
        (lambda body: sign(body + " ", OLD_SECRET), "invalid Stripe-Signature"),
        (lambda body: "garbage", "invalid Stripe-Signature"),
    ],
    ids=["missing", "wrong-secret", "too-old", "too-far-in-the-future", "body-tampered", "malformed-header"],
)
def test_bad_signatures_are_refused_and_nothing_is_stored(header_for, expected):
    inbox = FakeInbox()
    body = stripe_event()
    header = header_for(body)
    # the tampered case signs a different body than the one delivered
    with pytest.raises(InvalidWebhook, match=expected):
        WebhookIngestor(FakeSecrets([OLD_SECRET]), inbox).ingest(body, header)
    assert inbox.items == {}


def test_signed_body_that_is_not_a_stripe_event_is_refused():
    inbox = FakeInbox()
    body = json.dumps({"hello": "world"})
    with pytest.raises(InvalidWebhook, match="not a Stripe event"):
        WebhookIngestor(FakeSecrets([OLD_SECRET]), inbox).ingest(body, sign(body, OLD_SECRET))
    assert inbox.items == {}


def test_no_configured_secret_refuses_everything():
    body = stripe_event()
    with pytest.raises(InvalidWebhook, match="no webhook signing secret"):
        WebhookIngestor(FakeSecrets([]), FakeInbox()).ingest(body, sign(body, OLD_SECRET))
