"""`python -m localdev up/down/status` answer bad situations with one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def localdev(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localdev", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_up_refuses_a_port_in_use_with_one_clear_line(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = localdev("up", "--state-dir", str(tmp_path), env={"LOCAL_AWS_PORT": str(port)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"up: port {port} (aws) is in use by another program: stop it, or choose another port with "
        "LOCAL_AWS_PORT=<port> (or --ports auto)"
    )
    assert not (tmp_path / "stack.json").exists()


def test_up_without_terraform_says_how_to_get_it(tmp_path):
    python_dir = str(Path(sys.executable).parent)
    result = localdev("up", "--state-dir", str(tmp_path), env={"PATH": f"{python_dir}:/nonexistent"})
    assert result.returncode == 1
    assert "terraform not found on PATH" in result.stderr and "Traceback" not in result.stderr


def test_status_and_down_of_a_stack_that_is_not_running(tmp_path):
    status = localdev("status", "--state-dir", str(tmp_path))
    assert status.returncode == 1 and "not running" in status.stdout
    down = localdev("down", "--state-dir", str(tmp_path))
    assert down.returncode == 0 and "nothing is running" in down.stdout


def test_down_does_not_kill_a_foreign_process_with_a_recorded_pid(tmp_path):
    # A stale stack.json whose pid now belongs to another program (pid reuse) must not be killed.
    foreign = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "stack.json").write_text(json.dumps({"backend": "embedded", "ports": {}, "pids": {"emulator": foreign.pid}}))
        assert localdev("down", "--state-dir", str(tmp_path)).returncode == 0
        assert foreign.poll() is None
        assert not (tmp_path / "stack.json").exists()
    finally:
        foreign.kill()
        foreign.wait()


def test_localstack_backend_without_a_docker_engine_says_so(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_docker = bin_dir / "docker"
    # A docker client whose engine is not running, as on this machine and CI.
    fake_docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake_docker.chmod(0o755)
    python_dir = str(Path(sys.executable).parent)
    result = localdev("up", "--backend", "localstack", "--state-dir", str(tmp_path / "state"),
                      env={"PATH": f"{bin_dir}:{python_dir}:/usr/bin:/bin"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "up: BACKEND=localstack needs a running Docker engine: start it (or use the default embedded backend)"
    )
    no_docker = localdev("up", "--backend", "localstack", "--state-dir", str(tmp_path / "state"),
                         env={"PATH": f"{python_dir}:/nonexistent"})
    assert no_docker.returncode == 1 and "needs Docker: install Docker" in no_docker.stderr
