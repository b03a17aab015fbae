"""bench_report gathers the bench modules' files into results.json, RESULTS.md and the plots."""

from __future__ import annotations

import json

import pytest

from localdev import bench_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(directory, name, data):
    (directory / name).write_text(json.dumps(data))


@pytest.fixture()
def bench_dir(tmp_path):
    _write(tmp_path, "cost.json", {
        "aws_requests_per_payment": 7.5, "sequential_round_trips_initiate": 4, "cost_per_payment_usd": 0.000083,
        "cost_breakdown_usd": {"lambda": 0.00005, "dynamodb": 0.000033}, "prices_as_of": "2026-11-22",
        "aws_requests_per_payment_by_operation": {"dynamodb.TransactWriteItems": 3.0, "events.PutEvents": 1.5},
        "measured_at": "2026-11-22T17:00:00Z", "commit": "abc1234", "machine": "vm x86_64 3.11.7",
    })
    _write(tmp_path, "cold-start.json", {"cold_start": {"functions": {
        "process_payment": {"ratio": 1.4}, "fraud_review": {"ratio": 3.1}}}, "measured_at": "2026-11-22T15:00:00Z"})
    _write(tmp_path, "load.json", {
        "throughput_per_s": 12.3, "p50_ms": 120.0, "p95_ms": 410.0, "p99_ms": 700.0, "terminal_p95_ms": 2300.0,
        "lost": 0, "duplicated": 0, "clients": 20, "duration_s": 60, "accepted": 738,
        "samples": "bench/load-samples.json",
    })
    # bench_load's samples file: every POST (seconds since start, ms, status) and every POST → terminal ms.
    _write(tmp_path, "load-samples.json", {
        "post": {"columns": ["seconds_since_start", "ms", "status"],
                 "rows": [[0.1, 100.0, 201], [0.2, 120.0, 201], [0.3, 410.0, 202], [0.4, 95.0, 201]]},
        "terminal_ms": [2000.0, 2300.0, 1900.0, 2100.0],
    })
    return tmp_path


def test_results_json_has_the_issues_headline_figures_from_the_modules_files(bench_dir):
    bench_report.write_report(bench_dir, "def5678")
    res = json.loads((bench_dir / "results.json").read_text())
    assert res["aws_requests_per_payment"] == 7.5
    assert res["sequential_round_trips_initiate"] == 4
    assert res["cost_per_payment_usd"] == 0.000083
    assert res["cold_start_ratio"] == {"fraud_review": 3.1, "process_payment": 1.4}
    assert {k: res["load"][k] for k in ("throughput_per_s", "p95_ms", "lost", "duplicated")} == {
        "throughput_per_s": 12.3, "p95_ms": 410.0, "lost": 0, "duplicated": 0}
    assert res["sources"]["cost"] == {"measured_at": "2026-11-22T17:00:00Z", "commit": "abc1234", "machine": "vm x86_64 3.11.7"}
    assert res["report_commit"] == "def5678"


def test_results_md_states_how_far_each_goal_is(bench_dir):
    bench_report.write_report(bench_dir, "def5678")
    text = (bench_dir / "RESULTS.md").read_text()
    table = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:6]]
             for line in text.splitlines() if line.startswith("| ") and line.count("|") == 6}
    assert table["AWS requests per payment (amortized)"] == ["7.5", "≤ 8", "~20", "met"]
    assert table["Sequential AWS round trips before POST /payments answers"][0] == "4"
    assert table["Sequential AWS round trips before POST /payments answers"][3] == "not met"
    assert table["AWS cost per payment (USD)"][3] == "met"
    assert table["Cold start vs boto3 baseline (worst function)"][0] == "3.10× (1/2 within)"
    assert table["Cold start vs boto3 baseline (worst function)"][3] == "not met"
    assert table["Events lost / duplicated under load"] == ["0 / 0", "0 / 0", '"zero data loss"', "met"]
    assert table["Zero-loss audit under each fault"][3] == "not measured"
    assert "vm x86_64 3.11.7" in text and "`def5678`" in text


def test_a_fault_whose_audit_failed_is_named(bench_dir):
    _write(bench_dir, "chaos.json", {"faults": {
        "stripe_restart": {"lost": 0, "duplicated": 0, "audit_ok": True},
        "put_events_failures": {"lost": 2, "duplicated": 0, "audit_ok": False}}})
    bench_report.write_report(bench_dir, "x")
    text = (bench_dir / "RESULTS.md").read_text()
    assert "| Zero-loss audit under each fault | 1/2 faults pass (failing: put_events_failures) | all pass | — | not met |" in text
    assert json.loads((bench_dir / "results.json").read_text())["chaos"]["put_events_failures"]["lost"] == 2


def test_plots_are_png_files_linked_from_the_markdown(bench_dir):
    bench_report.write_report(bench_dir, "x")
    for name in ("load-latency.png", "cold-start.png"):
        assert (bench_dir / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in (bench_dir / "RESULTS.md").read_text()


def test_the_samples_file_gives_the_plotted_latencies(bench_dir):
    inputs = bench_report.load_inputs(bench_dir)
    assert bench_report.latency_samples(bench_dir, inputs["load"]) == {
        "post_ms": [100.0, 120.0, 410.0, 95.0], "terminal_ms": [2000.0, 2300.0, 1900.0, 2100.0]}


def test_a_missing_module_file_is_one_line_naming_its_command(bench_dir, capsys):
    (bench_dir / "load.json").unlink()
    assert bench_report.main(["--bench-dir", str(bench_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "load.json is missing" in err and "python -m localdev.bench_load" in err
    assert not (bench_dir / "results.json").exists()


def test_a_module_file_without_a_headline_figure_is_refused(bench_dir):
    _write(bench_dir, "cost.json", {"sequential_round_trips_initiate": 4, "cost_per_payment_usd": 0.0001})
    with pytest.raises(bench_report.MissingInput, match="'aws_requests_per_payment'.*bench_cost"):
        bench_report.write_report(bench_dir, "x")
