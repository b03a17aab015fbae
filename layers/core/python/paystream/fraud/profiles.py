"""Risk profiles: what the scorer remembers per customer, device and IP address, bounded in size.

One profile per key, all in one table so a single BatchGetItem fetches every profile a batch needs:

    CUSTOMER#<customer_id>   amount averages, velocity, card-testing probes, known devices and countries,
                             the latest results (to answer a redelivered record with its first score)
    DEVICE#<device_id>       velocity and card-testing probes seen from the device, across customers
    IP#<ip address>          the same per IP address

`updated_profile(profile, payment, config)` is pure: the profile after one more payment (or decline), with
`version` + 1; the store writes it on condition that the stored version is still the one read.
Timestamps are epoch milliseconds; lists are kept sorted (timestamps) or least-recently-seen first
(devices, countries) and cut to the configured bounds. The stored layout is `to_item()` (docs/fraud.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from paystream.fraud.config import FraudConfig
from paystream.fraud.inputs import FraudPayment

CUSTOMER = "CUSTOMER"
DEVICE = "DEVICE"
IP = "IP"
ProfileKind = Literal["CUSTOMER", "DEVICE", "IP"]

NonNegative = Annotated[int, Field(ge=0)]


def customer_key(customer_id: str) -> str:
    return f"{CUSTOMER}#{customer_id}"


def device_key(device_id: str) -> str:
    return f"{DEVICE}#{device_id}"


def ip_key(ip_address: str) -> str:
    return f"{IP}#{ip_address}"


def profile_keys(payment: FraudPayment) -> tuple[str, ...]:
    """The profiles one payment reads and writes: its customer's, then its device's and IP's when it has them."""
    keys = [customer_key(payment.customer_id)]
    if payment.device_id:
        keys.append(device_key(payment.device_id))
    if payment.ip_address:
        keys.append(ip_key(payment.ip_address))
    return tuple(keys)


class AmountStats(BaseModel):
    """Running count and sum of amounts in one currency: the mean is sum / count, exact in integers."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    count: NonNegative = 0
    sum: NonNegative = 0

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0


class RememberedResult(BaseModel):
    """A record already applied to the profiles, with its score (None for a decline) and its factors as
    `code:weight` — compact on purpose: the reasons would make every profile write several write units."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    risk_score: int | None = None
    factors: tuple[str, ...] = ()


class RiskProfile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    # 0: never stored. Each write stores version + 1 on condition that the stored version is still `version`.
    version: NonNegative = 0
    payment_count: NonNegative = 0
    decline_count: NonNegative = 0
    amount_stats: dict[str, AmountStats] = Field(default_factory=dict)  # customer profiles only; by currency
    recent_payments_ms: tuple[int, ...] = ()  # sorted; only those within the longest rule window are kept
    recent_probes_ms: tuple[int, ...] = ()  # small amounts and declines (card-testing signals), sorted
    known_devices: tuple[str, ...] = ()  # customer profiles only; least recently seen first
    known_countries: tuple[str, ...] = ()  # customer profiles only; least recently seen first
    recent_results: tuple[RememberedResult, ...] = ()  # customer profiles only; oldest first
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None

    @property
    def kind(self) -> ProfileKind:
        return self.key.split("#", 1)[0]  # type: ignore[return-value]

    @classmethod
    def new(cls, key: str) -> "RiskProfile":
        kind = key.split("#", 1)[0]
        if kind not in (CUSTOMER, DEVICE, IP) or "#" not in key:
            raise ValueError(f"profile key {key!r} must start with CUSTOMER#, DEVICE# or IP#")
        return cls(key=key)

    def remembered(self, event_id: str) -> RememberedResult | None:
        for result in self.recent_results:
            if result.event_id == event_id:
                return result
        return None

    # The DynamoDB item (plain Python; the adapter serializes it with boto3's TypeSerializer). Lists, not
    # string sets: sets cannot be empty and lose the order the bounds evict by.
    def to_item(self, config: FraudConfig) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": self.key,
            "profile_kind": self.kind,
            "version": self.version,
            "payment_count": self.payment_count,
            "decline_count": self.decline_count,
            "recent_payments_ms": list(self.recent_payments_ms),
            "recent_probes_ms": list(self.recent_probes_ms),
        }
        if self.kind == CUSTOMER:
            item["amount_stats"] = {currency: {"count": s.count, "sum": s.sum} for currency, s in self.amount_stats.items()}
            item["known_devices"] = list(self.known_devices)
            item["known_countries"] = list(self.known_countries)
            item["recent_results"] = [
                {"event_id": r.event_id, "risk_score": r.risk_score, "factors": list(r.factors)}
                if r.risk_score is not None else {"event_id": r.event_id}
                for r in self.recent_results
            ]
        if self.first_seen_ms is not None:
            item["first_seen_ms"] = self.first_seen_ms
        if self.last_seen_ms is not None:
            item["last_seen_ms"] = self.last_seen_ms
            if self.kind != CUSTOMER:  # the table's TTL attribute: idle devices and IPs are forgotten
                item["expires_at"] = self.last_seen_ms // 1000 + config.profile.device_ip_ttl_days * 86400
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> "RiskProfile":
        """The profile from a stored item (numbers may be Decimal, as boto3's TypeDeserializer returns them)."""
        plain = _plain(dict(item))
        plain["key"] = plain.pop("pk")
        return cls.model_validate(plain)


