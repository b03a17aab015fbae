"""The Stripe adapter: PaymentIntents and Refunds over `stripe.StripeClient`, errors as `PaymentProviderError`.

Card data never passes through here: callers send only Stripe ids (`pm_…`) created by the client with
Stripe directly. Every mutating call carries an idempotency key, so a retry after a crash can never
charge twice (on real Stripe; localstripe ignores the key, see /work/shared/LOCAL-EMULATION.md).
The platform retries on its own terms (breaker, parked queue), so stripe-python never retries.
"""

from __future__ import annotations

from typing import Any

import stripe

from paystream.stripe_failures import failure_is_retryable

# Stripe's own limits on metadata (https://docs.stripe.com/api/metadata).
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


class PaymentProviderError(Exception):
    """A Stripe call that did not succeed.

    `retryable`: the same call may succeed later. `unavailable`: Stripe could not be reached or failed
    on its side (connection error, timeout, 5xx) — what the circuit breaker counts.
    `payment_intent`: the PaymentIntent (plain dict) when Stripe reported one, e.g. on a card decline.
    """

    def __init__(self, kind: str, *, retryable: bool, message: str, unavailable: bool = False,
                 code: str | None = None, decline_code: str | None = None, http_status: int | None = None,
                 payment_intent: dict | None = None):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.retryable = retryable
        self.unavailable = unavailable
        self.code = code
        self.decline_code = decline_code
        self.message = message
        self.http_status = http_status
        self.payment_intent = payment_intent


def _to_dict(obj: Any) -> dict:
    return obj.to_dict(recursive=True)


def map_stripe_error(exc: stripe.StripeError) -> PaymentProviderError:
    """Classify a stripe-python error (without the PaymentIntent: see StripeGateway._card_error)."""
    error = exc.error
    common = {
        "message": exc.user_message or str(exc) or type(exc).__name__,
        "code": exc.code,
        "decline_code": getattr(error, "decline_code", None) if error else None,
        "http_status": exc.http_status,
    }
    if isinstance(exc, stripe.CardError):
        # Mostly declines (never retried); a card `processing_error` is Stripe's side and retryable.
        retryable = failure_is_retryable(error_type="card_error", code=exc.code, decline_code=common["decline_code"])
        return PaymentProviderError(exc.code or "card_declined", retryable=retryable, **common)
    if isinstance(exc, stripe.IdempotencyError):
        # Same idempotency key with different parameters: a platform bug, never fixed by retrying.
        return PaymentProviderError("idempotency_conflict", retryable=False, **common)
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        return PaymentProviderError("configuration", retryable=False, **common)
    if isinstance(exc, stripe.RateLimitError):
        return PaymentProviderError("rate_limited", retryable=True, **common)
    if isinstance(exc, stripe.APIConnectionError):
        return PaymentProviderError("unavailable", retryable=True, unavailable=True, **common)
    if isinstance(exc, stripe.InvalidRequestError):
        return PaymentProviderError("invalid_request", retryable=False, **common)
    if exc.http_status is None or exc.http_status >= 500:
        return PaymentProviderError("unavailable", retryable=True, unavailable=True, **common)
    # Any other 4xx (409 conflicts on a locked object…): Stripe tells us whether a retry can help.
    should_retry = (exc.headers or {}).get("stripe-should-retry") == "true"
    return PaymentProviderError("provider_error", retryable=should_retry, **common)


# Stripe refuses a refund above what is left on the charge: `charge_already_refunded` when nothing is
# left, otherwise an invalid_request_error on the `amount` parameter. Both become this kind.
REFUND_EXCEEDS_REMAINING = "refund_exceeds_remaining"


def _refund_refusal(exc: stripe.InvalidRequestError) -> PaymentProviderError:
    error = map_stripe_error(exc)
    if exc.code == "charge_already_refunded" or getattr(exc, "param", None) == "amount":
        error.kind = REFUND_EXCEEDS_REMAINING
    return error


