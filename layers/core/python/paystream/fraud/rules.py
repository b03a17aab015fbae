"""The fraud rules and the score: weighted, explainable, pure.

Each rule looks at one payment, the profiles as they were before it, and the configuration, and returns
zero or more risk factors `{code, reason, weight}`: `code` is machine-readable and stable (the keys of
`FraudConfig.weights`), `reason` says in words what was seen, `weight` is the configured weight.

    risk_score = min(100, sum of the factors' weights)

Why a capped sum: it is the simplest combination that is monotone (weights are ≥ 0, so a further factor
never lowers the score), bounded (0–100), 0 exactly when nothing was seen, and explainable — the
factors add up to the score, so an operator can read why a payment scored what it did and tune one
weight without the others shifting. A factor with weight 0 (a rule switched off) is not reported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Mapping, NamedTuple, Protocol

from paystream.fraud.config import FraudConfig
from paystream.fraud.inputs import FraudPayment
from paystream.fraud.profiles import RiskProfile, count_in_window, is_probe_amount, scoring_time_ms

MIN_SCORE = 0
MAX_SCORE = 100


@dataclass(frozen=True)
class RiskFactor:
    code: str
    reason: str
    weight: int

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "weight": self.weight}


@dataclass(frozen=True)
class FraudScore:
    risk_score: int
    risk_factors: tuple[RiskFactor, ...]

    def to_detail(self) -> dict[str, Any]:
        """The `fraud.scored` event's detail fields (DESIGN.md §2)."""
        return {"risk_score": self.risk_score, "risk_factors": [factor.to_dict() for factor in self.risk_factors]}


def combine(factors: tuple[RiskFactor, ...] | list[RiskFactor]) -> int:
    """The risk score of a set of factors: min(100, sum of weights)."""
    return min(MAX_SCORE, MIN_SCORE + sum(factor.weight for factor in factors))


class IpCountryLookup(Protocol):
    """The country an IP address is located in (ISO 3166-1 alpha-2, upper case), or None when unknown."""

    def country_of(self, ip_address: str) -> str | None: ...


class InMemoryIpCountries:
    """IP → country from a mapping of addresses or CIDR networks (the most specific network wins).

    No geo database is shipped: deployments inject a real lookup; tests and the local stack use this."""

    def __init__(self, networks: Mapping[str, str] | None = None):
        entries = []
        for network, country in (networks or {}).items():
            entries.append((ipaddress.ip_network(network, strict=False), country.upper()))
        # Longest prefix first, so the first containing network is the most specific one.
        self._networks = sorted(entries, key=lambda entry: -entry[0].prefixlen)

    def country_of(self, ip_address: str) -> str | None:
        try:
            address = ipaddress.ip_address(ip_address)
        except ValueError:
            return None
        for network, country in self._networks:
            if address.version == network.version and address in network:
                return country
        return None


NO_IP_COUNTRIES = InMemoryIpCountries()


class PaymentProfiles(NamedTuple):
    """The profiles a payment is scored against, as they were before it."""

    customer: RiskProfile
    device: RiskProfile | None = None
    ip: RiskProfile | None = None


@dataclass(frozen=True)
class RuleContext:
    payment: FraudPayment
    profiles: PaymentProfiles
    config: FraudConfig
    at_ms: int  # the payment's time (see profiles.scoring_time_ms)
    ip_countries: IpCountryLookup


Rule = Callable[[RuleContext], list[tuple[str, str]]]  # → (code, reason) pairs; the weight comes from config


