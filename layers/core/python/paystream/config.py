"""Settings from the function's environment, validated once at cold start.

Usage in a handler module (at import time, so a misconfigured function fails its first invocation with
one clear message instead of failing later on some request):

    settings = Settings.from_env(require=("stripe_api_key_secret_id", "parked_queue_url"))

Each function names the optional settings it needs in `require`; the table name is always required.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET_CACHE_SECONDS = 300


class ConfigError(Exception):
    """The environment is missing a variable or has an invalid value; the message names it."""


class InvalidSetting(ValueError):
    """One setting's value is unusable; `message` reads like pydantic's (this class replaced a pydantic model)."""

    def __init__(self, name: str, value: Any, message: str):
        super().__init__(f"{name}: {message}")
        self.name, self.value, self.message = name, value, message


# Plain dataclass validation, not a pydantic model: every function reads its settings at cold start, and the
# notifier (which validates nothing else with pydantic) would otherwise load pydantic for them alone (about
# 0.4 of the cold-start yardstick, docs/payments-core.md "Observability and cold start"). The rules and the
# messages are pydantic's lax mode, as before: ints and floats are parsed from strings, booleans from
# true/false, 1/0, yes/no, on/off, t/f, y/n (any case).
def _setting(env: str, default: Any = dataclasses.MISSING, *, kind: type = str, ge: float | None = None,
             gt: float | None = None, le: float | None = None, min_length: int | None = None,
             pattern: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    rules = {"env": env, "kind": kind, "ge": ge, "gt": gt, "le": le, "min_length": min_length,
             "pattern": pattern, "choices": choices}
    return dataclasses.field(default=default, metadata=rules)


_INT_TEXT = re.compile(r"[+-]?[0-9](?:_?[0-9])*(?:\.0+)?")
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def _number(text: str) -> str:
    """Text a number may be parsed from: surrounding whitespace dropped; non-ASCII digits (which int() and
    float() would take) refused, as pydantic does."""
    text = text.strip()
    return text if text.isascii() else ""


def _coerce(rules: Mapping[str, Any], value: Any) -> Any:
    kind = rules["kind"]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError("Input should be a valid boolean, unable to interpret input")
    if kind is int:
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = _number(value) if isinstance(value, str) else ""
        if not _INT_TEXT.fullmatch(text):
            raise ValueError("Input should be a valid integer, unable to parse string as an integer")
        return int(text.split(".")[0])
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(_number(value) or "x") if isinstance(value, str) else float("x")
        except ValueError:
            raise ValueError("Input should be a valid number, unable to parse string as a number") from None
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return value


def _check(rules: Mapping[str, Any], value: Any) -> None:
    # pydantic's order, which decides the one message a value failing two bounds (nan) gets
    if rules["le"] is not None and not value <= rules["le"]:
        raise ValueError(f"Input should be less than or equal to {rules['le']}")
    if rules["ge"] is not None and not value >= rules["ge"]:
        raise ValueError(f"Input should be greater than or equal to {rules['ge']}")
    if rules["gt"] is not None and not value > rules["gt"]:
        raise ValueError(f"Input should be greater than {rules['gt']}")
    if rules["min_length"] is not None and len(value) < rules["min_length"]:
        raise ValueError(f"String should have at least {rules['min_length']} character")
    if rules["pattern"] is not None and not re.match(rules["pattern"], value):
        raise ValueError(f"String should match pattern '{rules['pattern']}'")
    if rules["choices"] is not None and value not in rules["choices"]:
        raise ValueError("Input should be " + " or ".join(repr(choice) for choice in rules["choices"]))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    transactions_table: str = _setting("TRANSACTIONS_TABLE", min_length=1)
    idempotency_table: str | None = _setting("IDEMPOTENCY_TABLE", None)
    # Secret value: {"api_key": "sk_…"}.
    stripe_api_key_secret_id: str | None = _setting("STRIPE_API_KEY_SECRET_ID", None)
    # Empty or unset: real Stripe. Locally: the localstripe URL.
    stripe_api_base: str | None = _setting("STRIPE_API_BASE", None, pattern=r"^https?://")
    stripe_connect_timeout_seconds: float = _setting("STRIPE_CONNECT_TIMEOUT_SECONDS", 3.0, kind=float, gt=0, le=30)
    stripe_read_timeout_seconds: float = _setting("STRIPE_READ_TIMEOUT_SECONDS", 10.0, kind=float, gt=0, le=60)
    breaker_failure_threshold: int = _setting("BREAKER_FAILURE_THRESHOLD", 5, kind=int, ge=1)
    breaker_window_seconds: float = _setting("BREAKER_WINDOW_SECONDS", 60.0, kind=float, gt=0)
    breaker_cooldown_seconds: float = _setting("BREAKER_COOLDOWN_SECONDS", 30.0, kind=float, gt=0)
    # How long an instance trusts a closed breaker it read, sparing a GetItem per payment (0 = always read).
    breaker_closed_cache_seconds: float = _setting("BREAKER_CLOSED_CACHE_SECONDS", 2.0, kind=float, ge=0)
    parked_queue_url: str | None = _setting("PARKED_QUEUE_URL", None)
    ops_alerts_topic_arn: str | None = _setting("OPS_ALERTS_TOPIC_ARN", None)
    # Local fault drills only (the local Terraform environment sets it): honour the X-Paystream-Fault header.
    fault_injection_enabled: bool = _setting("FAULT_INJECTION_ENABLED", False, kind=bool)
    # Customer-facing notifications (lambdas/notifier).
    notifications_topic_arn: str | None = _setting("NOTIFICATIONS_TOPIC_ARN", None)
    # Retries of retryable failed payments (lambdas/payment_retry): attempts in all, the first charge included.
    payment_retry_queue_url: str | None = _setting("PAYMENT_RETRY_QUEUE_URL", None)
    payment_retry_max_attempts: int = _setting("PAYMENT_RETRY_MAX_ATTEMPTS", 3, kind=int, ge=1, le=10)
    payment_retry_backoff_base_seconds: int = _setting("PAYMENT_RETRY_BACKOFF_BASE_SECONDS", 30, kind=int, ge=1, le=3600)
    payment_retry_backoff_max_seconds: int = _setting("PAYMENT_RETRY_BACKOFF_MAX_SECONDS", 900, kind=int, ge=1, le=43200)
    # Stripe webhook processing (lambdas/process_payment): an event no payment matches is delivered again
    # until it has been received this many times (its link may not be written yet), then recorded as unmatched.
    unmatched_retry_receives: int = _setting("UNMATCHED_RETRY_RECEIVES", 3, kind=int, ge=1, le=100)
    # Seconds × receive count before such an event is delivered again (its queue's visibility timeout otherwise).
    unmatched_retry_delay_seconds: int = _setting("UNMATCHED_RETRY_DELAY_SECONDS", 5, kind=int, ge=0, le=900)
    process_payment_queue_url: str | None = _setting("PROCESS_PAYMENT_QUEUE_URL", None)
    # Fraud scoring (lambdas/fraud_scorer): the risk-profile table and the SSM parameter holding the
    # FraudConfig JSON (docs/fraud.md), re-read at most every `fraud_config_cache_seconds`.
    fraud_profiles_table: str | None = _setting("FRAUD_PROFILES_TABLE", None)
    fraud_config_parameter: str | None = _setting("FRAUD_CONFIG_PARAMETER", None)
    # Fraud review (lambdas/fraud_review): where alerts with the score and its reasons go.
    fraud_alerts_topic_arn: str | None = _setting("FRAUD_ALERTS_TOPIC_ARN", None)
    # Risk-gated capture (docs/fraud.md): `risk_gated` creates PaymentIntents with manual capture; a low
    # fraud score captures them (lambdas/capture_payment), a high one holds them for review.
    capture_mode: str = _setting("CAPTURE_MODE", "automatic", choices=("automatic", "risk_gated"))
    fraud_config_cache_seconds: int = _setting("FRAUD_CONFIG_CACHE_SECONDS", 300, kind=int, ge=0, le=3600)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.default is None:
                continue
            try:
                value = _coerce(field.metadata, value)
                _check(field.metadata, value)
            except ValueError as exc:
                raise InvalidSetting(field.name, getattr(self, field.name), str(exc)) from None
            object.__setattr__(self, field.name, value)  # frozen: the parsed value replaces the text

    @classmethod
    def env_name(cls, field: str) -> str:
        return _FIELDS[field].metadata["env"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, require: Iterable[str] = ()) -> "Settings":
        environ = os.environ if environ is None else environ
        unknown = set(require) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown settings in require: {sorted(unknown)}")
        # Empty values count as unset, as Terraform writes "" for an unset optional variable.
        values = {name: environ[cls.env_name(name)] for name in _FIELDS if environ.get(cls.env_name(name))}
        for name in ("transactions_table", *require):
            if name not in values:
                raise ConfigError(f"missing environment variable {cls.env_name(name)}: set it in the function's "
                                  "environment (Terraform sets it for deployed functions)")
        try:
            return cls(**values)
        except InvalidSetting as exc:
            raise ConfigError(f"invalid environment variable {cls.env_name(exc.name)}={exc.value!r}: "
                              f"{exc.message}") from None

    def stripe_api_key(self, *, refresh: bool = False) -> str:
        """The Stripe secret key from Secrets Manager, cached for SECRET_CACHE_SECONDS by Powertools."""
        if not self.stripe_api_key_secret_id:
            raise ConfigError("missing environment variable STRIPE_API_KEY_SECRET_ID: this function needs the Stripe key")
        # Imported here, not at module level: it pulls in every Powertools parameter provider (about 35 ms of
        # every cold start), and only the functions that call Stripe ever read the key.
        from aws_lambda_powertools.utilities import parameters

        try:
            value = parameters.get_secret(
                self.stripe_api_key_secret_id, transform="json", max_age=SECRET_CACHE_SECONDS, force_fetch=refresh
            )
        except parameters.exceptions.TransformParameterError:
            value = None
        api_key = value.get("api_key") if isinstance(value, dict) else None
        if not isinstance(api_key, str) or not api_key.startswith(("sk_", "rk_")):
            raise ConfigError(
                f'secret {self.stripe_api_key_secret_id} must be JSON {{"api_key": "sk_…"}} with a Stripe secret '
                "or restricted key: put the key there with `aws secretsmanager put-secret-value`"
            )
        return api_key


_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}
