"""What the platform logged during the whole e2e session holds no secret and no card data.

Runs last (marker `audits_logs`): by then every other test has taken payments with test cards, sent
signed webhooks, used the API key and made functions read the Stripe key. The functions' logs
(`<logs_dir>/<function>.log`) and the Lambda data plane's log must contain none of: the API key, the
webhook signing secret, a Stripe secret or restricted key, a PaymentIntent client secret, a card number.
localstripe's own log (the Stripe side) and Terraform's are not the platform's logs and are not read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.audits_logs]

STRIPE_KEY = re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{6,}")
WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9]{8,}")
CLIENT_SECRET = re.compile(r"\bpi_[A-Za-z0-9]+_secret_[A-Za-z0-9]+")
# A run of 13-19 digits standing alone: digits inside a longer word (an X-Ray trace id's hex, a
# sequence number) are not a card number even when they happen to pass the Luhn check.
CARD_NUMBER = re.compile(r"(?<![\w.])[3-6]\d{12,18}(?![\w.])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def findings(text: str, literal_secrets: list[str]) -> list[str]:
    found = [f"literal secret {secret[:6]}…" for secret in literal_secrets if secret and secret in text]
    for name, pattern in (("Stripe key", STRIPE_KEY), ("webhook secret", WEBHOOK_SECRET),
                          ("client secret", CLIENT_SECRET)):
        found += [f"{name} {match[:12]}…" for match in pattern.findall(text)]
    found += [f"card number {match[:6]}…" for match in CARD_NUMBER.findall(text) if luhn_valid(match)]
    return found


def test_the_scanner_finds_what_it_looks_for():
    # The patterns themselves: a log line with each kind of secret is reported, an ordinary one is not.
    leaky = ('{"message":"x","key":"sk_test_51Habc123def","secret":"whsec_abcdefgh1234","cs":"pi_3Nx_secret_Yz9",'
             '"card":"4242424242424242","api":"k3y-value"}')
    assert len(findings(leaky, ["k3y-value"])) == 5
    clean = ('{"message":"payment initiated","amount":4200,"at_ms":1790000000000,"seq":"49654321098765432101234567",'
             '"xray_trace_id":"1-6b03261a-96d906df30f3540502179643"}')
    assert findings(clean, ["k3y-value"]) == []


def test_no_secret_or_card_number_was_logged(outputs, stack_state_dir):
    logs_dir = Path(outputs["logs_dir"])
    platform_logs = sorted(logs_dir.glob("paystream-*.log")) + [logs_dir / "dataplane.log"]
    assert len(platform_logs) > 5 and all(path.exists() for path in platform_logs)
    # A restarted emulator gave the stack a new API key: the secrets of outputs.json as it is now count too.
    current = json.loads((stack_state_dir / "outputs.json").read_text()) if stack_state_dir else outputs
    literal = [value for o in (outputs, current) for value in (o["api_key"], o["webhook_secret"],
                                                               o.get("stripe_api_key", ""))]
    leaks = {path.name: found for path in platform_logs
             if (found := findings(path.read_text(errors="replace"), literal))}
    assert leaks == {}
