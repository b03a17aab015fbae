"""Which Stripe payment failures are worth retrying: the platform's one classification.

Used for errors raised by a Stripe call (`adapters.stripe_gateway.map_stripe_error`) and for the
`last_payment_error` of a `payment_intent.payment_failed` webhook (`paystream.processing`), so a
failure is retryable or not the same way whichever of the two reports it first.

Retryable: Stripe or the network failed, not the customer's card — a processing error, a rate limit,
a connection error, an API error or any 5xx/429. Not retryable: what the issuer or the customer must
fix (card declined, insufficient funds, expired card, incorrect CVC, authentication required, …):
charging the same card again would only fail again (and card networks penalise blind retries).
"""

from __future__ import annotations

# Stripe error `code`s and decline codes meaning "try again later", not "this card won't pay".
RETRYABLE_FAILURE_CODES = frozenset({
    "processing_error", "rate_limit", "api_connection_error", "api_error", "lock_timeout",
})
# Stripe error `type`s that are never about the card (`card_error` and `invalid_request_error` are).
RETRYABLE_ERROR_TYPES = frozenset({"api_error", "api_connection_error", "rate_limit_error"})


def failure_is_retryable(*, error_type: str | None = None, code: str | None = None,
                         decline_code: str | None = None, http_status: int | None = None) -> bool:
    if code in RETRYABLE_FAILURE_CODES or decline_code in RETRYABLE_FAILURE_CODES:
        return True
    if error_type in RETRYABLE_ERROR_TYPES:
        return True
    return http_status is not None and (http_status == 429 or http_status >= 500)
