"""The data plane runs deployed Lambda functions as AWS would: environment, imports, limits, failures, logs."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from conftest import function_sources, zip_files

pytestmark = pytest.mark.integration

TOOLBOX = function_sources("toolbox")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def invoke_ok(dataplane, name: str, event: dict) -> dict:
    status, headers, body = dataplane.invoke(name, event)
    assert status == 200 and "x-amz-function-error" not in headers, body
    return json.loads(body)


def invoke_error(dataplane, name: str, event: dict) -> dict:
    status, headers, body = dataplane.invoke(name, event)
    assert status == 200 and headers.get("x-amz-function-error") == "Unhandled", body
    return json.loads(body)


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


def test_environment_is_exactly_the_configured_one_plus_the_runtime_variables(deploy_function, dataplane, monkeypatch,
                                                                               emulator_endpoint):
    name = unique("env")
    deploy_function(name, TOOLBOX, env={"TABLE_NAME": "payments", "LOG_LEVEL": "DEBUG"}, timeout=7)
    dataplane.reload()
    out = invoke_ok(dataplane, name, {})
    env = out["environ"]
    assert env["TABLE_NAME"] == "payments" and env["LOG_LEVEL"] == "DEBUG"
    assert env["AWS_ENDPOINT_URL"] == emulator_endpoint
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name and out["function_name"] == name
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["_HANDLER"] == "handler.handler" and env["TZ"] == ":UTC"
    assert env["AWS_REGION"] == "us-east-1" and env["AWS_ACCESS_KEY_ID"] == "test"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    # The test process (the host) has variables of its own; none may leak into the function.
    for host_only in ("HOME", "PYTEST_CURRENT_TEST", "VIRTUAL_ENV", "PYTHONPATH"):
        assert host_only not in env
    allowed = {
        "TABLE_NAME", "LOG_LEVEL", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SDK_UA_APP_ID", "_HANDLER", "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR", "AWS_EXECUTION_ENV", "TZ", "LANG", "PATH", "AWS_LAMBDA_RUNTIME_API", "_X_AMZN_TRACE_ID",
    }
    assert set(env) <= allowed, set(env) - allowed
    # The deadline handed to the runtime is the configured timeout.
    assert 5000 < out["remaining_ms"] <= 7000


def test_task_root_and_layer_on_sys_path_and_project_packages_not_importable(aws, deploy_function, dataplane):
    lam = aws("lambda")
    layer_name = unique("layer")
    layer_arn = lam.publish_layer_version(
        LayerName=layer_name,
        Content={"ZipFile": zip_files({"python/layer_helper.py": "VALUE = 42\n"})},
        CompatibleRuntimes=["python3.12"],
    )["LayerVersionArn"]
    name = unique("paths")
    deploy_function(name, TOOLBOX, layers=[layer_arn])
    dataplane.reload()
    out = invoke_ok(dataplane, name, {"modules": ["layer_helper", "paystream", "localdev", "boto3", "handler"]})
    task_root = out["environ"]["LAMBDA_TASK_ROOT"]
    assert out["sys_path"][0] == task_root
    assert any(p.endswith("/python") for p in out["sys_path"][1:3]), out["sys_path"]
    assert out["importable"] == {"layer_helper": True, "paystream": False, "localdev": False, "boto3": True,
                                 "handler": True}


def test_timeout_kills_the_worker_and_the_next_call_works(deploy_function, dataplane):
    name = unique("timeout")
    deploy_function(name, TOOLBOX, timeout=1)
    dataplane.reload()
    first = invoke_ok(dataplane, name, {})
    error = invoke_error(dataplane, name, {"action": "sleep", "seconds": 30})
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    after = invoke_ok(dataplane, name, {})
    assert after["pid"] != first["pid"]  # the timed-out worker was killed, a fresh one serves


def test_reserved_concurrency_one_serialises_invocations(deploy_function, dataplane):
    name = unique("serial")
    deploy_function(name, TOOLBOX, reserved_concurrency=1, timeout=10)
    dataplane.reload()
    results: list[dict] = []

    def call():
        results.append(invoke_ok(dataplane, name, {"action": "sleep", "seconds": 0.5}))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = sorted(results, key=lambda r: r["started"])
    assert second["started"] >= first["ended"]  # no overlap
    assert first["pid"] == second["pid"]  # one execution environment only


def test_unreserved_functions_run_concurrently(deploy_function, dataplane):
    name = unique("parallel")
    deploy_function(name, TOOLBOX, timeout=10)
    dataplane.reload()
    results: list[dict] = []
    barrier = threading.Barrier(2)

    def call():
        barrier.wait()
        results.append(invoke_ok(dataplane, name, {"action": "sleep", "seconds": 1}))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = sorted(results, key=lambda r: r["started"])
    assert second["started"] < first["ended"] and first["pid"] != second["pid"]


def test_cold_start_then_warm_reuse(deploy_function, dataplane):
    name = unique("warm")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    first = invoke_ok(dataplane, name, {})
    second = invoke_ok(dataplane, name, {})
    assert (first["invocations"], second["invocations"]) == (1, 2)
    assert first["pid"] == second["pid"]
    status = {f["name"]: f for f in dataplane.status()["functions"]}[name]
    assert status["invocations"] == 2 and status["cold_starts"] == 1


def test_crash_gives_exit_error_then_a_fresh_worker(deploy_function, dataplane):
    name = unique("crash")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    before = invoke_ok(dataplane, name, {})
    error = invoke_error(dataplane, name, {"action": "crash"})
    assert error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in error["errorMessage"]
    after = invoke_ok(dataplane, name, {})
    assert after["pid"] != before["pid"] and after["invocations"] == 1


def test_handler_exception_is_reported_with_its_type(deploy_function, dataplane):
    name = unique("raise")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    error = invoke_error(dataplane, name, {"action": "raise"})
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "boom from the handler"


def test_missing_handler_module_is_a_clear_import_error(deploy_function, dataplane):
    name = unique("nomodule")
    deploy_function(name, TOOLBOX, handler="no_such_module.handler")
    dataplane.reload()
    error = invoke_error(dataplane, name, {})
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'no_such_module'" in error["errorMessage"]


def test_missing_handler_function_is_handler_not_found(deploy_function, dataplane):
    name = unique("nofunc")
    deploy_function(name, TOOLBOX, handler="handler.no_such_function")
    dataplane.reload()
    error = invoke_error(dataplane, name, {})
    assert error["errorType"] == "Runtime.HandlerNotFound"


def test_log_file_has_the_functions_output_and_start_end_report(deploy_function, dataplane):
    name = unique("logs")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    marker = f"hello-{uuid.uuid4().hex}"
    invoke_ok(dataplane, name, {"action": "print", "text": marker})
    text = dataplane.function_log(name)
    start, printed, end = text.index("START RequestId: "), text.index(marker), text.index("END RequestId: ")
    assert start < printed < end
    assert "REPORT RequestId: " in text[end:] and "Duration: " in text[end:]


def test_code_update_and_reload_runs_the_new_code(aws, deploy_function, dataplane):
    name = unique("update")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    old = invoke_ok(dataplane, name, {})
    assert old["version"] == "v1"
    new_sources = {**TOOLBOX, "handler.py": TOOLBOX["handler.py"].replace('VERSION = "v1"', 'VERSION = "v2"')}
    aws("lambda").update_function_code(FunctionName=name, ZipFile=zip_files(new_sources))
    summary = dataplane.reload()
    assert name in summary["functions"]["updated"]
    new = invoke_ok(dataplane, name, {})
    assert new["version"] == "v2" and new["pid"] != old["pid"]
    # The old version's idle worker was drained.
    status = {f["name"]: f for f in dataplane.status()["functions"]}[name]
    assert [w["pid"] for w in status["workers"]] == [new["pid"]]


def test_boto3_invoke_through_the_emulator_reaches_the_data_plane(aws, deploy_function, dataplane):
    name = unique("boto")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    lam = aws("lambda")
    response = lam.invoke(FunctionName=name, Payload=json.dumps({"modules": []}).encode())
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert json.loads(response["Payload"].read())["function_name"] == name
    failed = lam.invoke(FunctionName=name, Payload=json.dumps({"action": "raise"}).encode())
    assert failed["FunctionError"] == "Unhandled"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke(FunctionName=unique("absent"))


def test_invoke_api_event_dryrun_and_unknown_function(deploy_function, dataplane):
    name = unique("types")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    marker = f"async-{uuid.uuid4().hex}"
    status, headers, _ = dataplane.invoke(name, {"action": "print", "text": marker}, invocation_type="Event")
    assert status == 202
    wait_for(lambda: marker in dataplane.function_log(name), what="the Event invocation to run")
    assert dataplane.invoke(name, {}, invocation_type="DryRun")[0] == 204
    status, headers, body = dataplane.invoke("no-such-function", {})
    assert status == 404 and headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert json.loads(body) == {
        "Type": "User", "message": "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function"
    }


def _foreign_abi_layer(aws, dist: str, version: str) -> str:
    """A layer as `make package` builds it for python3.12: a compiled extension for CPython 3.12 plus dist-info."""
    files = {
        "python/_speedups.cpython-312-x86_64-linux-gnu.so": b"\x7fELF not really",
        "python/only_in_layer.py": "X = 1\n",
        f"python/{dist}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
    }
    return aws("lambda").publish_layer_version(
        LayerName=unique("deps"), Content={"ZipFile": zip_files(files)}, CompatibleRuntimes=["python3.12"]
    )["LayerVersionArn"]


def test_layer_for_another_python_abi_is_replaced_by_this_environments_packages(aws, deploy_function, dataplane):
    import importlib.metadata

    layer_arn = _foreign_abi_layer(aws, "boto3", importlib.metadata.version("boto3"))
    name = unique("abi")
    deploy_function(name, TOOLBOX, layers=[layer_arn])
    dataplane.reload()
    out = invoke_ok(dataplane, name, {"modules": ["only_in_layer", "boto3", "paystream"]})
    assert out["importable"] == {"only_in_layer": False, "boto3": True, "paystream": False}
    assert not any(p.endswith("/python") for p in out["sys_path"]), out["sys_path"]


def test_layer_for_another_python_abi_with_a_version_mismatch_is_a_clear_error(aws, deploy_function, dataplane):
    layer_arn = _foreign_abi_layer(aws, "boto3", "0.0.1")
    name = unique("abibad")
    deploy_function(name, TOOLBOX, layers=[layer_arn])
    summary = dataplane.reload()
    import importlib.metadata

    message = summary["errors"][name]
    assert "boto3 is 0.0.1 in the layer" in message and importlib.metadata.version("boto3") in message
    error = invoke_error(dataplane, name, {})
    assert "boto3 is 0.0.1 in the layer" in error["errorMessage"]


def test_sigterm_stops_the_workers_and_exits_zero(deploy_function, dataplane):
    import os
    import signal

    name = unique("stop")
    deploy_function(name, TOOLBOX)
    dataplane.reload()
    worker_pid = invoke_ok(dataplane, name, {})["pid"]
    dataplane.proc.send_signal(signal.SIGTERM)
    assert dataplane.proc.wait(timeout=15) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)


def test_port_in_use_is_one_clear_message(emulator_endpoint, tmp_path):
    import socket
    import subprocess
    import sys

    from conftest import PROJECT_ROOT, free_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "localdev", "dataplane", "--endpoint", emulator_endpoint, "--api-port", str(port),
             "--invoke-port", str(free_port()), "--state-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} is already in use" in lines[0], done.stderr


def test_reserved_concurrency_zero_throttles(deploy_function, dataplane):
    name = unique("throttled")
    deploy_function(name, TOOLBOX, reserved_concurrency=0)
    dataplane.reload()
    status, headers, _ = dataplane.invoke(name, {})
    assert status == 429 and headers["x-amzn-errortype"] == "TooManyRequestsException"
