"""The fraud scoring configuration: every weight, threshold, window and blocklist, validated once at start.

    config = FraudConfig.from_json(text)   # the JSON document (an SSM parameter's value); "" or "{}" = defaults

A bad document fails with one `FraudConfigError` whose message names every bad field by its dotted
path (`velocity.window_seconds: …`), so a misconfigured scorer fails its cold start instead of
scoring with half a configuration. The document layout and defaults are in docs/fraud.md.
"""

from __future__ import annotations

import ipaddress
import json
from functools import cached_property
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from paystream.currencies import ISO_4217_CODES

Decision = Literal["allow", "review", "block"]

Weight = Annotated[StrictInt, Field(ge=0, le=100)]
Threshold = Annotated[StrictInt, Field(ge=1, le=100)]
PositiveSeconds = Annotated[StrictInt, Field(ge=1, le=7 * 24 * 3600)]
MinorUnits = Annotated[StrictInt, Field(ge=1)]


def _currency_key(value: str) -> str:
    code = value.lower()
    if code not in ISO_4217_CODES:
        raise ValueError(f"unknown currency {value!r}: use an ISO 4217 code such as usd, eur or jpy")
    return code


def _ip_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR network (e.g. 203.0.113.7 or 203.0.113.0/24)") from None


def _country_code(value: str) -> str:
    if len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (two letters, e.g. DE)")
    return value.upper()


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blocklist entries must not be blank")
    return value


CurrencyCode = Annotated[str, AfterValidator(_currency_key)]
BlockedId = Annotated[str, AfterValidator(_not_blank)]
BlockedNetwork = Annotated[str, AfterValidator(_ip_network)]
Network = Annotated[str, AfterValidator(_ip_network)]
CountryCode = Annotated[StrictStr, AfterValidator(_country_code)]

# The IP → country table is held in memory by every scorer instance and, deployed, travels in one SSM
# parameter value (4 KB Standard, 8 KB Advanced: a few hundred entries at most); the bound keeps a document
# from elsewhere from costing the cold start and the memory a full geo database would.
MAX_IP_COUNTRIES = 10_000


class _Section(BaseModel):
    # Unknown keys are refused: a misspelt weight would otherwise silently keep its default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Section):
    review: Threshold = 70  # at or above: the payment goes to review (the bus rule matches risk_score >= 70)
    block: Threshold = 90  # at or above: the PaymentIntent is canceled if not yet captured

    @model_validator(mode="after")
    def _ordered(self) -> "Thresholds":
        if self.block < self.review:
            raise ValueError(f"block ({self.block}) must not be below review ({self.review})")
        return self


class Weights(_Section):
    """Points each risk factor adds to the score (0 switches a rule off). Keys are the factor codes."""

    amount_above_average: Weight = 30
    first_payment_above_limit: Weight = 25
    velocity: Weight = 40
    card_testing_customer: Weight = 60
    card_testing_device: Weight = 50
    card_testing_ip: Weight = 50
    unknown_device: Weight = 20
    unusual_country: Weight = 20
    ip_country_mismatch: Weight = 25
    blocklisted_customer: Weight = 100
    blocklisted_device: Weight = 100
    blocklisted_ip: Weight = 100
    blocklisted_card: Weight = 100


class AmountRule(_Section):
    # Flag a payment above `multiple` × the customer's running average in the same currency …
    multiple: Annotated[float, Field(gt=1, le=1000, allow_inf_nan=False)] = 3.0
    # … once the customer has at least this many payments in that currency; before that the
    # first-payment limit applies instead.
    min_history: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    first_payment_limit: MinorUnits = 50_000
    # Per-currency limits where minor units differ much in value (jpy has none: 50000 jpy ≈ 330 usd).
    first_payment_limit_by_currency: dict[CurrencyCode, MinorUnits] = Field(default_factory=dict)

    def first_payment_limit_for(self, currency: str) -> int:
        return self.first_payment_limit_by_currency.get(currency.lower(), self.first_payment_limit)


class VelocityRule(_Section):
    window_seconds: PositiveSeconds = 300
    max_payments: Annotated[StrictInt, Field(ge=1, le=1000)] = 5  # more than this many in the window is flagged


class CardTestingRule(_Section):
    """Card testers try many stolen cards with tiny amounts: count small amounts and declines per customer,
    device and IP in a short window."""

    window_seconds: PositiveSeconds = 600
    small_amount_limit: MinorUnits = 200  # an amount at or below it counts as a probe
    small_amount_limit_by_currency: dict[CurrencyCode, MinorUnits] = Field(default_factory=dict)
    min_count: Annotated[StrictInt, Field(ge=2, le=1000)] = 3  # this many probes in the window (this one included) flag

    def small_amount_limit_for(self, currency: str) -> int:
        return self.small_amount_limit_by_currency.get(currency.lower(), self.small_amount_limit)


