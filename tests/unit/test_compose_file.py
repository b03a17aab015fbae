"""docker-compose.localstack.yml cannot run here (no Docker engine), so check it statically:
against the vendored Compose specification schema, plus the pins the LocalStack backend relies on."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.localstack.yml"
SCHEMA_FILE = ROOT / "scripts" / "localdev" / "schemas" / "compose-spec.json"

PLATFORM_SERVICES = {
    "lambda", "apigateway", "dynamodb", "dynamodbstreams", "kinesis", "events", "sqs", "sns",
    "secretsmanager", "kms", "iam", "sts", "logs", "cloudwatch", "ssm", "wafv2",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _published(service: dict) -> set[tuple[str, str]]:
    """(host port, container port) pairs from short-syntax port entries like "127.0.0.1:4566:4566"."""
    pairs = set()
    for entry in service["ports"]:
        *_, host, container = str(entry).split(":")
        pairs.add((host, container))
    return pairs


def test_file_is_valid_compose_spec(compose, validator):
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_rejects_an_invalid_file(validator):
    # Guards against a vendored schema that accepts anything (the test above would then be empty).
    broken = {"services": {"localstack": {"image": "localstack/localstack:4.14.0", "ports": {"bad": 1}, "healthcheck": {"retries": "many"}}}}
    assert list(validator.iter_errors(broken))


def test_localstack_image_is_pinned_to_the_last_tokenless_release(compose):
    assert compose["services"]["localstack"]["image"] == "localstack/localstack:4.14.0"


def test_localstack_publishes_4566_and_has_a_health_check(compose):
    service = compose["services"]["localstack"]
    assert ("4566", "4566") in _published(service)
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD" and "curl" in test
    assert "http://localhost:4566/_localstack/health" in test


def test_localstack_environment(compose):
    env = compose["services"]["localstack"]["environment"]
    assert set(env["SERVICES"].split(",")) == PLATFORM_SERVICES
    assert str(env["PERSISTENCE"]) == "0"
    assert str(env["DEBUG"]) == "0"
    assert int(env["LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT"]) > 0
    # Function containers must land on the network localstripe is on, under its fixed name.
    network_key = compose["services"]["localstack"]["networks"][0]
    assert network_key in compose["services"]["localstripe"]["networks"]
    assert compose["networks"][network_key]["name"] == env["LAMBDA_DOCKER_NETWORK"]


def test_localstack_can_start_function_containers(compose):
    assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"]["localstack"]["volumes"]


def test_localstripe_service(compose):
    service = compose["services"]["localstripe"]
    command = " ".join(service["command"])
    assert "localstripe==1.15.10" in command
    assert "localstripe --from-scratch" in command
    assert ("8420", "8420") in _published(service)
    assert "http://localhost:8420/" in " ".join(service["healthcheck"]["test"])
