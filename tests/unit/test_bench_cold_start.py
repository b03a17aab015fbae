"""localdev.bench_cold_start without a stack: cases per function with their own environment, medians and
ratios to the baseline measured in the same run, package sizes read from zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from localdev import bench_cold_start as bench

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _environments() -> dict[str, dict[str, str]]:
    return {name: {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "us-east-1", "TRANSACTIONS_TABLE": name}
            for name in bench.function_names(PROJECT_ROOT)}


def test_every_function_is_a_case_with_its_own_environment_and_the_baseline_has_only_aws_settings():
    cases = bench.cases(_environments(), PROJECT_ROOT)
    names = bench.function_names(PROJECT_ROOT)
    assert {"initiate_payment", "outbox_relay", "fraud_scorer"} <= set(names)
    assert set(cases) == {bench.BASELINE, *names}
    code, directory, env = cases["outbox_relay"]
    assert code == "import handler" and directory == PROJECT_ROOT / "lambdas" / "outbox_relay"
    assert env["TRANSACTIONS_TABLE"] == "outbox_relay"
    assert cases[bench.BASELINE][2] == {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_REGION": "us-east-1"}
    with pytest.raises(KeyError, match="no function notifier"):
        bench.cases({k: v for k, v in _environments().items() if k != "notifier"}, PROJECT_ROOT)


def test_cold_start_takes_medians_interleaved_and_divides_by_the_baseline_of_the_same_run():
    calls = []
    seconds = {None: [0.10, 0.30, 0.20]}  # baseline: median 0.2

    def fake(code, directory, env, root):
        key = directory.name if directory else None
        calls.append(key)
        series = seconds.setdefault(key, [0.25, 0.35, 0.15] if key == "initiate_payment" else [0.4, 0.4, 0.4])
        return series[sum(1 for c in calls if c == key) - 1]

    result = bench.cold_start(_environments(), runs=3, project_root=PROJECT_ROOT, measure=fake)
    assert result["baseline"]["seconds"] == 0.2 and result["runs"] == 3
    assert result["functions"]["initiate_payment"] == {"seconds": 0.25, "ratio": 1.25, "within_goal": True}
    assert result["functions"]["notifier"] == {"seconds": 0.4, "ratio": 2.0, "within_goal": False}
    first_round = calls[:len(calls) // 3]  # every case once before any case's second sample
    assert len(set(first_round)) == len(first_round) == len(bench.function_names(PROJECT_ROOT)) + 1


def test_package_sizes_reports_zipped_and_unzipped_bytes(tmp_path):
    (tmp_path / "functions").mkdir()
    (tmp_path / "layers").mkdir()
    with zipfile.ZipFile(tmp_path / "functions" / "notifier.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("handler.py", "x" * 10_000)
    with zipfile.ZipFile(tmp_path / "layers" / "core.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("python/a.py", "a" * 300)
        archive.writestr("python/b.py", "b" * 700)
    sizes = bench.package_sizes(tmp_path)
    assert sizes["functions"]["notifier"]["unzipped_bytes"] == 10_000
    assert sizes["functions"]["notifier"]["zip_bytes"] == (tmp_path / "functions" / "notifier.zip").stat().st_size < 10_000
    assert sizes["layers"]["core"]["unzipped_bytes"] == 1_000


def test_a_function_that_fails_to_import_is_an_error_naming_it(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "handler.py").write_text("raise RuntimeError('no table configured')\n")
    with pytest.raises(RuntimeError, match="broken: import failed: RuntimeError: no table configured"):
        bench.import_seconds("import handler", tmp_path / "broken", {}, PROJECT_ROOT)


def test_with_layer_modules_only_what_the_function_ships_can_be_imported(tmp_path):
    # What Lambda gives a function: its code, its layers and the standard library. A package installed here
    # but not shipped (pytest, or the aiohttp the stripe SDK picks up when it finds it) must not be importable.
    function = tmp_path / "function"
    function.mkdir()
    (function / "handler.py").write_text("import json, paystream, boto3\n")
    shipped = frozenset({"boto3", "botocore", "jmespath", "dateutil", "urllib3", "s3transfer", "six"})
    assert bench.import_seconds("import handler", function, {}, PROJECT_ROOT, layer_modules=shipped) >= 0
    with pytest.raises(RuntimeError, match="No module named 'pytest' .not in the function's code or layers"):
        bench.import_seconds("import handler; import pytest", function, {}, PROJECT_ROOT, layer_modules=shipped)
    bench.import_seconds("import pytest", function, {}, PROJECT_ROOT)  # not isolated: this environment's packages


def test_the_modules_a_layer_zip_ships_are_its_top_level_packages_and_modules(tmp_path):
    (tmp_path / "layers").mkdir()
    with zipfile.ZipFile(tmp_path / "layers" / "deps.zip", "w") as archive:
        for name in ("python/pydantic/__init__.py", "python/pydantic-2.14.3.dist-info/METADATA", "python/six.py",
                     "python/pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so", "python/typing_extensions.py",
                     "python/_cffi_backend.cpython-312-x86_64-linux-gnu.so", "README.txt"):
            archive.writestr(name, "")
    assert bench.layer_modules(tmp_path, "deps") == {"pydantic", "six", "pydantic_core", "typing_extensions",
                                                      "_cffi_backend"}
