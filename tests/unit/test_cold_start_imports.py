"""What a function's cold start must not load (issue 8, cold start ≤ 1.5× the boto3 baseline): each case
imports a handler or module in a fresh interpreter, as Lambda's init does, and checks which modules it left
in sys.modules and which clients it built. Timings belong to `make bench` (localdev.bench_cold_start); these
name the imports whose return would cost the measured ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CORE = PROJECT_ROOT / "layers" / "core" / "python"
# Every variable the handlers below read at import; the endpoint refuses connections, so an import that
# made an AWS call would fail instead of passing unnoticed.
ENVIRONMENT = {
    "TRANSACTIONS_TABLE": "transactions", "IDEMPOTENCY_TABLE": "idempotency", "STRIPE_API_KEY_SECRET_ID": "stripe",
    "WEBHOOK_SECRETS_SECRET_ID": "webhook-secrets",
    "PARKED_QUEUE_URL": "http://127.0.0.1:1/000000000000/parked",
    "PAYMENT_RETRY_QUEUE_URL": "http://127.0.0.1:1/000000000000/retry",
    "NOTIFICATIONS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:notifications",
    "OPS_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:ops-alerts",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_LAMBDA_FUNCTION_NAME": "under-test",
}


def loaded_after(code: str, function: str | None = None, report: str = "None") -> tuple[set[str], object]:
    """The modules a fresh interpreter holds after running `code` (from lambdas/<function>/ when given),
    and the JSON value of the expression `report` evaluated afterwards."""
    path = [str(PROJECT_ROOT / "lambdas" / function)] if function else []
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}, **ENVIRONMENT,
           "PYTHONPATH": os.pathsep.join([*path, str(CORE)])}
    script = f"import json, sys\n{code}\nreport = {report}\nprint(json.dumps([sorted(sys.modules), report]))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=path[0] if path else PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
    modules, value = json.loads(result.stdout.strip().splitlines()[-1])
    return set(modules), value


def test_the_notifier_loads_no_pydantic_and_no_event_store():
    # It publishes to SNS under its own idempotency records (paystream.notifications, not Powertools'
    # idempotency utility); its settings are a dataclass and the event store's pydantic models are imported
    # only by the factories that build a store (paystream.adapters.wiring).
    modules, _ = loaded_after("import handler", "notifier")
    assert "handler" in modules
    assert not {"pydantic", "paystream.models", "paystream.store", "paystream.payments",
                "aws_lambda_powertools.utilities.idempotency"} & modules


def test_reading_the_fraud_configuration_does_not_load_the_scoring_code():
    # fraud_review and capture_payment only read the configuration (FraudConfigSource).
    modules, _ = loaded_after("from paystream.adapters.fraud_profiles import FraudConfigSource")
    assert "paystream.fraud.config" in modules
    assert not {"paystream.fraud.scoring", "paystream.fraud.rules", "paystream.fraud.profiles",
                "paystream.fraud.inputs"} & modules


def test_the_fraud_package_still_offers_every_name_it_lists():
    modules, missing = loaded_after(
        "import paystream.fraud as fraud", report="[n for n in fraud.__all__ if not hasattr(fraud, n)]")
    assert missing == []
    assert "paystream.fraud.scoring" in modules  # loaded on demand, by hasattr above


@pytest.mark.parametrize("function", ["payment_retry", "resume_payments"])
def test_sqs_is_not_built_at_import_where_only_some_messages_use_it(function):
    # Only a retry not due yet, or a payment still parked, puts its message back (ChangeMessageVisibility).
    _, built = loaded_after("import handler", function, report="'_client' in vars(handler.sqs)")
    assert built is False


def test_settings_are_validated_without_pydantic():
    modules, values = loaded_after(
        "from paystream.config import Settings\n"
        "s = Settings.from_env({'TRANSACTIONS_TABLE': 't', 'BREAKER_FAILURE_THRESHOLD': ' 3 ', "
        "'FAULT_INJECTION_ENABLED': 'yes', 'BREAKER_COOLDOWN_SECONDS': '12.5'})",
        report="[s.breaker_failure_threshold, s.fault_injection_enabled, s.breaker_cooldown_seconds]")
    assert values == [3, True, 12.5]
    assert "pydantic" not in modules


# What the pydantic model these settings replaced accepted and refused, kept as it was (lax mode).
@pytest.mark.parametrize(("name", "text", "expected"), [
    ("BREAKER_FAILURE_THRESHOLD", "3.0", 3),
    ("BREAKER_FAILURE_THRESHOLD", "+3", 3),
    ("BREAKER_FAILURE_THRESHOLD", "1_0", 10),
    ("BREAKER_FAILURE_THRESHOLD", "3.5", "Input should be a valid integer, unable to parse string as an integer"),
    ("BREAKER_FAILURE_THRESHOLD", "5.", "Input should be a valid integer, unable to parse string as an integer"),
    ("BREAKER_FAILURE_THRESHOLD", "1e1", "Input should be a valid integer, unable to parse string as an integer"),
    ("BREAKER_FAILURE_THRESHOLD", "\u0663", "Input should be a valid integer, unable to parse string as an integer"),
    ("BREAKER_WINDOW_SECONDS", "1e3", 1000.0),
    ("BREAKER_WINDOW_SECONDS", "inf", float("inf")),
    ("BREAKER_WINDOW_SECONDS", "nan", "Input should be greater than 0"),
    ("STRIPE_READ_TIMEOUT_SECONDS", "nan", "Input should be less than or equal to 60"),
    ("BREAKER_CLOSED_CACHE_SECONDS", "0", 0.0),
    ("FAULT_INJECTION_ENABLED", "TRUE", True),
    ("FAULT_INJECTION_ENABLED", "off", False),
    ("FAULT_INJECTION_ENABLED", " true ", "Input should be a valid boolean, unable to interpret input"),
    ("CAPTURE_MODE", "risk_gated", "risk_gated"),
    ("CAPTURE_MODE", "Automatic", "Input should be 'automatic' or 'risk_gated'"),
    ("STRIPE_API_BASE", "HTTP://x", "String should match pattern '^https?://'"),
    ("PAYMENT_RETRY_BACKOFF_MAX_SECONDS", "43201", "Input should be less than or equal to 43200"),
])
def test_settings_parse_and_refuse_values_as_before(name, text, expected):
    from paystream.config import ConfigError, Settings

    field = next(f for f in Settings.__dataclass_fields__ if Settings.env_name(f) == name)
    if isinstance(expected, str) and expected.startswith(("Input", "String")):
        with pytest.raises(ConfigError) as info:
            Settings.from_env({"TRANSACTIONS_TABLE": "t", name: text})
        assert str(info.value) == f"invalid environment variable {name}={text!r}: {expected}"
    else:
        value = getattr(Settings.from_env({"TRANSACTIONS_TABLE": "t", name: text}), field)
        assert value == expected and type(value) is type(expected)


def test_settings_built_directly_are_validated_too():
    from paystream.config import InvalidSetting, Settings

    assert Settings(transactions_table="t", breaker_failure_threshold="4").breaker_failure_threshold == 4
    with pytest.raises(InvalidSetting, match="breaker_failure_threshold: Input should be greater than or equal to 1"):
        Settings(transactions_table="t", breaker_failure_threshold=0)
    with pytest.raises(TypeError):
        Settings(transactions_table="t", no_such_setting=1)  # unknown settings are refused, as before


def test_the_stripe_webhook_function_loads_no_pydantic():
    # It verifies and stores raw webhooks: the inbox stamps them with paystream.clock, not the pydantic models.
    modules, _ = loaded_after("import handler", "stripe_webhook")
    assert "handler" in modules and "paystream.adapters.inbox" in modules
    assert not {"pydantic", "paystream.models"} & modules
