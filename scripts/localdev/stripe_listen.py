"""`python -m localdev stripe-listen [--state-dir .local]` — real Stripe test-mode webhooks into the local stack.

Adds the Stripe CLI's signing secret to the webhook secret the local stack's `stripe_webhook`
function reads (keeping the ones already there, so localstripe's webhooks keep verifying: rotation
without downtime), then becomes `stripe listen --forward-to <api_url>/webhooks/stripe`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CLI_MISSING = (
    "stripe CLI not found: install it (https://docs.stripe.com/stripe-cli) and run `stripe login`, "
    "then re-run make stripe-listen"
)
STACK_NOT_RUNNING = "the local stack is not running: run make local-up first"
REQUIRED_OUTPUTS = ("api_url", "aws_endpoint_url", "region", "webhook_secret_id")


class ListenError(Exception):
    """A precondition failed; the message says what to do."""


def cli_signing_secret(stripe_cli: str) -> str:
    """The secret `stripe listen` signs forwarded events with (stable per Stripe account and device)."""
    try:
        result = subprocess.run([stripe_cli, "listen", "--print-secret"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ListenError("`stripe listen --print-secret` did not answer within 60 s: check the network and `stripe login`") from None
    secret = result.stdout.strip()
    if result.returncode != 0 or not secret.startswith("whsec_"):
        detail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        raise ListenError(f"`stripe listen --print-secret` failed ({detail}): run `stripe login` and retry")
    return secret


def add_signing_secret(secretsmanager, secret_id: str, new_secret: str) -> bool:
    """Append new_secret to the secret's {"signing_secrets": [...]} list. False if it was already there."""
    try:
        value = json.loads(secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])
    except secretsmanager.exceptions.ResourceNotFoundException:
        # A secret Terraform created without a value yet answers like a missing one: tell them apart.
        try:
            secretsmanager.describe_secret(SecretId=secret_id)
        except secretsmanager.exceptions.ResourceNotFoundException:
            raise ListenError(f"secret {secret_id!r} does not exist: re-run make local-up") from None
        value = {}
    if not isinstance(value, dict):
        value = {}
    secrets = [s for s in value.get("signing_secrets", []) if isinstance(s, str) and s]
    if new_secret in secrets:
        return False
    value["signing_secrets"] = [*secrets, new_secret]
    secretsmanager.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))
    return True


def _read_outputs(state_dir: Path) -> dict:
    path = state_dir / "outputs.json"
    if not path.is_file():
        raise ListenError(STACK_NOT_RUNNING)
    outputs = json.loads(path.read_text())
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise ListenError(f"{path} lacks {', '.join(missing)}: re-run make local-up")
    return outputs


def _secretsmanager(outputs: dict):
    import boto3
    from botocore.config import Config

    # The local stack's AWS emulator takes any credentials; never send a developer's real ones.
    return boto3.client(
        "secretsmanager", endpoint_url=outputs["aws_endpoint_url"], region_name=outputs["region"],
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


def main(argv: list[str] | None = None, exec_fn=os.execv) -> int:
    """exec_fn(path, args) replaces this process with the CLI; tests pass one that returns."""
    parser = argparse.ArgumentParser(prog="python -m localdev stripe-listen", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=PROJECT_ROOT / ".local", help="the local stack's state directory")
    args = parser.parse_args(argv)

    from botocore.exceptions import BotoCoreError, ClientError

    stripe_cli = shutil.which("stripe")
    try:
        if stripe_cli is None:
            raise ListenError(CLI_MISSING)
        outputs = _read_outputs(args.state_dir)
        secret = cli_signing_secret(stripe_cli)
        try:
            added = add_signing_secret(_secretsmanager(outputs), outputs["webhook_secret_id"], secret)
        except (BotoCoreError, ClientError) as exc:
            raise ListenError(
                f"cannot update secret {outputs['webhook_secret_id']!r} at {outputs['aws_endpoint_url']} ({exc}): "
                "is the local stack up? check with make local-status"
            ) from None
    except ListenError as exc:
        print(f"stripe-listen: {exc}", file=sys.stderr)
        return 1

    forward_to = f"{outputs['api_url'].rstrip('/')}/webhooks/stripe"
    state = "added to" if added else "already in"
    print(f"stripe-listen: the Stripe CLI's signing secret is {state} {outputs['webhook_secret_id']} "
          "(localstripe's secret stays valid too).")
    print("stripe-listen: the running stripe_webhook function needs no restart: it caches the secret, and re-reads "
          "it once when a signature does not verify with the cached copy.")
    print(f"stripe-listen: forwarding Stripe test-mode events to {forward_to} (Ctrl-C stops)", flush=True)
    exec_fn(stripe_cli, [stripe_cli, "listen", "--forward-to", forward_to])
    return 0
