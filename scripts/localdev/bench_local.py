"""`make bench` (local platform part): how fast the local platform starts and how much it adds.

Measures, on this machine, writing bench/local-platform.json:
- `local_up_seconds`: `python -m localdev up` on a fresh state dir (fresh emulator, full Terraform
  apply) from a warm virtual environment, and `local_up_again_seconds` for a second, no-change `up`;
- `invoke_overhead_ms`: median time the data plane adds to an invocation — a warm Invoke API round
  trip of an echo function minus the median of calling the same handler directly in-process;
- `sqs_to_handler_ms`: median from SendMessage to the handler's first line for single messages
  through an SQS event source mapping (batch size 1, no batching window).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from localdev.stack import PROJECT_ROOT, REGION, _aws_client, _free_port, _wait_until, _http_json

ECHO = "def handler(event, context):\n    return event\n"
SQS_PROBE = '''import json, os, time
def handler(event, context):
    started_ms = time.time() * 1000
    with open(os.environ["PROBE_FILE"], "a") as f:
        for record in event["Records"]:
            sent_ms = float(json.loads(record["body"])["sent_ms"])
            f.write(f"{started_ms - sent_ms}\\n")
    return {}
'''


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", source)
    return buf.getvalue()


def _time_up(runs_dir: Path) -> tuple[float, float]:
    state_dir = runs_dir / "stack"
    cmd = [sys.executable, "-m", "localdev", "up", "--state-dir", str(state_dir), "--ports", "auto"]
    try:
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, capture_output=True)
        first = time.monotonic() - t0
        t0 = time.monotonic()
        subprocess.run(cmd, cwd=PROJECT_ROOT, check=True, capture_output=True)
        return first, time.monotonic() - t0
    finally:
        subprocess.run([sys.executable, "-m", "localdev", "down", "--state-dir", str(state_dir)], cwd=PROJECT_ROOT)


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)


def _measure_dataplane(runs_dir: Path, invocations: int, messages: int) -> dict:
    aws_port, api_port, invoke_port = _free_port(), _free_port(), _free_port()
    endpoint = f"http://127.0.0.1:{aws_port}"
    procs = [_start([sys.executable, "-m", "localdev", "emulator", "--port", str(aws_port)], runs_dir / "emulator.log")]
    try:
        _wait_until(lambda: _http_json(f"{endpoint}/_localdev/health"), "emulator", 30)
        iam, lam, sqs = (_aws_client(s, endpoint) for s in ("iam", "lambda", "sqs"))
        role = iam.create_role(RoleName="bench", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam.create_function(FunctionName="bench-echo", Runtime="python3.12", Role=role, Handler="handler.handler",
                            Code={"ZipFile": _zip(ECHO)}, Timeout=10)
        probe_file = runs_dir / "sqs-latencies.txt"
        lam.create_function(FunctionName="bench-sqs", Runtime="python3.12", Role=role, Handler="handler.handler",
                            Code={"ZipFile": _zip(SQS_PROBE)}, Timeout=10,
                            Environment={"Variables": {"PROBE_FILE": str(probe_file)}})
        queue_url = sqs.create_queue(QueueName="bench")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="bench-sqs", BatchSize=1)
        procs.append(_start(
            [sys.executable, "-m", "localdev", "dataplane", "--endpoint", endpoint, "--region", REGION,
             "--api-port", str(api_port), "--invoke-port", str(invoke_port), "--state-dir", str(runs_dir / "state")],
            runs_dir / "dataplane.log"))
        _wait_until(lambda: _http_json(f"http://127.0.0.1:{invoke_port}/_dataplane/status"), "data plane", 60)

        conn = http.client.HTTPConnection("127.0.0.1", invoke_port, timeout=30)
        payload = json.dumps({"hello": "world", "n": 1}).encode()

        def invoke() -> float:
            t0 = time.perf_counter()
            conn.request("POST", "/2015-03-31/functions/bench-echo/invocations", body=payload)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and json.loads(body) == {"hello": "world", "n": 1}, body
            return (time.perf_counter() - t0) * 1000

        invoke()  # cold start, not counted
        round_trips = [invoke() for _ in range(invocations)]
        namespace: dict = {}
        exec(ECHO, namespace)  # noqa: S102 - the same handler, called directly
        direct = []
        event = json.loads(payload)
        for _ in range(invocations):
            t0 = time.perf_counter()
            namespace["handler"](event, None)
            direct.append((time.perf_counter() - t0) * 1000)

        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"sent_ms": time.time() * 1000}))  # warm-up
        _wait_until(lambda: probe_file.exists() and len(probe_file.read_text().split()) >= 1, "SQS warm-up", 30)
        for i in range(messages):
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"sent_ms": time.time() * 1000}))
            _wait_until(lambda: len(probe_file.read_text().split()) >= i + 2, "SQS delivery", 30)
        sqs_latencies = [float(x) for x in probe_file.read_text().split()[1:]]
        return {
            "invocations": invocations,
            "invoke_round_trip_median_ms": round(statistics.median(round_trips), 3),
            "invoke_round_trip_p95_ms": round(statistics.quantiles(round_trips, n=20)[-1], 3),
            "direct_handler_median_ms": round(statistics.median(direct), 4),
            "invoke_overhead_ms": round(statistics.median(round_trips) - statistics.median(direct), 3),
            "sqs_messages": messages,
            "sqs_to_handler_ms": round(statistics.median(sqs_latencies), 1),
            "sqs_to_handler_p95_ms": round(statistics.quantiles(sqs_latencies, n=20)[-1], 1),
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev bench")
    parser.add_argument("--invocations", type=int, default=300)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--skip-up", action="store_true", help="skip timing a full local-up")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "local-platform.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="paystream-bench-") as tmp:
        runs_dir = Path(tmp)
        results = {"machine": f"{platform.node()} {platform.machine()} {platform.python_version()}",
                   "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        results.update(_measure_dataplane(runs_dir, args.invocations, args.messages))
        if not args.skip_up:
            first, again = _time_up(runs_dir)
            results["local_up_seconds"] = round(first, 1)
            results["local_up_again_seconds"] = round(again, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0
