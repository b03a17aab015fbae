"""`make local-up BACKEND=localstack`: the same Terraform environment, applied to LocalStack in Docker.

LocalStack runs the functions itself, so there is no data plane here; every other step (packaging,
the Terraform apply, secrets, the Stripe webhook registration, outputs.json) is the embedded path's.
The local environment's provider already takes its endpoint as a variable, so plain `terraform`
is used where `tflocal` would otherwise generate endpoint overrides.
"""

from __future__ import annotations

import shutil
import subprocess
import time

from localdev.stack import (
    PROJECT_ROOT,
    Paths,
    StackError,
    StackState,
    _http_json,
    _put_secrets,
    _terraform_apply,
    _wait_until,
    _webhook_secret,
    _write_outputs,
)

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.localstack.yml"
AWS_ENDPOINT = "http://localhost:4566"
STRIPE_FROM_HOST = "http://localhost:8420"
# Inside the compose network (where LocalStack runs the functions) the services go by their names.
STRIPE_FROM_FUNCTIONS = "http://localstripe:8420"
API_FROM_STRIPE = "http://localstack:4566"


def _compose() -> list[str]:
    if shutil.which("docker") is None:
        raise StackError("BACKEND=localstack needs Docker: install Docker (or use the default embedded backend)")
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        raise StackError("BACKEND=localstack needs a running Docker engine: start it (or use the default embedded backend)")
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose", "-f", str(COMPOSE_FILE)]
    if shutil.which("docker-compose"):
        return ["docker-compose", "-f", str(COMPOSE_FILE)]
    raise StackError("BACKEND=localstack needs Docker Compose (the `docker compose` plugin or docker-compose)")


def up(paths: Paths, quiet: bool = False) -> dict:
    compose = _compose()
    previous = StackState.load(paths.stack)
    if previous and previous.backend != "localstack":
        raise StackError(f"an {previous.backend} stack is recorded in {paths.stack}: run make local-down first")
    paths.logs.mkdir(parents=True, exist_ok=True)
    say = (lambda *_: None) if quiet else (lambda msg: print(f"local-up: {msg}", flush=True))
    say("starting LocalStack 4.14.0 and localstripe (docker compose)")
    subprocess.run([*compose, "up", "-d", "--wait"], check=True, cwd=PROJECT_ROOT)
    _wait_until(lambda: _http_json(f"{AWS_ENDPOINT}/_localstack/health"), "LocalStack", 120)
    state = StackState(backend="localstack", ports={"aws": 4566, "stripe": 8420}, started_at=time.time())
    state.save(paths.stack)

    from localdev.package import build

    build(paths.build)
    tf_outputs = _terraform_apply(paths, AWS_ENDPOINT, STRIPE_FROM_FUNCTIONS)
    webhook_secret = _webhook_secret(paths)
    _put_secrets(AWS_ENDPOINT, tf_outputs, webhook_secret)

    from localdev.stripe_server import register_webhook

    api_path = f"/_aws/execute-api/{tf_outputs['api_id']}/{tf_outputs['api_stage']}"
    register_webhook(STRIPE_FROM_HOST, "paystream", f"{API_FROM_STRIPE}{api_path}/webhooks/stripe", webhook_secret)
    return _write_outputs(paths, state, tf_outputs, AWS_ENDPOINT, STRIPE_FROM_HOST, f"{AWS_ENDPOINT}{api_path}", webhook_secret)


def down(paths: Paths) -> None:
    subprocess.run([*_compose(), "down", "--volumes"], check=False, cwd=PROJECT_ROOT)
