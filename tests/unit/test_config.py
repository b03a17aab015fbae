"""Settings from the environment: defaults, one clear error per bad variable, the cached Stripe key."""

from __future__ import annotations

import json

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from paystream.config import ConfigError, Settings

BASE_ENV = {"TRANSACTIONS_TABLE": "paystream-transactions"}


def test_defaults_and_values_from_the_environment():
    settings = Settings.from_env({
        **BASE_ENV,
        "IDEMPOTENCY_TABLE": "paystream-idempotency",
        "STRIPE_API_KEY_SECRET_ID": "paystream/stripe",
        "STRIPE_API_BASE": "http://127.0.0.1:8420",
        "BREAKER_FAILURE_THRESHOLD": "3",
        "BREAKER_COOLDOWN_SECONDS": "12.5",
        "PARKED_QUEUE_URL": "http://sqs/parked",
        "OPS_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:ops-alerts",
    })
    assert settings.transactions_table == "paystream-transactions"
    assert settings.stripe_api_base == "http://127.0.0.1:8420"
    assert settings.breaker_failure_threshold == 3
    assert settings.breaker_cooldown_seconds == 12.5
    assert settings.breaker_window_seconds == 60
    assert (settings.stripe_connect_timeout_seconds, settings.stripe_read_timeout_seconds) == (3, 10)
    assert settings.ops_alerts_topic_arn.endswith(":ops-alerts")


def test_empty_stripe_api_base_means_real_stripe():
    assert Settings.from_env({**BASE_ENV, "STRIPE_API_BASE": ""}).stripe_api_base is None


def test_missing_table_names_the_variable():
    with pytest.raises(ConfigError, match="^missing environment variable TRANSACTIONS_TABLE: set it"):
        Settings.from_env({})


def test_a_required_optional_setting_names_its_variable():
    with pytest.raises(ConfigError, match="^missing environment variable PARKED_QUEUE_URL"):
        Settings.from_env({**BASE_ENV, "STRIPE_API_KEY_SECRET_ID": "paystream/stripe"},
                          require=("stripe_api_key_secret_id", "parked_queue_url"))
    assert Settings.from_env(BASE_ENV).parked_queue_url is None


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("BREAKER_FAILURE_THRESHOLD", "zero", "valid integer"),
    ("BREAKER_FAILURE_THRESHOLD", "0", "greater than or equal to 1"),
    ("BREAKER_WINDOW_SECONDS", "-1", "greater than 0"),
    ("STRIPE_READ_TIMEOUT_SECONDS", "600", "less than or equal to 60"),
    ("STRIPE_API_BASE", "localhost:8420", "should match pattern"),
])
def test_invalid_value_is_one_error_naming_the_variable(name, value, expected):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**BASE_ENV, name: value})
    message = str(info.value)
    assert message.startswith(f"invalid environment variable {name}={value!r}: ")
    assert expected in message
    assert "\n" not in message


def test_require_rejects_an_unknown_setting_name():
    with pytest.raises(ValueError, match="unknown settings in require: \\['parked_queue'\\]"):
        Settings.from_env(BASE_ENV, require=("parked_queue",))


@pytest.fixture()
def secrets():
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    parameters.clear_caches()


def test_stripe_api_key_is_read_from_secrets_manager_and_cached(secrets):
    secrets.create_secret(Name="paystream/stripe", SecretString=json.dumps({"api_key": "sk_test_first"}))
    settings = Settings.from_env({**BASE_ENV, "STRIPE_API_KEY_SECRET_ID": "paystream/stripe"})
    assert settings.stripe_api_key() == "sk_test_first"

    secrets.put_secret_value(SecretId="paystream/stripe", SecretString=json.dumps({"api_key": "sk_test_rotated"}))
    assert settings.stripe_api_key() == "sk_test_first", "the key was read again instead of from the cache"
    assert settings.stripe_api_key(refresh=True) == "sk_test_rotated"


@pytest.mark.parametrize("secret_string", ["sk_test_not_json", json.dumps({"key": "sk_test_x"}), json.dumps({"api_key": "pk_test_x"})])
def test_malformed_stripe_secret_says_what_it_must_contain(secrets, secret_string):
    secrets.create_secret(Name="paystream/stripe", SecretString=secret_string)
    settings = Settings.from_env({**BASE_ENV, "STRIPE_API_KEY_SECRET_ID": "paystream/stripe"})
    with pytest.raises(ConfigError, match='secret paystream/stripe must be JSON {"api_key": "sk_…"}'):
        settings.stripe_api_key()


def test_stripe_api_key_without_a_secret_id_names_the_variable():
    with pytest.raises(ConfigError, match="missing environment variable STRIPE_API_KEY_SECRET_ID"):
        Settings.from_env(BASE_ENV).stripe_api_key()
