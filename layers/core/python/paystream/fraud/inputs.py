"""What the scorer reads from one fraud-stream record.

The outbox relay puts each `payment.created` on the Kinesis fraud stream with the event's bus detail as
data (`transaction_id, event_id, sequence, occurred_at, amount, currency, customer_id` plus the request's
`device_id`, `ip_address`, `country`, …). Other fields are ignored. Two optional fields extend it:
- `event_type`: absent or `payment.created` — a payment to score; `payment.failed` — a decline, which
  scores nothing but counts as a card-testing signal for the customer (and its device and IP when present);
- `card_fingerprint`: the card's Stripe fingerprint, matched against the card blocklist when a producer has it.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from paystream.currencies import ISO_4217_CODES
from paystream.models import MAX_AMOUNT

PAYMENT_CREATED = "payment.created"
PAYMENT_FAILED = "payment.failed"


class MalformedRecord(ValueError):
    """The record can never be scored as it is; the message says why (it goes to the on-failure destination)."""


def _timestamp(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp such as 2026-11-22T04:55:09.123Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a time zone (the event store writes UTC with a Z)")
    return value


def _currency(value: str) -> str:
    code = value.lower()
    if code not in ISO_4217_CODES:
        raise ValueError("must be an ISO 4217 currency code")
    return code


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


def _country(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError("must be an ISO 3166-1 alpha-2 country code")
    return value.upper()


Text = Annotated[StrictStr, Field(min_length=1, max_length=255)]


class FraudPayment(BaseModel):
    """One payment (or decline) as the rules see it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: Literal["payment.created", "payment.failed"] = PAYMENT_CREATED
    event_id: Text
    transaction_id: Text
    customer_id: Text
    amount: Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)]
    currency: Annotated[StrictStr, AfterValidator(_currency)]
    occurred_at: Annotated[StrictStr, AfterValidator(_timestamp)]
    device_id: Text | None = None
    ip_address: Annotated[StrictStr, AfterValidator(_ip)] | None = None
    country: Annotated[StrictStr, AfterValidator(_country)] | None = None
    card_fingerprint: Text | None = None

    @property
    def is_decline(self) -> bool:
        return self.event_type == PAYMENT_FAILED

    @property
    def occurred_at_ms(self) -> int:
        parsed = datetime.fromisoformat(self.occurred_at.replace("Z", "+00:00"))
        return int(parsed.astimezone(timezone.utc).timestamp() * 1000)


def parse_payment(data: Mapping[str, Any] | str | bytes) -> FraudPayment:
    """The payment in one record's data (the decoded Kinesis `data`, as bytes, text or parsed JSON).

    Raises MalformedRecord naming the bad fields."""
    if isinstance(data, (bytes, bytearray, str)):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedRecord(f"record data is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise MalformedRecord(f"record data must be a JSON object, got {type(data).__name__}")
    try:
        return FraudPayment.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'data'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        ]
        raise MalformedRecord("record is not a payment the scorer can read: " + "; ".join(problems)) from None
