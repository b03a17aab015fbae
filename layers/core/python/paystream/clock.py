"""The platform's timestamps, apart from the pydantic models: the webhook inbox stamps what it stores with
them, and the stripe_webhook function validates nothing with pydantic (its cold start would pay about 0.4
of the yardstick for this one function otherwise; docs/payments-core.md "Observability and cold start")."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds: fixed width, so it sorts as text (the GSIs' sort key)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