def _seconds(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds % 60 == 0 and seconds >= 120 else f"{seconds} seconds"


def amount_rule(ctx: RuleContext) -> list[tuple[str, str]]:
    payment, rule = ctx.payment, ctx.config.amount
    stats = ctx.profiles.customer.amount_stats.get(payment.currency)
    if stats is not None and stats.count >= rule.min_history:
        if payment.amount > rule.multiple * stats.mean:
            return [("amount_above_average",
                     f"amount {payment.amount} {payment.currency} (minor units) is {payment.amount / stats.mean:.1f}× "
                     f"the customer's average of {stats.mean:.0f} over {stats.count} payments "
                     f"(flagged above {rule.multiple:g}×)")]
        return []
    limit = rule.first_payment_limit_for(payment.currency)
    if payment.amount > limit:
        which = "first payment" if stats is None else f"payment {stats.count + 1}"
        return [("first_payment_above_limit",
                 f"{which} of the customer in {payment.currency}: amount {payment.amount} (minor units) is above "
                 f"the first-payment limit of {limit}")]
    return []


def velocity_rule(ctx: RuleContext) -> list[tuple[str, str]]:
    if ctx.payment.is_decline:
        return []
    rule = ctx.config.velocity
    customer = ctx.profiles.customer
    count = 1 + count_in_window(customer.recent_payments_ms, ctx.at_ms - 1000 * rule.window_seconds, ctx.at_ms)
    if count > rule.max_payments:
        return [("velocity", f"{count} payments from this customer in the last {_seconds(rule.window_seconds)} "
                             f"(more than {rule.max_payments} is flagged)")]
    return []


def card_testing_rule(ctx: RuleContext) -> list[tuple[str, str]]:
    rule = ctx.config.card_testing
    this_is_probe = 1 if is_probe_amount(ctx.payment, ctx.config) else 0
    since = ctx.at_ms - 1000 * rule.window_seconds
    found = []
    for code, who, profile in (("card_testing_customer", "this customer", ctx.profiles.customer),
                               ("card_testing_device", f"device {ctx.payment.device_id}", ctx.profiles.device),
                               ("card_testing_ip", f"IP address {ctx.payment.ip_address}", ctx.profiles.ip)):
        if profile is None:
            continue
        count = this_is_probe + count_in_window(profile.recent_probes_ms, since, ctx.at_ms)
        if count >= rule.min_count:
            found.append((code, f"{count} small payments (at most {rule.small_amount_limit_for(ctx.payment.currency)} "
                                f"minor units) or declines from {who} in the last {_seconds(rule.window_seconds)} "
                                f"({rule.min_count} or more is flagged)"))
    return found


def unknown_device_rule(ctx: RuleContext) -> list[tuple[str, str]]:
    known = ctx.profiles.customer.known_devices
    device = ctx.payment.device_id
    # Only a customer with known devices can show an unknown one; a first payment tells nothing.
    if device and known and device not in known:
        return [("unknown_device", f"device {device} has not been seen for this customer "
                                   f"({len(known)} known device{'s' if len(known) != 1 else ''})")]
    return []


def country_rule(ctx: RuleContext) -> list[tuple[str, str]]:
    country = ctx.payment.country
    if not country:
        return []
    found = []
    usual = ctx.profiles.customer.known_countries
    if usual and country not in usual:
        found.append(("unusual_country", f"country {country} is not among the customer's usual countries "
                                         f"({', '.join(sorted(usual))})"))
    if ctx.payment.ip_address:
        ip_country = ctx.ip_countries.country_of(ctx.payment.ip_address)
        if ip_country and ip_country != country:
            found.append(("ip_country_mismatch", f"country {country} differs from the IP address's country "
                                                 f"{ip_country} ({ctx.payment.ip_address})"))
    return found


def blocklist_rule(ctx: RuleContext) -> list[tuple[str, str]]:
    payment, blocklists = ctx.payment, ctx.config.blocklists
    found = []
    if payment.customer_id in blocklists.customers:
        found.append(("blocklisted_customer", f"customer {payment.customer_id} is on the blocklist"))
    if payment.device_id and payment.device_id in blocklists.devices:
        found.append(("blocklisted_device", f"device {payment.device_id} is on the blocklist"))
    if payment.ip_address:
        network = blocklists.blocked_network(payment.ip_address)
        if network:
            found.append(("blocklisted_ip", f"IP address {payment.ip_address} is on the blocklist ({network})"))
    if payment.card_fingerprint and payment.card_fingerprint in blocklists.card_fingerprints:
        found.append(("blocklisted_card", f"card fingerprint {payment.card_fingerprint} is on the blocklist"))
    return found


# In the order their factors are listed.
RULES: tuple[Rule, ...] = (blocklist_rule, card_testing_rule, velocity_rule, amount_rule, unknown_device_rule,
                           country_rule)


def epoch_ms(moment: datetime | int) -> int:
    """Epoch milliseconds of an aware datetime (or already epoch ms)."""
    if isinstance(moment, int):
        return moment
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware (datetime.now(timezone.utc))")
    return int(moment.timestamp() * 1000)


def score(payment: FraudPayment, profiles: PaymentProfiles | RiskProfile, config: FraudConfig,
          now: datetime | int, *, ip_countries: IpCountryLookup = NO_IP_COUNTRIES) -> FraudScore:
    """The payment's risk score and factors against the profiles as they were before it. Pure.

    `now` (aware datetime or epoch ms) only caps the payment's own time: see `profiles.scoring_time_ms`.
    A decline (`event_type` payment.failed) is scored too, though the batch scorer only records it."""
    if isinstance(profiles, RiskProfile):
        profiles = PaymentProfiles(profiles)
    ctx = RuleContext(payment, profiles, config, scoring_time_ms(payment, epoch_ms(now)), ip_countries)
    weights = config.weights
    factors = tuple(
        RiskFactor(code, reason, getattr(weights, code))
        for rule in RULES
        for code, reason in rule(ctx)
        if getattr(weights, code) > 0
    )
    return FraudScore(combine(factors), factors)