def _check_metadata(metadata: dict[str, str]) -> None:
    # Checked before calling Stripe so a violation is one clear message instead of a Stripe 400.
    if len(metadata) > METADATA_MAX_KEYS:
        raise ValueError(
            f"Stripe accepts at most {METADATA_MAX_KEYS} metadata keys, got {len(metadata)} "
            "(transaction_id and customer_id are added by the platform): send fewer keys"
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata {key!r}: keys and values must be strings")
        if len(key) > METADATA_MAX_KEY_LENGTH or len(value) > METADATA_MAX_VALUE_LENGTH:
            raise ValueError(
                f"metadata {key[:50]!r}: Stripe limits keys to {METADATA_MAX_KEY_LENGTH} and values to "
                f"{METADATA_MAX_VALUE_LENGTH} characters"
            )


class StripeGateway:
    def __init__(self, api_key: str, *, api_base: str | None = None, connect_timeout: float = 3.0,
                 read_timeout: float = 10.0, client: stripe.StripeClient | None = None):
        """`api_base` None or empty means real Stripe. `read_timeout` bounds each wait for response
        bytes (requests has no total deadline; Stripe answers in one burst, so in practice it is one)."""
        self._client = client or stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=(connect_timeout, read_timeout)),
        )

    def create_and_confirm_payment_intent(self, *, transaction_id: str, amount: int, currency: str,
                                          customer_id: str, payment_method_id: str, idempotency_key: str,
                                          description: str | None = None,
                                          metadata: dict[str, str] | None = None,
                                          capture_method: str = "automatic") -> dict:
        """Create and confirm in one call. Returns the PaymentIntent (status succeeded, requires_action,
        processing…, or requires_capture with `capture_method="manual"`); a decline raises
        PaymentProviderError with `payment_intent` set."""
        # Platform keys last: a client's metadata can never overwrite them.
        full_metadata = {**(metadata or {}), "transaction_id": transaction_id, "customer_id": customer_id}
        _check_metadata(full_metadata)
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": payment_method_id,
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": full_metadata,
        }
        if description:
            params["description"] = description
        if capture_method == "manual":
            params["capture_method"] = "manual"
        try:
            intent = self._client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            raise self._card_error(exc) from exc
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _to_dict(intent)

    def retrieve_payment_intent(self, payment_intent_id: str) -> dict:
        try:
            return _to_dict(self._client.v1.payment_intents.retrieve(payment_intent_id))
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc

    def cancel_payment_intent(self, payment_intent_id: str, *, idempotency_key: str,
                              cancellation_reason: str | None = None) -> dict:
        """Cancel a PaymentIntent not yet captured (`cancellation_reason`: Stripe's, e.g. `fraudulent`)."""
        params = {"cancellation_reason": cancellation_reason} if cancellation_reason else None
        try:
            intent = self._client.v1.payment_intents.cancel(payment_intent_id, params=params,
                                                            options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _to_dict(intent)

    def capture_payment_intent(self, payment_intent_id: str, *, idempotency_key: str) -> dict:
        """Capture an authorized (requires_capture) PaymentIntent in full."""
        try:
            intent = self._client.v1.payment_intents.capture(payment_intent_id, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _to_dict(intent)

    def create_refund(self, payment_intent_id: str, *, idempotency_key: str, amount: int | None = None,
                      reason: str | None = None) -> dict:
        """Refund `amount` (minor units), or the whole remaining amount when None."""
        params: dict[str, Any] = {"payment_intent": payment_intent_id}
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        try:
            refund = self._client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            raise _refund_refusal(exc) from exc
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _to_dict(refund)

    def retrieve_charge(self, charge_id: str) -> dict:
        """The charge (its `amount_refunded` is the cumulative amount Stripe has refunded on it)."""
        try:
            return _to_dict(self._client.v1.charges.retrieve(charge_id))
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc

    def confirm_payment_intent(self, payment_intent_id: str, *, payment_method_id: str, idempotency_key: str) -> dict:
        """Confirm an existing PaymentIntent again (a retry after a retryable failure) with its payment
        method: Stripe clears it from a PaymentIntent whose last attempt failed. A decline raises
        PaymentProviderError with `payment_intent` set, as create does."""
        try:
            intent = self._client.v1.payment_intents.confirm(
                payment_intent_id, params={"payment_method": payment_method_id},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as exc:
            raise self._card_error(exc) from exc
        except stripe.StripeError as exc:
            raise map_stripe_error(exc) from exc
        return _to_dict(intent)

    def _card_error(self, exc: stripe.CardError) -> PaymentProviderError:
        error = map_stripe_error(exc)
        intent = getattr(exc.error, "payment_intent", None) if exc.error else None
        charge_id = getattr(exc.error, "charge", None) if exc.error else None
        if intent is not None:
            error.payment_intent = _to_dict(intent)
        elif charge_id:
            # Stripe puts the PaymentIntent in the error; localstripe only names the failed charge.
            try:
                charge = self._client.v1.charges.retrieve(charge_id, params={"expand": ["payment_intent"]})
                if isinstance(charge.payment_intent, stripe.StripeObject):
                    error.payment_intent = _to_dict(charge.payment_intent)
            except stripe.StripeError:
                pass  # the decline itself is the answer; the PaymentIntent arrives by webhook anyway
        return error
