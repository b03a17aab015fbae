"""`localdev stripe-listen` with a fake `stripe` executable on PATH and Secrets Manager in moto (in process)."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from localdev import stripe_listen

REGION = "eu-west-3"  # not the default region: proves the client uses outputs.json's region
SECRET_ID = "paystream-local/stripe-webhook-secrets"
CLI_SECRET = "whsec_from_stripe_cli"
FAKE_STRIPE = """#!{python}
import json, os, sys
args = sys.argv[1:]
if args == ["listen", "--print-secret"]:
    if os.environ.get("FAKE_STRIPE_LOGGED_OUT"):
        print("You have not configured API keys yet. Running `stripe login`...", file=sys.stderr)
        sys.exit(1)
    print("{secret}")
    sys.exit(0)
with open(os.environ["FAKE_STRIPE_CALLS"], "a") as f:
    f.write(json.dumps(args) + "\\n")
"""


@pytest.fixture()
def fake_stripe(tmp_path, monkeypatch) -> Path:
    """A `stripe` on PATH (and nothing else there, so a real CLI on this machine is never used)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "stripe"
    script.write_text(FAKE_STRIPE.format(python=sys.executable, secret=CLI_SECRET))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "stripe-calls.jsonl"
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_STRIPE_CALLS", str(calls))
    return calls


@pytest.fixture()
def state_dir(tmp_path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    outputs = {
        "api_url": "http://127.0.0.1:4567/v1/",
        # moto's in-process mock intercepts AWS-shaped hostnames only; the local stack would name
        # its emulator here (http://127.0.0.1:4566).
        "aws_endpoint_url": f"https://secretsmanager.{REGION}.amazonaws.com",
        "region": REGION,
        "webhook_secret_id": SECRET_ID,
    }
    (state / "outputs.json").write_text(json.dumps(outputs))
    return state


@pytest.fixture()
def secretsmanager():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def _run_cli(path: str, args: list[str]) -> None:
    """Stands in for os.execv: runs the CLI and returns."""
    subprocess.run(args, check=True, executable=path)


def _signing_secrets(client) -> list[str]:
    return json.loads(client.get_secret_value(SecretId=SECRET_ID)["SecretString"])["signing_secrets"]


def test_missing_stripe_cli_is_one_clear_line(tmp_path, monkeypatch, state_dir, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory
    assert stripe_listen.main(["--state-dir", str(state_dir)]) == 1
    assert capsys.readouterr().err == (
        "stripe-listen: stripe CLI not found: install it (https://docs.stripe.com/stripe-cli) and run "
        "`stripe login`, then re-run make stripe-listen\n"
    )


def test_stack_not_running(tmp_path, fake_stripe, capsys):
    assert stripe_listen.main(["--state-dir", str(tmp_path / "nothing-here")]) == 1
    assert capsys.readouterr().err == "stripe-listen: the local stack is not running: run make local-up first\n"


def test_adds_cli_secret_keeping_existing_and_forwards_to_the_api(fake_stripe, state_dir, secretsmanager, capsys):
    secretsmanager.create_secret(Name=SECRET_ID, SecretString=json.dumps({"signing_secrets": ["whsec_localstripe"]}))
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 0

    assert _signing_secrets(secretsmanager) == ["whsec_localstripe", CLI_SECRET]
    calls = [json.loads(line) for line in fake_stripe.read_text().splitlines()]
    assert calls == [["listen", "--forward-to", "http://127.0.0.1:4567/v1/webhooks/stripe"]]
    out = capsys.readouterr().out
    assert "needs no restart" in out and "re-reads" in out


def test_running_again_does_not_duplicate_the_secret(fake_stripe, state_dir, secretsmanager):
    secretsmanager.create_secret(Name=SECRET_ID, SecretString=json.dumps({"signing_secrets": ["whsec_localstripe"]}))
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 0
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 0
    assert _signing_secrets(secretsmanager) == ["whsec_localstripe", CLI_SECRET]
    versions = secretsmanager.list_secret_version_ids(SecretId=SECRET_ID)["Versions"]
    assert len(versions) == 2, "an unchanged list must not be written again"


def test_secret_without_a_value_gets_one(fake_stripe, state_dir, secretsmanager):
    secretsmanager.create_secret(Name=SECRET_ID)
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 0
    assert _signing_secrets(secretsmanager) == [CLI_SECRET]


def test_missing_secret_is_a_clear_error(fake_stripe, state_dir, secretsmanager, capsys):
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 1
    assert capsys.readouterr().err == f"stripe-listen: secret {SECRET_ID!r} does not exist: re-run make local-up\n"
    assert not fake_stripe.exists(), "must not start forwarding"


def test_logged_out_cli_is_a_clear_error(fake_stripe, state_dir, secretsmanager, monkeypatch, capsys):
    secretsmanager.create_secret(Name=SECRET_ID, SecretString=json.dumps({"signing_secrets": ["whsec_localstripe"]}))
    monkeypatch.setenv("FAKE_STRIPE_LOGGED_OUT", "1")
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `stripe login` and retry" in err
    assert _signing_secrets(secretsmanager) == ["whsec_localstripe"]
    assert not fake_stripe.exists()


def test_unreachable_emulator_is_a_clear_error(fake_stripe, state_dir, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    outputs = json.loads((state_dir / "outputs.json").read_text())
    outputs["aws_endpoint_url"] = f"http://127.0.0.1:{closed_port}"
    (state_dir / "outputs.json").write_text(json.dumps(outputs))
    assert stripe_listen.main(["--state-dir", str(state_dir)], exec_fn=_run_cli) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is the local stack up? check with make local-status" in err
    assert not fake_stripe.exists()
