"""`python -m localdev dataplane`: run the Lambda functions, event source mappings and REST APIs that
Terraform created in the emulator (docs/local-platform.md, "Data plane interfaces")."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from localdev.dataplane.alarms import AlarmEvaluator
from localdev.dataplane.apigw import ApiGatewayServer, RouteTable
from localdev.dataplane.artifacts import ArtifactStore
from localdev.dataplane.discovery import discover
from localdev.dataplane.invoke_api import InvokeApiServer
from localdev.dataplane.workers import FunctionRegistry

log = logging.getLogger("localdev.dataplane")


def make_clients(endpoint: str, region: str):
    """`clients(service) -> boto3 client` bound to the emulator; one cached client per service (boto3
    clients are thread-safe), retries off because a retried 500 can duplicate deliveries."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    # The user agent marks these as Lambda's own requests in the emulator's request counts.
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                    max_pool_connections=32, user_agent_extra="localdev-dataplane")
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def clients(service: str):
        with lock:
            if service not in cache:
                cache[service] = session.client(service, endpoint_url=endpoint, config=config)
            return cache[service]

    return clients


class PortInUse(Exception):
    pass


def _bind(make, port: int, option: str):
    try:
        return make()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"dataplane: port {port} is already in use: stop what listens there "
                            f"(`make local-down`, or `ss -ltnp | grep {port}`) or pass another {option}") from exc
        raise


class DataPlane:
    def __init__(self, endpoint: str, region: str, state_dir: Path, api_port: int, invoke_port: int,
                 host: str = "127.0.0.1"):
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.clients = make_clients(self.endpoint, region)
        self.registry = FunctionRegistry(
            ArtifactStore(self.endpoint, region, state_dir / "runtime"), self.endpoint, region, state_dir / "logs"
        )
        # Bind both ports before anything else, so a port in use is reported before any work is done.
        self.apigw = _bind(lambda: ApiGatewayServer((host, api_port), self.registry.invoke), api_port, "--api-port")
        try:
            self.invoke_api = _bind(lambda: InvokeApiServer((host, invoke_port), self.registry, self.reload, self.status),
                                    invoke_port, "--invoke-port")
        except PortInUse:
            self.apigw.server_close()
            raise
        self.invoke_url = f"http://127.0.0.1:{self.invoke_api.server_address[1]}"
        self.manager = self._poller_manager()
        # moto stores CloudWatch alarms but never evaluates them: this makes the DLQ alarms fire.
        self.alarms = AlarmEvaluator(self.clients, region)
        self._reload_lock = threading.Lock()

    def _poller_manager(self):
        try:
            from localdev.dataplane.pollers import PollerManager
        except ImportError as exc:  # the pollers are built separately; functions and APIs work without them
            log.warning("event source mappings are not run: %s", exc)
            return None
        return PollerManager(self.clients, self.registry.invoke)

    def reload(self) -> dict:
        with self._reload_lock:
            found = discover(self.clients)
            summary: dict[str, Any] = {"functions": self.registry.sync(found.functions)}
            table = RouteTable(found)
            self.apigw.set_routes(table)
            summary["routes"] = len(table.routes())
            if self.manager is not None:
                from localdev.dataplane.pollers import discover_mappings

                arns = [fn.arn for fn in found.functions]
                summary["mappings"] = self.manager.sync(discover_mappings(self.clients("lambda"), arns))
            errors = {s["name"]: s["setup_error"] for s in self.registry.status() if s["setup_error"]}
            if errors:
                summary["errors"] = errors
            # Re-register every time: after a restarted emulator (local-up's stale-state recovery) the
            # registration is gone with the emulator's memory.
            self.register()
            log.info("reloaded: %s", json.dumps(summary))
            return summary

    def status(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "api_port": self.apigw.server_address[1],
            "invoke_url": self.invoke_url,
            "functions": self.registry.status(),
            "mappings": self.manager.status() if self.manager is not None else [],
            "routes": self.apigw.table.routes(),
            "alarms": self.alarms.status(),
            "chaos": self.registry.chaos.status(),
        }

    def register(self) -> None:
        """Tell the emulator where Lambda Invoke goes, so boto3 `lambda.invoke` reaches these workers."""
        request = urllib.request.Request(
            f"{self.endpoint}/_localdev/dataplane",
            data=json.dumps({"invoke_url": self.invoke_url}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as resp:
            resp.read()

    def start(self) -> None:
        # Load everything before answering anything: `local-up` takes a status answer as "ready", and
        # a request routed before the first load would get 403 "Missing Authentication Token".
        self.reload()
        self.apigw.start()
        self.invoke_api.start()
        self.alarms.start()

    def stop(self) -> None:
        self.alarms.stop()
        if self.manager is not None:
            self.manager.stop()
        self.apigw.stop()
        self.invoke_api.stop()
        self.registry.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m localdev dataplane", description=__doc__)
    p.add_argument("--endpoint", default="http://127.0.0.1:4566", help="the emulator (AWS API) URL")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--api-port", type=int, default=4567, help="REST API server port")
    p.add_argument("--invoke-port", type=int, default=4568, help="Lambda Invoke API + control port")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--state-dir", type=Path, default=Path(".local"), help="where runtime/ and logs/ go")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dataplane %(levelname)s %(message)s")
    try:
        plane = DataPlane(args.endpoint, args.region, args.state_dir.resolve(), args.api_port, args.invoke_port,
                          args.host)
    except PortInUse as exc:
        print(exc, file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        plane.start()
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback for the usual cause
        log.exception("start failed")
        print(f"dataplane: cannot start against {args.endpoint}: {exc} — is the emulator running "
              f"(`python -m localdev emulator`)?", file=sys.stderr)
        plane.stop()
        return 1
    log.info("serving REST APIs on http://%s:%d, Invoke API on %s", args.host, args.api_port, plane.invoke_url)
    stop.wait()
    log.info("stopping")
    plane.stop()
    return 0
