"""scripts/review.py (paystream_ops.review) on in-process moto with a fake Stripe: decisions recorded with the
operator and reason, one clear line and exit 1 when refused, `list` exits 3 when an authorization is about
to lapse, and outputs from `terraform output -json` are read as well as the local stack's."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws
from lambda_testing import create_transactions_table
from test_review import FakeStripe, flag, make_payment

from paystream.adapters import stripe_gateway
from paystream.adapters.dynamodb_store import DynamoDBTransactionsTable
from paystream.review import FraudReviewService, Thresholds
from paystream.store import EventStore
from paystream_ops import review

REGION = "us-east-1"


@pytest.fixture()
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        create_transactions_table(ddb, "transactions", status_index=True)
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="stripe-key", SecretString=json.dumps({"api_key": "sk_test_from_secrets_manager"}))
        stripe, keys = FakeStripe(), []
        monkeypatch.setattr(stripe_gateway, "StripeGateway", lambda api_key, **kw: keys.append(api_key) or stripe)
        # The shape of `terraform output -json` (a deployed environment: real AWS, real Stripe).
        outputs = tmp_path / "outputs.json"
        outputs.write_text(json.dumps({
            "region": {"sensitive": False, "type": "string", "value": REGION},
            "table_names": {"sensitive": False, "type": ["object", {}], "value": {"transactions": "transactions"}},
            "secret_ids": {"sensitive": False, "type": ["object", {}], "value": {"stripe_api_key": "stripe-key"}},
        }))
        store = EventStore(DynamoDBTransactionsTable(ddb, "transactions"))
        yield {"store": store, "stripe": stripe, "keys": keys, "outputs": str(outputs),
               "service": FraudReviewService(store, stripe, Thresholds())}


def held(env, transaction_id: str) -> None:
    make_payment(env["store"], env["stripe"], transaction_id, risk_score=80)
    env["service"].flagged(flag(transaction_id, score=80))


def test_approve_records_the_operator_and_reason_and_captures(env, capsys):
    held(env, "tx-1")
    code = review.main(["--outputs", env["outputs"], "approve", "tx-1", "--operator", "ana", "--reason", "called the customer"])
    assert code == 0
    assert capsys.readouterr().out.strip() == "tx-1: approved by ana, now succeeded"
    reviewed = next(e for e in env["store"].load("tx-1")[1] if e.event_type == "payment.reviewed")
    assert reviewed.detail == {"decision": "approved", "operator": "ana", "reason": "called the customer"}
    assert env["keys"] == ["sk_test_from_secrets_manager"]  # the functions' key, from Secrets Manager


def test_a_refused_decision_is_one_line_and_exit_1(env, capsys):
    held(env, "tx-2")
    assert review.main(["--outputs", env["outputs"], "decline", "tx-2", "--operator", "bo", "--reason", "stolen"]) == 0
    code = review.main(["--outputs", env["outputs"], "approve", "tx-2", "--operator", "ana", "--reason", "ok"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == "review.py approve: payment tx-2 was already declined in review"
    assert env["stripe"].intents["pi_tx-2"]["status"] == "canceled"
    assert review.main(["--outputs", "/nonexistent/outputs.json", "list"]) == 1


def test_list_exits_3_when_an_authorization_lapses_soon(env, capsys):
    held(env, "tx-old")
    env["stripe"].intents["pi_tx-old"]["created"] = int(time.time()) - 6 * 86400 - 3600  # 23 h left
    held(env, "tx-new")
    env["stripe"].intents["pi_tx-new"]["created"] = int(time.time())
    assert review.main(["--outputs", env["outputs"], "list", "--expiring-within", "12"]) == 0
    assert review.main(["--outputs", env["outputs"], "list"]) == 3  # default: within 24 h
    captured = capsys.readouterr()
    assert "tx-old" in captured.out and "tx-new" in captured.out
    assert captured.out.index("tx-old") < captured.out.index("tx-new")  # soonest lapse first
    assert "1 authorization(s) lapse within 24 h" in captured.err
