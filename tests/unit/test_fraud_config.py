"""The fraud configuration document: defaults, overrides, one clear error naming each bad field, the docs example."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from paystream.fraud import FraudConfig, FraudConfigError, InMemoryIpCountries
from paystream.fraud.config import MAX_IP_COUNTRIES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fraud.md"


@pytest.mark.parametrize("text", [None, "", "   \n", "{}", b"{}", b""])
def test_an_empty_document_gives_the_defaults(text):
    config = FraudConfig.from_json(text)
    assert config == FraudConfig()
    assert (config.thresholds.review, config.thresholds.block) == (70, 90)
    assert config.amount.multiple == 3.0
    assert (config.velocity.window_seconds, config.velocity.max_payments) == (300, 5)
    assert config.weights.velocity == 40
    assert config.blocklists.customers == frozenset()


def test_keys_left_out_keep_their_defaults():
    config = FraudConfig.from_json('{"velocity": {"max_payments": 8}, "weights": {"unknown_device": 0}}')
    assert config.velocity.max_payments == 8
    assert config.velocity.window_seconds == 300
    assert config.weights.unknown_device == 0
    assert config.weights.velocity == 40
    assert config.thresholds.review == 70


def test_currencies_and_networks_are_normalised():
    config = FraudConfig.from_json(json.dumps({
        "amount": {"first_payment_limit_by_currency": {"JPY": 90000}},
        "card_testing": {"small_amount_limit_by_currency": {"Jpy": 300}},
        "blocklists": {"ips": ["203.0.113.9/24", "2001:db8::1"]},
    }))
    assert config.amount.first_payment_limit_for("jpy") == 90000
    assert config.amount.first_payment_limit_for("usd") == 50000
    assert config.card_testing.small_amount_limit_for("JPY") == 300
    assert config.blocklists.ips == frozenset({"203.0.113.0/24", "2001:db8::1/128"})
    assert config.blocklists.blocked_network("203.0.113.200") == "203.0.113.0/24"
    assert config.blocklists.blocked_network("2001:db8::1") == "2001:db8::1/128"
    assert config.blocklists.blocked_network("203.0.114.1") is None
    assert config.blocklists.blocked_network("not an ip") is None


def test_ip_countries_are_normalised_and_feed_the_lookup():
    config = FraudConfig.from_json(json.dumps({"ip_countries": {
        "203.0.113.9/24": "de", "203.0.113.7": "fr", "2001:DB8::/32": "Nl", "203.0.113.0/24": "DE"}}))
    assert config.ip_countries == {"203.0.113.0/24": "DE", "203.0.113.7/32": "FR", "2001:db8::/32": "NL"}
    lookup = InMemoryIpCountries(config.ip_countries)
    assert [lookup.country_of(ip) for ip in ("203.0.113.7", "203.0.113.8", "2001:db8::5", "198.51.100.1")] == [
        "FR", "DE", "NL", None]
    assert FraudConfig().ip_countries == {}


def test_ip_countries_are_bounded():
    at_limit = {str(ipaddress.ip_address("10.0.0.0") + i): "DE" for i in range(MAX_IP_COUNTRIES)}
    assert len(FraudConfig.from_json(json.dumps({"ip_countries": at_limit})).ip_countries) == MAX_IP_COUNTRIES
    with pytest.raises(FraudConfigError, match=rf"ip_countries: Dictionary should have at most {MAX_IP_COUNTRIES} items"):
        FraudConfig.from_json(json.dumps({"ip_countries": at_limit | {"192.0.2.1": "FR"}}))


@pytest.mark.parametrize("document, names", [
    ({"velocity": {"window_seconds": 0}}, "velocity.window_seconds: Input should be greater than or equal to 1 (got 0)"),
    ({"velocity": {"max_payments": "5"}}, "velocity.max_payments: Input should be a valid integer (got '5')"),
    ({"weights": {"velocity": 101}}, "weights.velocity: Input should be less than or equal to 100 (got 101)"),
    ({"weights": {"velocty": 10}}, "weights.velocty: is not a known setting"),
    ({"colour": "red"}, "colour: is not a known setting"),
    ({"thresholds": {"review": 95}}, "thresholds: block (90) must not be below review (95)"),
    ({"thresholds": {"block": 0}}, "thresholds.block: Input should be greater than or equal to 1 (got 0)"),
    ({"amount": {"multiple": 1}}, "amount.multiple: Input should be greater than 1 (got 1)"),
    ({"amount": {"first_payment_limit": -5}}, "amount.first_payment_limit: Input should be greater than or equal to 1"),
    ({"amount": {"first_payment_limit_by_currency": {"xyz": 10}}}, "amount.first_payment_limit_by_currency.xyz: unknown currency 'xyz'"),
    ({"card_testing": {"min_count": 1}}, "card_testing.min_count: Input should be greater than or equal to 2 (got 1)"),
    ({"blocklists": {"ips": ["10.0.0.300"]}}, "blocklists.ips.0: '10.0.0.300' is not an IP address or CIDR network"),
    ({"blocklists": {"customers": ["  "]}}, "blocklists.customers.0: blocklist entries must not be blank"),
    ({"ip_countries": {"10.0.0.300": "DE"}}, "ip_countries.10.0.0.300: '10.0.0.300' is not an IP address or CIDR network"),
    ({"ip_countries": {"203.0.113.0/24": "Germany"}},
     "ip_countries.203.0.113.0/24: 'Germany' is not an ISO 3166-1 alpha-2 country code"),
    ({"ip_countries": {"203.0.113.0/24": "D1"}}, "ip_countries.203.0.113.0/24: 'D1' is not an ISO 3166-1 alpha-2"),
    ({"ip_countries": {"203.0.113.0/24": 49}}, "ip_countries.203.0.113.0/24: Input should be a valid string (got 49)"),
    ({"ip_countries": ["203.0.113.0/24"]}, "ip_countries: Input should be a valid dictionary"),
    ({"ip_countries": {"203.0.113.0/24": "DE", "203.0.113.9/24": "fr"}},
     "ip_countries: '203.0.113.0/24' and '203.0.113.9/24' are the same network 203.0.113.0/24 with different countries"),
    ({"profile": {"max_recent_timestamps": 4}}, "profile.max_recent_timestamps (4) must be at least 5"),
    ({"velocity": {"max_payments": 60}}, "profile.max_recent_timestamps (50) must be at least 60"),
])
def test_a_bad_field_is_named_in_the_error(document, names):
    with pytest.raises(FraudConfigError) as raised:
        FraudConfig.from_json(json.dumps(document))
    assert str(raised.value).startswith("invalid fraud configuration: ")
    assert names in str(raised.value)


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(FraudConfigError) as raised:
        FraudConfig.from_json('{"velocity": {"window_seconds": -1}, "weights": {"velocity": -2, "nope": 1}}')
    message = str(raised.value)
    assert "velocity.window_seconds:" in message
    assert "weights.velocity:" in message
    assert "weights.nope: is not a known setting" in message


@pytest.mark.parametrize("text, message", [
    ("{not json", "fraud configuration is not valid JSON: "),
    ("[1, 2]", "fraud configuration must be a JSON object"),
    ('"thresholds"', "fraud configuration must be a JSON object"),
])
def test_a_document_that_is_not_a_json_object_is_refused(text, message):
    with pytest.raises(FraudConfigError, match=re.escape(message)):
        FraudConfig.from_json(text)


def test_the_configuration_cannot_be_changed_after_validation():
    config = FraudConfig()
    with pytest.raises(ValidationError):
        config.thresholds.review = 10


@pytest.mark.parametrize("score, decision", [(0, "allow"), (69, "allow"), (70, "review"), (89, "review"),
                                             (90, "block"), (100, "block")])
def test_decision_follows_the_thresholds(score, decision):
    assert FraudConfig().decision(score) == decision


def test_equal_thresholds_skip_review():
    config = FraudConfig.from_json('{"thresholds": {"review": 80, "block": 80}}')
    assert [config.decision(s) for s in (79, 80)] == ["allow", "block"]


def test_the_documented_example_is_valid_and_lists_every_default():
    text = DOCS.read_text()
    block = re.search(r"## Configuration.*?```json\n(.*?)```", text, re.S)
    assert block, "docs/fraud.md lost its configuration example"
    documented = json.loads(block.group(1))
    config = FraudConfig.from_json(block.group(1))
    assert config.blocklists.ips == frozenset({"203.0.113.0/24", "198.51.100.7/32"})
    assert config.amount.first_payment_limit_for("jpy") == 75000
    lookup = InMemoryIpCountries(config.ip_countries)
    assert [lookup.country_of(ip) for ip in ("192.0.2.7", "192.0.2.200", "2001:db8::1")] == ["DE", "AT", "NL"]
    # Every setting appears in the example, with its default where the example is not about overrides
    # (ip_countries is a table, not settings: the example shows entries).
    defaults = FraudConfig().model_dump(mode="json")
    assert set(documented) == set(defaults)
    for section, values in defaults.items():
        if section == "ip_countries":
            continue
        assert set(documented[section]) == set(values), f"docs/fraud.md: section {section} is incomplete"
        for name, value in values.items():
            if not name.endswith("_by_currency") and section != "blocklists":
                assert documented[section][name] == value, f"docs/fraud.md: {section}.{name} is not the default"


def test_the_document_written_back_reads_the_same():
    config = FraudConfig.from_json(json.dumps({"weights": {"velocity": 55},
                                               "blocklists": {"ips": ["198.51.100.7", "203.0.113.0/24"]},
                                               "ip_countries": {"203.0.113.9/24": "de", "198.51.100.7": "FR"}}))
    text = config.to_json()
    assert FraudConfig.from_json(text) == config
    assert json.loads(text)["blocklists"]["ips"] == ["198.51.100.7/32", "203.0.113.0/24"]
    assert json.loads(text)["ip_countries"] == {"198.51.100.7/32": "FR", "203.0.113.0/24": "DE"}
    assert FraudConfig.from_json(FraudConfig().to_json()) == FraudConfig()
