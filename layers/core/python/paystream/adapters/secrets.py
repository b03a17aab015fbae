"""Secrets Manager access through Powertools parameters (cached, so warm invocations make no call)."""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

SECRET_CACHE_SECONDS = 300


class WebhookSigningSecrets:
    """Reads `{"signing_secrets": ["whsec_…", …]}` from a Secrets Manager secret."""

    def __init__(self, secret_id: str, max_age: int = SECRET_CACHE_SECONDS):
        self._secret_id = secret_id
        self._max_age = max_age

    def current(self, *, refresh: bool = False) -> list[str]:
        try:
            value = parameters.get_secret(
                self._secret_id, transform="json", max_age=self._max_age, force_fetch=refresh
            )
        except parameters.exceptions.GetParameterError:
            # A secret without a value yet (nothing configured): no webhook can verify.
            return []
        secrets = value.get("signing_secrets", []) if isinstance(value, dict) else []
        return [s for s in secrets if isinstance(s, str) and s]
