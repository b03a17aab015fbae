"""Pydantic models: the API bodies, the stored payment event and the payment projection (DESIGN.md §2)."""

from __future__ import annotations

import ipaddress
import re
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from paystream.clock import utc_now  # noqa: F401 (re-exported: the models' users take it from here)
from paystream.currencies import ISO_4217_CODES

MAX_AMOUNT = 99_999_999
MAX_ID_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 1000
# Stripe's metadata limits, so a request that passes here never fails at Stripe.
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


class Status(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    REVIEW = "review"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


def new_event_id() -> str:
    return str(uuid.uuid4())


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _currency(value: str) -> str:
    code = value.lower()
    if code not in ISO_4217_CODES:
        raise ValueError("unknown currency: use an ISO 4217 code such as usd, eur or gbp")
    return code


def _country(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", value):
        raise ValueError("must be an ISO 3166-1 alpha-2 country code such as US or DE")
    return value.upper()


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


def _text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[StrictStr, Field(min_length=min_length, max_length=max_length)]


Identifier = Annotated[_text(MAX_ID_LENGTH, min_length=1), AfterValidator(_not_blank)]
Amount = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)]
Currency = Annotated[StrictStr, AfterValidator(_currency)]
MetadataKey = _text(MAX_METADATA_KEY_LENGTH, min_length=1)
MetadataValue = _text(MAX_METADATA_VALUE_LENGTH)
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS)]


class PaymentRequest(BaseModel):
    """The POST /payments body. Strings are kept verbatim: they are stored and sent on, never interpreted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Amount = Field(description="Minor units (cents), 1 to 99,999,999.")
    currency: Currency = Field(description="ISO 4217 code, any case; stored lowercase.")
    customer_id: Identifier
    payment_method_id: Identifier = Field(description="A Stripe PaymentMethod id; card data never reaches the platform.")
    order_id: Identifier
    description: _text(MAX_DESCRIPTION_LENGTH) | None = None
    metadata: Metadata | None = None
    device_id: Identifier | None = None
    ip_address: Annotated[StrictStr, AfterValidator(_ip_address)] | None = None
    country: Annotated[StrictStr, AfterValidator(_country)] | None = Field(
        default=None, description="ISO 3166-1 alpha-2, any case; stored uppercase."
    )


class RefundRequest(BaseModel):
    """The POST /payments/{id}/refunds body; a missing amount means a full refund."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Amount | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not an accepted field: remove it",
    "string_type": "must be a string",
    # json.loads accepts lone surrogates ("\\ud800"); nothing downstream could store them.
    "string_unicode": "contains invalid Unicode (a lone surrogate); send valid UTF-8 text",
    "int_type": "must be an integer number of minor units (e.g. 1050 for 10.50)",
    "dict_type": "must be an object of string keys to string values",
}


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    """Readable `{"field", "message"}` pairs; `field` is a dotted path (`metadata.order_ref`), `body` for the whole body."""
    details = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        is_key = bool(loc) and loc[-1] == "[key]"
        if is_key:
            loc = loc[:-1]
        loc = [part if len(part) <= 60 else part[:57] + "..." for part in loc]
        kind = error["type"]
        if kind == "model_type" and not loc:
            message = "must be a JSON object"
        elif kind == "too_long" and error.get("ctx", {}).get("field_type") == "Dictionary":
            message = f"must have at most {error['ctx']['max_length']} keys"
        elif kind == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = _MESSAGES.get(kind) or error["msg"]
        if is_key:
            message = f"key: {message}"
        details.append({"field": ".".join(loc) or "body", "message": message})
    return details


class PaymentEvent(BaseModel):
    """One stored event of a payment (append-only; numbered 1, 2, … per payment)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str
    event_type: str
    source: Literal["paystream.payments", "paystream.fraud", "paystream.stripe"]
    sequence: Annotated[int, Field(ge=1)]
    occurred_at: Annotated[str, Field(pattern=TIMESTAMP_PATTERN)]
    transaction_id: str
    amount: int
    currency: str
    customer_id: str
    detail: dict[str, Any] = Field(default_factory=dict)

    def to_bus_detail(self) -> dict[str, Any]:
        """The EventBridge `detail`: the event's own fields plus the common ones, which a detail key never shadows."""
        return {
            **self.detail,
            "transaction_id": self.transaction_id,
            "event_id": self.event_id,
            "sequence": self.sequence,
            "occurred_at": self.occurred_at,
            "amount": self.amount,
            "currency": self.currency,
            "customer_id": self.customer_id,
        }


class Projection(BaseModel):
    """A payment's current state, folded from its events (paystream.states.apply)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    transaction_id: str
    status: Status
    amount: int
    currency: str
    customer_id: str
    order_id: str
    payment_method_id: str
    payment_intent_id: str | None = None
    risk_score: int | None = None
    created_at: Annotated[str, Field(pattern=TIMESTAMP_PATTERN)]
    updated_at: Annotated[str, Field(pattern=TIMESTAMP_PATTERN)]
    based_on_event_id: str
    last_sequence: Annotated[int, Field(ge=1)]
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    device_id: str | None = None
    ip_address: str | None = None
    country: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    retryable: bool | None = None
    # The charge attempt the latest failure belongs to (1 = the first charge; retries count up).
    attempt: Annotated[int, Field(ge=1)] = 1
    amount_refunded: int = 0
    dispute_status: str | None = None
    # An operator's decision on a payment held in review (approved, declined): payment.reviewed.
    review_decision: str | None = None
    # `manual` under risk-gated capture (CAPTURE_MODE=risk_gated): Stripe only authorizes, the platform captures.
    capture_method: str = "automatic"

    def to_api(self, events: list[PaymentEvent]) -> dict[str, Any]:
        """The GET /payments/{transaction_id} body."""
        return {
            "transaction_id": self.transaction_id,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "customer_id": self.customer_id,
            "order_id": self.order_id,
            "payment_intent_id": self.payment_intent_id,
            "risk_score": self.risk_score,
            "amount_refunded": self.amount_refunded,
            "failure_code": self.failure_code,
            "failure_message": self.failure_message,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "based_on_event_id": self.based_on_event_id,
            "events": [{"type": e.event_type, "at": e.occurred_at, "id": e.event_id} for e in events],
        }