def count_in_window(timestamps: tuple[int, ...], since_ms: int, until_ms: int) -> int:
    """How many of the timestamps lie in (since_ms, until_ms]."""
    return sum(1 for t in timestamps if since_ms < t <= until_ms)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _remember_recent(values: tuple[str, ...], value: str | None, limit: int) -> tuple[str, ...]:
    """Move (or add) the value to the most-recent end; drop the least recently seen beyond the limit."""
    if not value:
        return values
    kept = tuple(v for v in values if v != value) + (value,)
    return kept[-limit:]


def _add_timestamp(timestamps: tuple[int, ...], at_ms: int, window_ms: int, limit: int) -> tuple[int, ...]:
    """Insert in order; forget what is older than the window before the newest, and beyond the limit."""
    merged = sorted((*timestamps, at_ms))
    horizon = merged[-1] - window_ms
    return tuple(t for t in merged if t > horizon)[-limit:]


def is_probe_amount(payment: FraudPayment, config: FraudConfig) -> bool:
    return payment.amount <= config.card_testing.small_amount_limit_for(payment.currency)


def scoring_time_ms(payment: FraudPayment, now_ms: int) -> int:
    """The payment's own time, never later than now: replays score as the first delivery did, and a producer
    clock running ahead cannot place payments in the future."""
    return min(payment.occurred_at_ms, now_ms)


def updated_profile(profile: RiskProfile, payment: FraudPayment, config: FraudConfig, *, at_ms: int,
                    result: RememberedResult | None = None) -> RiskProfile:
    """The profile after this payment (or decline) at `at_ms`; `result` is remembered on a customer profile."""
    limits = config.profile
    window_ms = config.memory_window_ms
    changes: dict[str, Any] = {
        "version": profile.version + 1,
        "first_seen_ms": at_ms if profile.first_seen_ms is None else min(profile.first_seen_ms, at_ms),
        "last_seen_ms": at_ms if profile.last_seen_ms is None else max(profile.last_seen_ms, at_ms),
    }
    if payment.is_decline:
        changes["decline_count"] = profile.decline_count + 1
        # A small payment was already counted as a probe when it was created; count each attempt once.
        if not is_probe_amount(payment, config):
            changes["recent_probes_ms"] = _add_timestamp(profile.recent_probes_ms, at_ms, window_ms,
                                                         limits.max_recent_timestamps)
    else:
        changes["payment_count"] = profile.payment_count + 1
        changes["recent_payments_ms"] = _add_timestamp(profile.recent_payments_ms, at_ms, window_ms,
                                                       limits.max_recent_timestamps)
        if is_probe_amount(payment, config):
            changes["recent_probes_ms"] = _add_timestamp(profile.recent_probes_ms, at_ms, window_ms,
                                                         limits.max_recent_timestamps)
    if profile.kind == CUSTOMER:
        if not payment.is_decline:
            stats = profile.amount_stats.get(payment.currency, AmountStats())
            changes["amount_stats"] = {**profile.amount_stats, payment.currency: AmountStats(
                count=stats.count + 1, sum=stats.sum + payment.amount)}
            changes["known_devices"] = _remember_recent(profile.known_devices, payment.device_id,
                                                        limits.max_known_devices)
            changes["known_countries"] = _remember_recent(profile.known_countries, payment.country,
                                                          limits.max_known_countries)
        if result is not None:
            changes["recent_results"] = (*profile.recent_results, result)[-limits.max_remembered_results:]
    return profile.model_copy(update=changes)


def empty_profiles(keys: Iterable[str]) -> dict[str, RiskProfile]:
    return {key: RiskProfile.new(key) for key in keys}
