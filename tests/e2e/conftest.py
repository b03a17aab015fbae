"""The e2e suite talks only to what the stack's outputs.json names.

By default the session brings up its own stack (the same `python -m localdev up` that
`make local-up` runs) on free ports in a temporary state directory and takes it down afterwards,
so `make test` leaves nothing running and never touches a developer's `.local/`. To run the suite
against a stack that is already up (embedded or LocalStack), point PAYSTREAM_E2E_OUTPUTS at its
outputs.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REQUIRED_OUTPUTS = ("api_url", "api_key", "aws_endpoint_url", "stripe_api_base", "webhook_secret", "region")


def run_localdev(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localdev", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def stack_state_dir(tmp_path_factory) -> Path | None:
    if os.environ.get("PAYSTREAM_E2E_OUTPUTS"):
        yield None
        return
    state_dir = tmp_path_factory.mktemp("stack")
    up = run_localdev("up", "--state-dir", str(state_dir), "--ports", "auto")
    try:
        assert up.returncode == 0, f"local-up failed:\n{up.stdout}\n{up.stderr}"
        yield state_dir
    finally:
        down = run_localdev("down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stderr


@pytest.fixture(scope="session")
def outputs(stack_state_dir) -> dict:
    path = Path(os.environ["PAYSTREAM_E2E_OUTPUTS"]) if stack_state_dir is None else stack_state_dir / "outputs.json"
    data = json.loads(path.read_text())
    missing = [k for k in REQUIRED_OUTPUTS if not data.get(k)]
    assert not missing, f"outputs.json lacks {missing}"
    return data


@pytest.fixture(scope="session")
def outputs_path(stack_state_dir) -> Path:
    """The stack's outputs.json itself, for tools that read it (`paystream-ops --outputs PATH`)."""
    return Path(os.environ["PAYSTREAM_E2E_OUTPUTS"]) if stack_state_dir is None else stack_state_dir / "outputs.json"


@pytest.fixture(scope="session")
def aws_client(outputs):
    import boto3
    from botocore.config import Config

    def client(service: str):
        return boto3.client(
            service, endpoint_url=outputs["aws_endpoint_url"], region_name=outputs["region"],
            aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    return client


@pytest.fixture(scope="session")
def stripe_client(outputs):
    import stripe

    return stripe.StripeClient(
        outputs.get("stripe_api_key", "sk_test_paystream_local"), base_addresses={"api": outputs["stripe_api_base"]}
    )


@pytest.fixture(scope="session")
def subscribe_to_topic(outputs, aws_client):
    """subscribe_to_topic(topic_key) -> URL of a new SQS queue subscribed to that SNS topic (a key of
    outputs["topic_arns"], e.g. payment-notifications, ops-alerts), as a downstream consumer would; the
    queues and subscriptions are removed at the end of the session."""
    import uuid

    sqs, sns = aws_client("sqs"), aws_client("sns")
    created: list[tuple[str, str]] = []

    def subscribe(topic_key: str) -> str:
        topic_arn = outputs["topic_arns"][topic_key]
        url = sqs.create_queue(QueueName=f"e2e-{topic_key}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                           "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}],
        })})
        subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                                     ReturnSubscriptionArn=True)["SubscriptionArn"]
        created.append((url, subscription))
        return url

    yield subscribe
    from botocore.exceptions import ClientError

    for url, subscription in created:
        try:
            sns.unsubscribe(SubscriptionArn=subscription)
            sqs.delete_queue(QueueUrl=url)
        except ClientError as error:
            # A lifecycle test restarted the emulator: it came back empty, these are gone already.
            if error.response["Error"]["Code"] not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
                                                       "NotFound"):
                raise


def pytest_collection_modifyitems(config, items):
    """Tests marked `restarts_stack` run after all others: a restarted emulator comes back empty and is
    applied again, which gives the stack a new API key (and drops queues tests created), so every test
    that reads the session's outputs must run before them. The sort is stable: the rest keep their order."""
    # Request audits read the emulator's counts, which a restart loses: after every other test, before
    # the restarts. Log audits read what every test made the platform log: last of all.
    def order(item) -> int:
        for rank, marker in enumerate(("audits_requests", "restarts_stack", "audits_logs"), start=1):
            if item.get_closest_marker(marker) is not None:
                return rank
        return 0

    items.sort(key=order)


@pytest.fixture()
def payment_method(stripe_client) -> str:
    """A Visa test card that succeeds (no 3-D Secure)."""
    return stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    ).id
