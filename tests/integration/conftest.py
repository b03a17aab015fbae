"""Fixtures for integration tests of the local Lambda data plane.

`deploy_function` creates a Lambda function in the session emulator from in-memory sources;
`dataplane` runs `python -m localdev dataplane` against the emulator on free ports with a temporary
state directory. Function names are shared by the whole test session: give each test its own.
"""

from __future__ import annotations

import http.client
import io
import json
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest


def _root_conftest():
    """tests/conftest.py's helpers. Both files are modules named `conftest`, and test modules doing
    `from conftest import …` get whichever was imported last — this one — so the helpers are re-exported."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_tests_root_conftest", Path(__file__).parents[1] / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_root = _root_conftest()
ACCOUNT_ID, PROJECT_ROOT, REGION = _root.ACCOUNT_ID, _root.PROJECT_ROOT, _root.REGION
free_port, wait_for_http = _root.free_port, _root.wait_for_http

FUNCTIONS_DIR = Path(__file__).parent / "functions"
ROLE_NAME = "dataplane-test-role"


def function_sources(name: str) -> dict[str, str]:
    """The files of a test function under tests/integration/functions/<name>/, as deploy_function takes them."""
    root = FUNCTIONS_DIR / name
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.py"))}


def zip_files(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, content in sorted(files.items()):
            zf.writestr(path, content)
    return buf.getvalue()


@pytest.fixture(scope="session")
def lambda_role(emulator_endpoint) -> str:
    import boto3

    iam = boto3.client("iam", endpoint_url=emulator_endpoint, region_name=REGION)
    try:
        return iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]


@pytest.fixture()
def deploy_function(aws, lambda_role):
    """deploy_function(name, files, handler=…, env=…, timeout=…, reserved_concurrency=…, layers=…) -> function ARN."""
    lam = aws("lambda")

    def deploy(name: str, files: dict[str, str | bytes], handler: str = "handler.handler", env: dict | None = None,
               timeout: int = 3, reserved_concurrency: int | None = None, layers: list[str] | None = None) -> str:
        arn = lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=lambda_role,
            Handler=handler,
            Code={"ZipFile": zip_files(files)},
            Timeout=timeout,
            Environment={"Variables": env or {}},
            Layers=layers or [],
        )["FunctionArn"]
        if reserved_concurrency is not None:
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved_concurrency)
        return arn

    return deploy


@dataclass
class DataPlane:
    proc: subprocess.Popen
    invoke_url: str
    api_url_base: str
    state_dir: Path
    log_path: Path

    def _request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        port = int(self.invoke_url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def reload(self) -> dict:
        status, _, body = self._request("POST", "/_dataplane/reload")
        assert status == 200, body
        return json.loads(body)

    def status(self) -> dict:
        return json.loads(self._request("GET", "/_dataplane/status")[2])

    def invoke(self, name: str, payload: bytes | dict = b"{}", invocation_type: str = "RequestResponse"):
        """(status, lower-cased headers, body) of a Lambda Invoke API call."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self._request("POST", f"/2015-03-31/functions/{name}/invocations", body,
                             {"X-Amz-Invocation-Type": invocation_type})

    def function_log(self, name: str) -> str:
        path = self.state_dir / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture()
def dataplane(emulator_endpoint, tmp_path):
    state_dir = tmp_path / "state"
    api_port, invoke_port = free_port(), free_port()
    log_path = tmp_path / "dataplane.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localdev", "dataplane", "--endpoint", emulator_endpoint, "--region", REGION,
             "--api-port", str(api_port), "--invoke-port", str(invoke_port), "--state-dir", str(state_dir)],
            stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
        )
    plane = DataPlane(proc, f"http://127.0.0.1:{invoke_port}", f"http://127.0.0.1:{api_port}", state_dir, log_path)
    try:
        wait_for_http(f"{plane.invoke_url}/_dataplane/status", proc=proc)
        yield plane
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
