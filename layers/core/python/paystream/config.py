"""Settings from the function's environment, validated once at cold start.

Usage in a handler module (at import time, so a misconfigured function fails its first invocation with
one clear message instead of failing later on some request):

    settings = Settings.from_env(require=("stripe_api_key_secret_id", "parked_queue_url"))

Each function names the optional settings it needs in `require`; the table name is always required.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SECRET_CACHE_SECONDS = 300


class ConfigError(Exception):
    """The environment is missing a variable or has an invalid value; the message names it."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    transactions_table: str = Field(min_length=1, json_schema_extra={"env": "TRANSACTIONS_TABLE"})
    idempotency_table: str | None = Field(None, json_schema_extra={"env": "IDEMPOTENCY_TABLE"})
    # Secret value: {"api_key": "sk_…"}.
    stripe_api_key_secret_id: str | None = Field(None, json_schema_extra={"env": "STRIPE_API_KEY_SECRET_ID"})
    # Empty or unset: real Stripe. Locally: the localstripe URL.
    stripe_api_base: str | None = Field(None, pattern=r"^https?://", json_schema_extra={"env": "STRIPE_API_BASE"})
    stripe_connect_timeout_seconds: float = Field(3.0, gt=0, le=30, json_schema_extra={"env": "STRIPE_CONNECT_TIMEOUT_SECONDS"})
    stripe_read_timeout_seconds: float = Field(10.0, gt=0, le=60, json_schema_extra={"env": "STRIPE_READ_TIMEOUT_SECONDS"})
    breaker_failure_threshold: int = Field(5, ge=1, json_schema_extra={"env": "BREAKER_FAILURE_THRESHOLD"})
    breaker_window_seconds: float = Field(60.0, gt=0, json_schema_extra={"env": "BREAKER_WINDOW_SECONDS"})
    breaker_cooldown_seconds: float = Field(30.0, gt=0, json_schema_extra={"env": "BREAKER_COOLDOWN_SECONDS"})
    # How long an instance trusts a closed breaker it read, sparing a GetItem per payment (0 = always read).
    breaker_closed_cache_seconds: float = Field(2.0, ge=0, json_schema_extra={"env": "BREAKER_CLOSED_CACHE_SECONDS"})
    parked_queue_url: str | None = Field(None, json_schema_extra={"env": "PARKED_QUEUE_URL"})
    ops_alerts_topic_arn: str | None = Field(None, json_schema_extra={"env": "OPS_ALERTS_TOPIC_ARN"})
    # Local fault drills only (the local Terraform environment sets it): honour the X-Paystream-Fault header.
    fault_injection_enabled: bool = Field(False, json_schema_extra={"env": "FAULT_INJECTION_ENABLED"})
    # Customer-facing notifications (lambdas/notifier).
    notifications_topic_arn: str | None = Field(None, json_schema_extra={"env": "NOTIFICATIONS_TOPIC_ARN"})
    # Retries of retryable failed payments (lambdas/payment_retry): attempts in all, the first charge included.
    payment_retry_queue_url: str | None = Field(None, json_schema_extra={"env": "PAYMENT_RETRY_QUEUE_URL"})
    payment_retry_max_attempts: int = Field(3, ge=1, le=10, json_schema_extra={"env": "PAYMENT_RETRY_MAX_ATTEMPTS"})
    payment_retry_backoff_base_seconds: int = Field(30, ge=1, le=3600, json_schema_extra={"env": "PAYMENT_RETRY_BACKOFF_BASE_SECONDS"})
    payment_retry_backoff_max_seconds: int = Field(900, ge=1, le=43200, json_schema_extra={"env": "PAYMENT_RETRY_BACKOFF_MAX_SECONDS"})
    # Stripe webhook processing (lambdas/process_payment): an event no payment matches is delivered again
    # until it has been received this many times (its link may not be written yet), then recorded as unmatched.
    unmatched_retry_receives: int = Field(3, ge=1, le=100, json_schema_extra={"env": "UNMATCHED_RETRY_RECEIVES"})
    # Seconds × receive count before such an event is delivered again (its queue's visibility timeout otherwise).
    unmatched_retry_delay_seconds: int = Field(5, ge=0, le=900, json_schema_extra={"env": "UNMATCHED_RETRY_DELAY_SECONDS"})
    process_payment_queue_url: str | None = Field(None, json_schema_extra={"env": "PROCESS_PAYMENT_QUEUE_URL"})
    # Fraud scoring (lambdas/fraud_scorer): the risk-profile table and the SSM parameter holding the
    # FraudConfig JSON (docs/fraud.md), re-read at most every `fraud_config_cache_seconds`.
    fraud_profiles_table: str | None = Field(None, json_schema_extra={"env": "FRAUD_PROFILES_TABLE"})
    fraud_config_parameter: str | None = Field(None, json_schema_extra={"env": "FRAUD_CONFIG_PARAMETER"})
    # Fraud review (lambdas/fraud_review): where alerts with the score and its reasons go.
    fraud_alerts_topic_arn: str | None = Field(None, json_schema_extra={"env": "FRAUD_ALERTS_TOPIC_ARN"})
    # Risk-gated capture (docs/fraud.md): `risk_gated` creates PaymentIntents with manual capture; a low
    # fraud score captures them (lambdas/capture_payment), a high one holds them for review.
    capture_mode: Literal["automatic", "risk_gated"] = Field("automatic", json_schema_extra={"env": "CAPTURE_MODE"})
    fraud_config_cache_seconds: int = Field(300, ge=0, le=3600, json_schema_extra={"env": "FRAUD_CONFIG_CACHE_SECONDS"})

    @classmethod
    def env_name(cls, field: str) -> str:
        return cls.model_fields[field].json_schema_extra["env"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, require: Iterable[str] = ()) -> "Settings":
        environ = os.environ if environ is None else environ
        unknown = set(require) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"unknown settings in require: {sorted(unknown)}")
        # Empty values count as unset, as Terraform writes "" for an unset optional variable.
        values = {name: environ[cls.env_name(name)] for name in cls.model_fields if environ.get(cls.env_name(name))}
        for name in ("transactions_table", *require):
            if name not in values:
                raise ConfigError(f"missing environment variable {cls.env_name(name)}: set it in the function's "
                                  "environment (Terraform sets it for deployed functions)")
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = cls.env_name(str(first["loc"][0]))
            raise ConfigError(f"invalid environment variable {name}={values[first['loc'][0]]!r}: {first['msg']}") from None

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
