"""Storage-first ingestion of Stripe webhooks: verify the signature, store the raw event once.

Pure logic: the signing secrets and the inbox are injected, so this module makes no AWS call itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Protocol

import stripe

SIGNATURE_TOLERANCE_SECONDS = 300


class SigningSecrets(Protocol):
    def current(self, *, refresh: bool = False) -> list[str]:
        """The accepted signing secrets (several while one is being rotated)."""


class WebhookInbox(Protocol):
    def put_if_absent(self, event: "StripeEventRecord") -> bool:
        """Store the event unless its id is already stored; True when it was stored now."""


class InvalidWebhook(Exception):
    """The request is not a genuine Stripe webhook; `reason` is safe to return to the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StripeEventRecord:
    event_id: str
    event_type: str
    created: int
    livemode: bool
    object_id: str | None
    raw_body: str


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    event_type: str
    duplicate: bool


def verify_signature(raw_body: str, signature_header: str | None, secrets: list[str]) -> None:
    """Accept the body if any configured secret verifies it within the tolerance."""
    if not signature_header:
        raise InvalidWebhook("missing Stripe-Signature header")
    if not secrets:
        raise InvalidWebhook("no webhook signing secret is configured")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                raw_body, signature_header, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            continue
        # The stripe library only refuses timestamps that are too old; one too far ahead is no fresher
        # a signature (a clock that far off, or a payload signed now to be replayed later).
        signed_at = _signature_timestamp(signature_header)
        if signed_at is not None and signed_at > time.time() + SIGNATURE_TOLERANCE_SECONDS:
            raise InvalidWebhook("invalid Stripe-Signature: its timestamp is more than 300 s in the future")
        return
    raise InvalidWebhook("invalid Stripe-Signature: no configured secret verifies this payload within 300 s")


def _signature_timestamp(signature_header: str) -> int | None:
    """The `t=` of a `t=…,v1=…` header (already verified, so well formed)."""
    for part in signature_header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            return int(value) if value.isdigit() else None
    return None


def parse_event(raw_body: str) -> StripeEventRecord:
    try:
        event = json.loads(raw_body)
    except ValueError as exc:
        raise InvalidWebhook("body is not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise InvalidWebhook("body is not a Stripe event (needs string `id` and `type`)")
    data_object = (event.get("data") or {}).get("object") or {}
    object_id = data_object.get("id") if isinstance(data_object, dict) else None
    return StripeEventRecord(
        event_id=event["id"],
        event_type=event["type"],
        created=int(event.get("created") or 0),
        livemode=bool(event.get("livemode", False)),
        object_id=object_id if isinstance(object_id, str) else None,
        raw_body=raw_body,
    )


class WebhookIngestor:
    def __init__(self, secrets: SigningSecrets, inbox: WebhookInbox):
        self._secrets = secrets
        self._inbox = inbox

    def ingest(self, raw_body: str, signature_header: str | None) -> IngestResult:
        try:
            verify_signature(raw_body, signature_header, self._secrets.current())
        except InvalidWebhook:
            # A secret added during rotation may not be in the cached copy yet: re-read once before refusing.
            verify_signature(raw_body, signature_header, self._secrets.current(refresh=True))
        record = parse_event(raw_body)
        stored = self._inbox.put_if_absent(record)
        return IngestResult(event_id=record.event_id, event_type=record.event_type, duplicate=not stored)
