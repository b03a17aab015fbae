"""Shared fixtures.

Integration tests start their own embedded emulator on a free port (never 4566, so a developer's
running stack is untouched) and stop it when the session ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCOUNT_ID = "000000000000"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> bytes:
    """Poll `url` until it answers 200; fail fast if `proc` exits first."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read()
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            last_error = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last_error}")


@pytest.fixture(scope="session", autouse=True)
def _aws_test_credentials():
    """Fake credentials and region for every boto3 client the tests create; never real AWS."""
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION
    )
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def emulator_endpoint(tmp_path_factory) -> str:
    """A fresh embedded emulator (patched moto server) for the test session: its endpoint URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localdev", "emulator", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        health = json.loads(wait_for_http(f"{endpoint}/_localdev/health", proc=proc))
        assert health["status"] == "ok"
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def aws(emulator_endpoint):
    """boto3 client factory bound to the session emulator, with retries off (a retried 500 can duplicate deliveries)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60)

    def client(service: str):
        return boto3.client(service, endpoint_url=emulator_endpoint, region_name=REGION, config=config)

    return client