class ProfileLimits(_Section):
    """Bounds on what a risk profile remembers, so an item stays small (one read unit) whatever the traffic."""

    max_recent_timestamps: Annotated[StrictInt, Field(ge=2, le=500)] = 50
    max_known_devices: Annotated[StrictInt, Field(ge=1, le=200)] = 20
    max_known_countries: Annotated[StrictInt, Field(ge=1, le=100)] = 10
    # Results of the customer's latest records, kept to answer a redelivered record (Kinesis delivers at least
    # once) with its first score instead of counting the payment twice.
    max_remembered_results: Annotated[StrictInt, Field(ge=1, le=200)] = 20
    # Device and IP profiles expire (DynamoDB TTL) this long after their last payment; customer profiles stay.
    device_ip_ttl_days: Annotated[StrictInt, Field(ge=1, le=3650)] = 30


class Blocklists(_Section):
    customers: frozenset[BlockedId] = frozenset()
    devices: frozenset[BlockedId] = frozenset()
    ips: frozenset[BlockedNetwork] = frozenset()  # addresses or CIDR networks
    card_fingerprints: frozenset[BlockedId] = frozenset()

    @cached_property
    def ip_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(value) for value in sorted(self.ips))

    def blocked_network(self, ip_address: str) -> str | None:
        """The blocklisted network containing the address, or None (also for an unparseable address)."""
        if not self.ips:
            return None
        try:
            address = ipaddress.ip_address(ip_address)
        except ValueError:
            return None
        for network in self.ip_networks:
            if address.version == network.version and address in network:
                return str(network)
        return None


class FraudConfigError(ValueError):
    """The fraud configuration document is invalid; the message names each bad field."""


class FraudConfig(_Section):
    thresholds: Thresholds = Field(default_factory=Thresholds)
    weights: Weights = Field(default_factory=Weights)
    amount: AmountRule = Field(default_factory=AmountRule)
    velocity: VelocityRule = Field(default_factory=VelocityRule)
    card_testing: CardTestingRule = Field(default_factory=CardTestingRule)
    profile: ProfileLimits = Field(default_factory=ProfileLimits)
    blocklists: Blocklists = Field(default_factory=Blocklists)
    # IP → country for the ip_country_mismatch rule: {"address or CIDR network": "ISO 3166-1 alpha-2"}, the
    # most specific network wins; keys are stored as networks ("203.0.113.7/32"), countries upper case.
    ip_countries: Annotated[dict[Network, CountryCode], Field(max_length=MAX_IP_COUNTRIES)] = Field(default_factory=dict)

    @field_validator("ip_countries", mode="before")
    @classmethod
    def _one_country_per_network(cls, value: object) -> object:
        # "203.0.113.0/24" and "203.0.113.9/24" are one network: with two countries, one would silently win.
        if isinstance(value, dict):
            seen: dict[str, tuple[str, object]] = {}
            for key, country in value.items():
                try:
                    network = str(ipaddress.ip_network(key, strict=False))
                except (TypeError, ValueError):
                    continue  # reported by the key's own validation
                if isinstance(country, str):
                    country = country.upper()
                if network in seen and seen[network][1] != country:
                    raise ValueError(f"{seen[network][0]!r} and {key!r} are the same network {network} "
                                     f"with different countries ({seen[network][1]!r}, {country!r})")
                seen.setdefault(network, (key, country))
        return value

    @model_validator(mode="after")
    def _profiles_remember_enough(self) -> "FraudConfig":
        # A profile must keep enough timestamps to see the counts the rules compare against.
        needed = max(self.velocity.max_payments, self.card_testing.min_count)
        if self.profile.max_recent_timestamps < needed:
            raise ValueError(
                f"profile.max_recent_timestamps ({self.profile.max_recent_timestamps}) must be at least "
                f"{needed} (velocity.max_payments / card_testing.min_count), or the rules could never fire")
        return self

    @property
    def memory_window_ms(self) -> int:
        """How far back a profile's timestamps matter: the longest rule window."""
        return 1000 * max(self.velocity.window_seconds, self.card_testing.window_seconds)

    def decision(self, risk_score: int) -> Decision:
        if risk_score >= self.thresholds.block:
            return "block"
        if risk_score >= self.thresholds.review:
            return "review"
        return "allow"

    @classmethod
    def from_json(cls, text: str | bytes | None) -> "FraudConfig":
        """The configuration from its JSON document; empty (or `{}`) gives the defaults."""
        if text is None or not (text.strip() if isinstance(text, str) else text.strip()):
            return cls()
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise FraudConfigError(f"fraud configuration is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise FraudConfigError("fraud configuration must be a JSON object, e.g. {\"thresholds\": {\"review\": 70}}")
        return cls.from_document(document)

    def to_json(self) -> str:
        """The complete document (every setting, blocklists and IP countries sorted): what `from_json` reads back unchanged."""
        document = self.model_dump(mode="json")
        document["blocklists"] = {name: sorted(values) for name, values in document["blocklists"].items()}
        document["ip_countries"] = dict(sorted(document["ip_countries"].items()))
        return json.dumps(document, indent=2, sort_keys=False)

    @classmethod
    def from_document(cls, document: dict) -> "FraudConfig":
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise FraudConfigError("invalid fraud configuration: " + "; ".join(_describe(exc))) from None


def _describe(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"] if part != "[key]") or "document"
        if error["type"] == "extra_forbidden":
            message = "is not a known setting (see docs/fraud.md for the accepted keys)"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = error["msg"]
            if "input" in error and not isinstance(error["input"], (dict, list)):
                message += f" (got {error['input']!r})"
        problems.append(f"{path}: {message}")
    return problems
