"""`make local-up / local-down / local-status / logs / demo`: the local platform's lifecycle.

The stack is: the embedded emulator, localstripe, `terraform/environments/local` applied to the
emulator, and the data plane that runs what Terraform created. Every process is started detached,
recorded by pid in `<state>/stack.json`, and stopped by pid. `up` is idempotent: components that are
alive and healthy are kept, code changes are packaged and re-applied, and the data plane reloads.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = PROJECT_ROOT / ".local"
LOCAL_ENV_DIR = PROJECT_ROOT / "terraform" / "environments" / "local"
REGION = "us-east-1"
STRIPE_TEST_KEY = "sk_test_paystream_local"
# Default ports; each can be overridden (LOCAL_AWS_PORT, …) or chosen automatically with --ports auto.
DEFAULT_PORTS = {"aws": 4566, "stripe": 8420, "api": 4567, "invoke": 4568}
PORT_ENV = {"aws": "LOCAL_AWS_PORT", "stripe": "LOCAL_STRIPE_PORT", "api": "LOCAL_API_PORT", "invoke": "LOCAL_INVOKE_PORT"}


REAL_STRIPE_API_BASE = "https://api.stripe.com"
STRIPE_KEY_ENV = "STRIPE_API_KEY"


@dataclass(frozen=True)
class StripeMode:
    """Which Stripe the functions call: localstripe (default) or a real Stripe account in test mode."""

    api_key: str
    api_base: str  # as clients reach it
    functions_api_base: str  # what the functions get as STRIPE_API_BASE ("" = real Stripe)

    @property
    def real(self) -> bool:
        return self.functions_api_base == ""


def stripe_mode(localstripe_base: str, environ=os.environ) -> StripeMode:
    """STRIPE_API_KEY set → real Stripe test mode (live keys refused); unset → localstripe."""
    key = environ.get(STRIPE_KEY_ENV, "").strip()
    if not key:
        return StripeMode(STRIPE_TEST_KEY, localstripe_base, localstripe_base)
    if key.startswith(("sk_live_", "rk_live_")):
        raise StackError(f"{STRIPE_KEY_ENV} is a live-mode key: the local stack only takes test-mode keys (sk_test_…)")
    if not key.startswith(("sk_test_", "rk_test_")):
        raise StackError(f"{STRIPE_KEY_ENV} does not look like a Stripe test-mode secret key (sk_test_… or rk_test_…)")
    return StripeMode(key, REAL_STRIPE_API_BASE, "")


class StackError(Exception):
    """A failure with one clear line telling the user what to do."""


@dataclass
class StackState:
    backend: str = "embedded"
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    emulator_instance_id: str | None = None
    started_at: float = 0.0

    @classmethod
    def load(cls, path: Path) -> "StackState | None":
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)


class Paths:
    def __init__(self, state_dir: Path):
        self.state = state_dir.resolve()
        self.logs = self.state / "logs"
        self.stack = self.state / "stack.json"
        self.outputs = self.state / "outputs.json"
        self.webhook_secret = self.state / "webhook_secret"
        # localstripe's state while it is stopped (localdev.stripe_faults): written on stop, read back on start.
        self.stripe_state = self.state / "stripe-state.pickle"
        self.tf = self.state / "tf"
        self.build = PROJECT_ROOT / "build"


# ---------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _is_ours(pid: int) -> bool:
    """Guard against pid reuse: only processes running `localdev` are ours to stop."""
    try:
        return b"localdev" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # survives `make local-up` returning; stopped by pid group
        )
    return proc.pid


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    if not _pid_alive(pid) or not _is_ours(pid):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            try:  # reap if it is our child (tests start the stack in-process)
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_json(url: str, method: str = "GET", body: dict | None = None, timeout: float = 5.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _wait_until(check, what: str, timeout: float, pid: int | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if pid is not None and not _pid_alive(pid):
            raise StackError(f"{what} exited during start-up: see {log}" + _tail(log))
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.1)
    raise StackError(f"{what} did not become ready within {timeout:.0f}s ({last}): see {log}" + _tail(log))


def _tail(log: Path | None, lines: int = 5) -> str:
    if not log or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return "".join(f"\n    {line}" for line in text)


# ---------------------------------------------------------------- components


def _emulator_health(ports) -> dict:
    return _http_json(f"http://127.0.0.1:{ports['aws']}/_localdev/health", timeout=2)


def _stripe_health(ports) -> bool:
    from localdev.stripe_server import is_healthy

    return is_healthy(f"http://127.0.0.1:{ports['stripe']}")


def _dataplane_status(ports) -> dict:
    return _http_json(f"http://127.0.0.1:{ports['invoke']}/_dataplane/status", timeout=5)


HEALTH = {"emulator": _emulator_health, "stripe": _stripe_health, "dataplane": _dataplane_status}


def _component_ok(state: StackState, name: str) -> bool:
    pid = state.pids.get(name)
    if not pid or not _pid_alive(pid) or not _is_ours(pid):
        return False
    try:
        return bool(HEALTH[name](state.ports))
    except Exception:  # noqa: BLE001
        return False


def _choose_ports(mode: str, previous: StackState | None) -> dict[str, int]:
    if previous and previous.ports:
        return previous.ports
    if mode == "auto":
        return {name: _free_port() for name in DEFAULT_PORTS}
    return {name: int(os.environ.get(PORT_ENV[name], default)) for name, default in DEFAULT_PORTS.items()}


PORT_RELEASE_WAIT_SECONDS = 10.0


def _require_free(name: str, port: int) -> None:
    # A component of ours that just died (killed, crashed) can hold its port for a moment while the
    # kernel tears a large process down; only a port still taken after that is someone else's.
    deadline = time.monotonic() + PORT_RELEASE_WAIT_SECONDS
    while not _port_free(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _port_free(port):
        raise StackError(
            f"port {port} ({name}) is in use by another program: stop it, or choose another port with "
            f"{PORT_ENV[name]}=<port> (or --ports auto)"
        )


# ---------------------------------------------------------------- up


def up(state_dir: Path, backend: str = "embedded", ports_mode: str = "default", quiet: bool = False) -> dict:
    if backend == "localstack":
        from localdev.localstack import up as localstack_up

        return localstack_up(Paths(state_dir), quiet=quiet)
    if backend != "embedded":
        raise StackError(f"unknown backend {backend!r}: use embedded or localstack")
    paths = Paths(state_dir)
    paths.logs.mkdir(parents=True, exist_ok=True)
    if shutil.which("terraform") is None:
        raise StackError("terraform not found on PATH: install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)")
    say = (lambda *_: None) if quiet else (lambda msg: print(f"local-up: {msg}", flush=True))

    previous = StackState.load(paths.stack)
    if previous and previous.backend != "embedded":
        raise StackError(f"a {previous.backend} stack is recorded in {paths.stack}: run make local-down first")
    state = StackState(backend="embedded", ports=_choose_ports(ports_mode, previous), pids=dict(previous.pids) if previous else {})
    if previous:
        state.emulator_instance_id = previous.emulator_instance_id
        # Components recorded but dead: a crashed earlier run. Stop what is left of it and start afresh.
        stale = [n for n in ("emulator", "stripe", "dataplane") if n in state.pids and not _component_ok(state, n)]
        if stale:
            say(f"recovering from a stale earlier run ({', '.join(stale)} not running)")
            for name in stale:
                _stop_pid(state.pids.pop(name))
    state.started_at = state.started_at or time.time()

    # 1. AWS emulator
    if not _component_ok(state, "emulator"):
        say(f"starting the AWS emulator on 127.0.0.1:{state.ports['aws']}")
        _start_component(state, paths, "emulator", ["aws"], ["--host", "127.0.0.1", "--port", str(state.ports["aws"])], 30)
    instance_id = _emulator_health(state.ports)["instance_id"]
    fresh_emulator = instance_id != state.emulator_instance_id
    if fresh_emulator:
        # The emulator keeps everything in memory: Terraform state from an earlier emulator is stale.
        _remove_terraform_state(paths)
        state.emulator_instance_id = instance_id
    state.save(paths.stack)

    # 2. Stripe (localstripe). Restarted under a running platform (it was stopped or crashed), it comes back
    # with the state it saved when it stopped, as Stripe does after an outage; a new platform gets a new one.
    if not _component_ok(state, "stripe"):
        say(f"starting localstripe on 127.0.0.1:{state.ports['stripe']}")
        start_stripe_component(state, paths, restore=not fresh_emulator)

    # 3. Package and apply
    aws_endpoint = f"http://127.0.0.1:{state.ports['aws']}"
    localstripe_base = f"http://127.0.0.1:{state.ports['stripe']}"
    stripe = stripe_mode(localstripe_base)
    if stripe.real:
        say(f"{STRIPE_KEY_ENV} is set: the functions call Stripe test mode at {REAL_STRIPE_API_BASE}")
    say("packaging functions and layers")
    from localdev.package import build

    build(paths.build)
    say("terraform apply terraform/environments/local (about a minute on a fresh emulator)")
    tf_outputs = _terraform_apply(paths, aws_endpoint, stripe.functions_api_base)

    # 4. Secrets the functions read (values never pass through Terraform)
    webhook_secret = _webhook_secret(paths)
    _put_secrets(aws_endpoint, tf_outputs, webhook_secret, stripe.api_key)

    # 5. Data plane: start it, or make the running one pick up what was just applied
    if _component_ok(state, "dataplane"):
        say("reloading the data plane")
        _http_json(f"http://127.0.0.1:{state.ports['invoke']}/_dataplane/reload", method="POST", body={}, timeout=120)
    else:
        say(f"starting the Lambda data plane (REST API on 127.0.0.1:{state.ports['api']})")
        _start_component(
            state, paths, "dataplane", ["api", "invoke"],
            ["--endpoint", aws_endpoint, "--region", REGION, "--api-port", str(state.ports["api"]),
             "--invoke-port", str(state.ports["invoke"]), "--state-dir", str(paths.state)],
            120,
        )

    # 6. Stripe sends its webhooks to the local API, signed with the secret the function reads
    api_url = f"http://127.0.0.1:{state.ports['api']}/{tf_outputs['api_stage']}"
    from localdev.stripe_server import register_webhook

    register_webhook(localstripe_base, "paystream", f"{api_url}/webhooks/stripe", webhook_secret)

    outputs = _write_outputs(paths, state, tf_outputs, aws_endpoint, stripe, api_url, webhook_secret)
    state.save(paths.stack)
    if not quiet:
        print_summary(outputs, _dataplane_status(state.ports))
    return outputs


def _start_component(state: StackState, paths: Paths, name: str, ports: list[str], args: list[str], timeout: float) -> None:
    """Start `python -m localdev <name> …` detached, record its pid, and wait until its health check passes."""
    for port_name in ports:
        _require_free(port_name, state.ports[port_name])
    log = paths.logs / f"{name}.log"
    pid = _spawn([sys.executable, "-m", "localdev", name, *args], log)
    state.pids[name] = pid
    state.save(paths.stack)  # recorded before waiting, so `down` can stop it even if start-up fails
    _wait_until(lambda: HEALTH[name](state.ports), name, timeout, pid, log)


def start_stripe_component(state: StackState, paths: Paths, restore: bool, timeout: float = 30) -> None:
    """Start localstripe on the stack's port, saving its state to paths.stripe_state when it is stopped;
    `restore`: start from the state saved there by the last stop (if any)."""
    if not restore:
        paths.stripe_state.unlink(missing_ok=True)  # an earlier platform's Stripe: never to be restored later
    args = ["--host", "127.0.0.1", "--port", str(state.ports["stripe"]), "--state-file", str(paths.stripe_state)]
    _start_component(state, paths, "stripe", ["stripe"], args + (["--restore"] if restore else []), timeout)


CAPTURE_MODE_ENV = "CAPTURE_MODE"


def _terraform_apply(paths: Paths, aws_endpoint: str, stripe_base: str) -> dict:
    """Apply the local environment; `stripe_base` is the Stripe API as the functions reach it."""
    from localdev.terraform import Terraform

    tf = Terraform(
        env_dir=LOCAL_ENV_DIR,
        state_dir=paths.state,
        variables={
            "aws_endpoint_url": aws_endpoint,
            "region": REGION,
            "artifacts_dir": str(paths.build),
            "stripe_api_base": stripe_base,
            # Risk-gated capture is chosen per `up` (docs/fraud.md); Terraform's validation names a bad value.
            "capture_mode": os.environ.get(CAPTURE_MODE_ENV) or "automatic",
        },
        log_file=paths.logs / "terraform.log",
    )
    tf.init()
    tf.apply()
    return tf.output()


def _remove_terraform_state(paths: Paths) -> None:
    for f in paths.tf.glob("terraform.tfstate*"):
        f.unlink()


def _webhook_secret(paths: Paths) -> str:
    """One signing secret per state dir, kept across `up`s so a registered endpoint stays valid."""
    if paths.webhook_secret.exists():
        return paths.webhook_secret.read_text().strip()
    value = "whsec_" + secrets.token_hex(24)
    paths.webhook_secret.write_text(value)
    paths.webhook_secret.chmod(0o600)
    return value


def _aws_client(service: str, endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )


def _put_secrets(endpoint: str, tf_outputs: dict, webhook_secret: str, stripe_api_key: str) -> None:
    sm = _aws_client("secretsmanager", endpoint)
    secret_ids = tf_outputs["secret_ids"]
    sm.put_secret_value(SecretId=secret_ids["stripe_api_key"], SecretString=json.dumps({"api_key": stripe_api_key}))
    # Keep secrets added by `make stripe-listen` (rotation: several secrets are valid at once).
    try:
        current = json.loads(sm.get_secret_value(SecretId=secret_ids["webhook_secrets"])["SecretString"])
        existing = [s for s in current.get("signing_secrets", []) if s != webhook_secret]
    except Exception:  # noqa: BLE001 - no value yet
        existing = []
    sm.put_secret_value(
        SecretId=secret_ids["webhook_secrets"], SecretString=json.dumps({"signing_secrets": [webhook_secret, *existing]})
    )


def _write_outputs(paths, state, tf_outputs, aws_endpoint, stripe: StripeMode, api_url, webhook_secret) -> dict:
    apigw = _aws_client("apigateway", aws_endpoint)
    api_key = apigw.get_api_key(apiKey=tf_outputs["api_key_id"], includeValue=True)["value"]
    outputs = {
        "backend": state.backend,
        "api_url": api_url,
        "api_key": api_key,
        "aws_endpoint_url": aws_endpoint,
        "stripe_api_base": stripe.api_base,
        "stripe_mode": "test-mode" if stripe.real else "localstripe",
        # A real Stripe key stays in Secrets Manager and the developer's environment, never in this file.
        **({} if stripe.real else {"stripe_api_key": stripe.api_key}),
        "webhook_secret": webhook_secret,
        "webhook_secret_id": tf_outputs["secret_ids"]["webhook_secrets"],
        "region": REGION,
        "account_id": "000000000000",
        "dataplane_url": f"http://127.0.0.1:{state.ports['invoke']}" if "invoke" in state.ports else None,
        "logs_dir": str(paths.logs),
        **{k: tf_outputs[k] for k in (
            "api_id", "api_stage", "function_names", "queue_urls", "dlq_urls", "table_names", "bus_name",
            "archive_name", "stream_name", "topic_arns", "secret_ids", "capture_mode",
        ) if k in tf_outputs},
    }
    tmp = paths.outputs.with_suffix(".tmp")
    tmp.write_text(json.dumps(outputs, indent=2))
    tmp.chmod(0o600)  # holds the local API key and webhook secret
    tmp.replace(paths.outputs)
    return outputs


def _workers(fn: dict) -> str:
    alive = sum(1 for w in fn.get("workers", []) if w.get("alive"))
    return f"{alive} ({fn.get('concurrency_cap', '')})"


def print_summary(outputs: dict, dataplane: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    endpoints = Table(title="paystream local stack", show_header=True)
    endpoints.add_column("endpoint")
    endpoints.add_column("value")
    for key in ("api_url", "aws_endpoint_url", "stripe_api_base", "dataplane_url", "region", "logs_dir"):
        endpoints.add_row(key, str(outputs.get(key, "")))
    endpoints.add_row("api_key", "(in .local/outputs.json)")
    console.print(endpoints)

    functions = Table(title="functions", show_header=True)
    for col in ("function", "code sha256", "workers (cap)", "invocations"):
        functions.add_column(col)
    for fn in (dataplane or {}).get("functions", []):
        functions.add_row(fn["name"], str(fn.get("code_sha256", ""))[:12], _workers(fn), str(fn.get("invocations", 0)))
    console.print(functions)

    queues = Table(title="queues", show_header=True)
    queues.add_column("queue")
    queues.add_column("url", overflow="fold")
    for name, url in {**outputs.get("queue_urls", {}), **{f"{k} (DLQ)": v for k, v in outputs.get("dlq_urls", {}).items()}}.items():
        queues.add_row(name, url)
    console.print(queues)


# ---------------------------------------------------------------- down / status / logs


def down(state_dir: Path, quiet: bool = False) -> int:
    paths = Paths(state_dir)
    state = StackState.load(paths.stack)
    if state is None:
        if not quiet:
            print("local-down: nothing is running")
        return 0
    if state.backend == "localstack":
        from localdev.localstack import down as localstack_down

        localstack_down(paths)
    for name in ("dataplane", "stripe", "emulator"):  # consumers first
        pid = state.pids.get(name)
        if pid:
            _stop_pid(pid)
            if not quiet:
                print(f"local-down: stopped {name} (pid {pid})")
    _remove_terraform_state(paths)  # the emulator's memory is gone with it
    for f in (paths.stack, paths.outputs, paths.stripe_state):
        f.unlink(missing_ok=True)
    return 0


def status(state_dir: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    paths = Paths(state_dir)
    state = StackState.load(paths.stack)
    console = Console()
    if state is None:
        console.print("local-status: not running (start it with make local-up)")
        return 1
    table = Table(title=f"paystream local stack ({state.backend})")
    for col in ("component", "pid", "port", "state"):
        table.add_column(col)
    all_ok = True
    port_of = {"emulator": "aws", "stripe": "stripe", "dataplane": "api"}
    for name in ("emulator", "stripe", "dataplane"):
        ok = _component_ok(state, name)
        all_ok &= ok
        table.add_row(name, str(state.pids.get(name, "")), str(state.ports.get(port_of[name], "")),
                      "[green]running[/green]" if ok else "[red]down[/red]")
    console.print(table)
    if _component_ok(state, "dataplane"):
        dp = _dataplane_status(state.ports)
        fns = Table(title="functions")
        for col in ("function", "workers (cap)", "invocations", "errors", "last error"):
            fns.add_column(col)
        for fn in dp.get("functions", []):
            fns.add_row(fn["name"], _workers(fn), str(fn.get("invocations", 0)), str(fn.get("errors", 0)),
                        str(fn.get("setup_error") or fn.get("last_error") or ""))
        console.print(fns)
        maps = Table(title="event source mappings")
        for col in ("uuid", "function", "source", "state", "last error"):
            maps.add_column(col)
        for m in dp.get("mappings", []):
            maps.add_row(str(m["uuid"])[:8], str(m.get("function_arn", "")).rsplit(":", 1)[-1],
                         str(m.get("source_arn", "")).rsplit(":", 1)[-1], str(m.get("state", "")),
                         str(m.get("last_error") or ""))
        console.print(maps)
    if not all_ok:
        console.print("some components are down: run make local-up to recover")
    return 0 if all_ok else 1


def logs(state_dir: Path) -> int:
    paths = Paths(state_dir)
    files = sorted(str(p) for p in paths.logs.glob("*.log")) if paths.logs.exists() else []
    if not files:
        print("logs: no logs yet (start the stack with make local-up)", file=sys.stderr)
        return 1
    os.execvp("tail", ["tail", "-n", "20", "-F", *files])
    return 0


# ---------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description="paystream local stack")
    parser.add_argument("command", choices=["up", "down", "status", "logs", "demo"])
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("PAYSTREAM_LOCAL_DIR", DEFAULT_STATE_DIR)))
    parser.add_argument("--backend", choices=["embedded", "localstack"], default=os.environ.get("BACKEND", "embedded"))
    parser.add_argument("--ports", choices=["default", "auto"], default="default",
                        help="auto: pick free ports (what the test suite does)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.state_dir, args.backend, args.ports)
            return 0
        if args.command == "down":
            return down(args.state_dir)
        if args.command == "status":
            return status(args.state_dir)
        if args.command == "logs":
            return logs(args.state_dir)
        if args.command == "demo":
            from localdev.demo import run as run_demo

            return run_demo(args.state_dir, args.backend)
    except StackError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - packaging/Terraform/Stripe failures carry their own clear message
        from localdev.package import PackageError
        from localdev.terraform import TerraformError

        if not isinstance(exc, (PackageError, TerraformError)):
            raise
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2
