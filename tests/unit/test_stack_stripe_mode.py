"""Which Stripe the local stack's functions call: localstripe unless a test-mode key is given."""

from __future__ import annotations

import pytest

from localdev.stack import REAL_STRIPE_API_BASE, STRIPE_TEST_KEY, StackError, stripe_mode

LOCALSTRIPE = "http://127.0.0.1:8420"


def test_without_a_key_the_functions_call_localstripe():
    mode = stripe_mode(LOCALSTRIPE, environ={})
    assert (mode.real, mode.api_key, mode.api_base, mode.functions_api_base) == (False, STRIPE_TEST_KEY, LOCALSTRIPE, LOCALSTRIPE)


@pytest.mark.parametrize("key", ["sk_test_51abc", "rk_test_51abc", "  sk_test_51abc\n"])
def test_a_test_mode_key_sends_the_functions_to_real_stripe(key):
    mode = stripe_mode(LOCALSTRIPE, environ={"STRIPE_API_KEY": key})
    assert mode.real and mode.api_key == key.strip()
    # The functions get an empty STRIPE_API_BASE, which the Stripe adapter reads as "real Stripe".
    assert (mode.api_base, mode.functions_api_base) == (REAL_STRIPE_API_BASE, "")


@pytest.mark.parametrize("key, message", [
    ("sk_live_51abc", "live-mode key"),
    ("rk_live_51abc", "live-mode key"),
    ("pk_test_51abc", "test-mode secret key"),
    ("whsec_abc", "test-mode secret key"),
])
def test_live_or_wrong_keys_are_refused_with_one_clear_message(key, message):
    with pytest.raises(StackError, match=message):
        stripe_mode(LOCALSTRIPE, environ={"STRIPE_API_KEY": key})
