"""`make bench` (last step): bench/results.json, bench/RESULTS.md and the latency plots, from the bench modules' files.

Each bench module writes its own file into bench/ (with the machine, time and commit it measured on);
this step only gathers them, sets each figure beside the issue's goal and the reference design's figure,
and draws the plots. It measures nothing itself, so it can be re-run at will:

    python -m localdev.bench_report [--bench-dir bench]

Needs cost.json (bench_cost), cold-start.json (bench_cold_start) and load.json (bench_load); the other
files (chaos, rebuild, webhooks, fraud, payments) are reported when present. A missing required file is
one line on stderr naming the command that writes it, and exit 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BENCH_DIR = PROJECT_ROOT / "bench"

# The published EventBridge + Lambda + DynamoDB + Kinesis payments design issue 8 compares against.
REFERENCE = {
    "aws_requests_per_payment": 20,
    "sequential_round_trips_initiate": 6,
    "cost_per_payment_usd": 0.00036,
    "initiate_p95_ms": 500,
}
# Issue 8's goals for paystream.
GOALS = {
    "aws_requests_per_payment": 8,
    "sequential_round_trips_initiate": 2,
    "cost_per_payment_usd": 0.00010,
    "cold_start_ratio": 1.5,
    "lost": 0,
    "duplicated": 0,
}

REQUIRED = {
    "cost": ("cost.json", "python -m localdev.bench_cost"),
    "cold_start": ("cold-start.json", "python -m localdev.bench_cold_start"),
    "load": ("load.json", "python -m localdev.bench_load"),
}
OPTIONAL = {
    "chaos": "chaos.json",
    "rebuild": "rebuild.json",
    "webhooks": "webhooks.json",
    "fraud": "fraud.json",
    "payments": "payments.json",
}


class MissingInput(Exception):
    """A bench file the report needs is absent or unreadable; the message is the one line to print."""


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MissingInput(f"bench_report: {path} is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise MissingInput(f"bench_report: {path} does not hold a JSON object")
    return data


def load_inputs(bench_dir: Path) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = {}
    for name, (file_name, command) in REQUIRED.items():
        path = bench_dir / file_name
        if not path.is_file():
            raise MissingInput(f"bench_report: {path} is missing: run {command} (or make bench) first")
        inputs[name] = _read(path)
    for name, file_name in OPTIONAL.items():
        if (bench_dir / file_name).is_file():
            inputs[name] = _read(bench_dir / file_name)
    return inputs


def _need(data: dict[str, Any], key: str, source: str) -> Any:
    if data.get(key) is None:
        raise MissingInput(f"bench_report: {source} has no {key!r}: re-run {REQUIRED[source][1]}")
    return data[key]


def latency_samples(bench_dir: Path, load: dict[str, Any]) -> dict[str, list[float]]:
    """The load run's raw latencies in ms, from bench_load's samples file (`samples` in load.json, default
    load-samples.json): `post_ms` (every POST /payments) and `terminal_ms` (POST to a terminal state)."""
    path = bench_dir / Path(load.get("samples") or "load-samples.json").name
    if not path.is_file():
        return {"post_ms": [], "terminal_ms": []}
    samples = _read(path)
    post = samples.get("post") or {}
    column = (post.get("columns") or []).index("ms") if "ms" in (post.get("columns") or []) else None
    return {
        "post_ms": [float(row[column]) for row in post.get("rows", [])] if column is not None else [],
        "terminal_ms": [float(v) for v in samples.get("terminal_ms", [])],
    }


def results(inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """results.json: the issue's headline figures plus where each came from."""
    cost, cold, load = inputs["cost"], inputs["cold_start"], inputs["load"]
    functions = _need(cold, "cold_start", "cold_start").get("functions", {})
    out: dict[str, Any] = {
        "aws_requests_per_payment": _need(cost, "aws_requests_per_payment", "cost"),
        "sequential_round_trips_initiate": _need(cost, "sequential_round_trips_initiate", "cost"),
        "cost_per_payment_usd": _need(cost, "cost_per_payment_usd", "cost"),
        "cold_start_ratio": {name: f["ratio"] for name, f in sorted(functions.items())},
        "load": {
            "throughput_per_s": _need(load, "throughput_per_s", "load"),
            "p50_ms": load.get("p50_ms"),
            "p95_ms": _need(load, "p95_ms", "load"),
            "p99_ms": load.get("p99_ms"),
            "terminal_p95_ms": load.get("terminal_p95_ms"),
            "lost": _need(load, "lost", "load"),
            "duplicated": _need(load, "duplicated", "load"),
            "clients": load.get("clients"),
            "duration_s": load.get("duration_s"),
            "accepted": load.get("accepted"),
        },
        "goals": GOALS,
        "reference": REFERENCE,
        "sources": {name: _provenance(data) for name, data in sorted(inputs.items())},
    }
    if "chaos" in inputs:
        out["chaos"] = {name: {"lost": f.get("lost"), "duplicated": f.get("duplicated"), "audit_ok": f.get("audit_ok")}
                        for name, f in inputs["chaos"].get("faults", {}).items()}
    return out


def _provenance(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in ("measured_at", "commit", "machine") if key in data}


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    goal: str
    reference: str
    status: str


def _status(ok: bool) -> str:
    return "met" if ok else "not met"


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def rows(res: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> list[Row]:
    ratios: dict[str, float] = res["cold_start_ratio"]
    over = sorted((name for name, r in ratios.items() if r > GOALS["cold_start_ratio"]), key=lambda n: -ratios[n])
    load = res["load"]
    table = [
        Row("AWS requests per payment (amortized)", _fmt(res["aws_requests_per_payment"], 1),
            f"≤ {GOALS['aws_requests_per_payment']}", f"~{REFERENCE['aws_requests_per_payment']}",
            _status(res["aws_requests_per_payment"] <= GOALS["aws_requests_per_payment"])),
        Row("Sequential AWS round trips before POST /payments answers", _fmt(res["sequential_round_trips_initiate"], 0),
            f"≤ {GOALS['sequential_round_trips_initiate']} (+1 Stripe call)", str(REFERENCE["sequential_round_trips_initiate"]),
            _status(res["sequential_round_trips_initiate"] <= GOALS["sequential_round_trips_initiate"])),
        Row("AWS cost per payment (USD)", f"${res['cost_per_payment_usd']:.6f}", f"≤ ${GOALS['cost_per_payment_usd']:.5f}",
            f"${REFERENCE['cost_per_payment_usd']:.5f}", _status(res["cost_per_payment_usd"] <= GOALS["cost_per_payment_usd"])),
        Row("Cold start vs boto3 baseline (worst function)",
            f"{max(ratios.values()):.2f}× ({len(ratios) - len(over)}/{len(ratios)} within)" if ratios else "n/a",
            f"≤ {GOALS['cold_start_ratio']}× each", "—", _status(not over and bool(ratios))),
        Row("POST /payments p95 under load (ms)", _fmt(load["p95_ms"], 0), "—", f"< {REFERENCE['initiate_p95_ms']}",
            _status(load["p95_ms"] < REFERENCE["initiate_p95_ms"]) + " (vs reference)"),
        Row("Throughput under load (accepted payments/s)", _fmt(load["throughput_per_s"], 1), "—", "—", "measured"),
        Row("Events lost / duplicated under load", f"{load['lost']} / {load['duplicated']}", "0 / 0", '"zero data loss"',
            _status(load["lost"] == 0 and load["duplicated"] == 0)),
    ]
    chaos = res.get("chaos")
    if chaos:
        failing = [name for name, f in chaos.items() if not f.get("audit_ok") or f.get("lost") or f.get("duplicated")]
        table.append(Row("Zero-loss audit under each fault", f"{len(chaos) - len(failing)}/{len(chaos)} faults pass"
                         + (f" (failing: {', '.join(failing)})" if failing else ""), "all pass", "—", _status(not failing)))
    else:
        table.append(Row("Zero-loss audit under each fault", "not measured (no bench/chaos.json: run make chaos)",
                         "all pass", "—", "not measured"))
    return table


def markdown(res: dict[str, Any], inputs: dict[str, dict[str, Any]], plots: list[str], commit: str) -> str:
    lines = [
        "# paystream benchmark results",
        "",
        "Written by `python -m localdev.bench_report` (the last step of `make bench`) from the bench modules' files in",
        "this directory; every figure was measured on the local stack (moto emulator + localstripe + the local Lambda",
        "data plane) on the machine below, not in AWS. Each source file records its own time and commit.",
        "",
        f"- Report commit: `{commit}`",
        f"- Machine: {_machine_line(inputs)}",
        "",
        "## Goals (issue 8)",
        "",
        "| Figure | Measured | Goal | Reference design | Status |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.figure} | {r.measured} | {r.goal} | {r.reference} | {r.status} |" for r in rows(res, inputs)]
    lines += ["", "## Sources", "", "| File | Measured at | Commit |", "|---|---|---|"]
    for name, prov in res["sources"].items():
        file_name = REQUIRED[name][0] if name in REQUIRED else OPTIONAL[name]
        lines.append(f"| `{file_name}` | {prov.get('measured_at', '—')} | {prov.get('commit', '—')} |")
    lines += ["", "## Cold start by function (ratio to `import boto3; boto3.client(\"dynamodb\")`)", "",
              "| Function | Ratio | Within 1.5× |", "|---|---|---|"]
    for name, ratio in sorted(res["cold_start_ratio"].items(), key=lambda item: item[1]):
        lines.append(f"| {name} | {ratio:.2f} | {'yes' if ratio <= GOALS['cold_start_ratio'] else 'no'} |")
    cost = inputs["cost"]
    if cost.get("cost_breakdown_usd"):
        lines += ["", "## Cost per payment by service (USD)", "", "| Service | USD per payment |", "|---|---|"]
        for service, usd in sorted(cost["cost_breakdown_usd"].items(), key=lambda item: -float(item[1] or 0)):
            lines.append(f"| {service} | {float(usd):.8f} |")
        if cost.get("prices_as_of"):
            lines.append(f"\nPrices as of {cost['prices_as_of']} (bench/aws-prices.json).")
    by_operation = cost.get("aws_requests_per_payment_by_operation")
    if by_operation:
        lines += ["", "## AWS requests per payment by operation", "", "| Operation | Per payment |", "|---|---|"]
        for operation, count in sorted(by_operation.items(), key=lambda item: -float(item[1])):
            lines.append(f"| {operation} | {float(count):.2f} |")
    if cost.get("how"):
        lines += ["", f"How counted: {cost['how']}"]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def _machine_line(inputs: dict[str, dict[str, Any]]) -> str:
    for name in ("load", "cost", "cold_start"):
        machine = inputs.get(name, {}).get("machine")
        if machine:
            return machine if isinstance(machine, str) else ", ".join(f"{k} {v}" for k, v in machine.items())
    return "not recorded"


def plot(bench_dir: Path, res: dict[str, Any], samples: dict[str, list[float]]) -> list[str]:
    """PNG plots: the load run's latency distributions, and cold starts against the goal. Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from paystream_ops.gaps import percentile

    written = []
    series = [(key, label) for key, label in (("post_ms", "POST /payments"), ("terminal_ms", "POST → terminal state"))
              if samples.get(key)]
    if series:
        fig, axes = plt.subplots(1, len(series), figsize=(6 * len(series), 4), squeeze=False)
        for ax, (key, label) in zip(axes[0], series):
            values = sorted(samples[key])
            ax.hist(values, bins=40, color="#4c72b0")
            p95 = percentile(values, 0.95)  # the load bench's own percentile, so the label matches load.json
            ax.axvline(p95, color="#c44e52", linestyle="--", label=f"p95 {p95:,.0f} ms")
            ax.set_title(f"{label} (n={len(values)})")
            ax.set_xlabel("ms")
            ax.set_ylabel("requests" if key == "post_ms" else "payments")
            ax.legend()
        fig.suptitle(f"Latency under load: {res['load'].get('clients')} clients, {res['load'].get('duration_s')} s")
        fig.tight_layout()
        path = bench_dir / "load-latency.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(str(path))
    ratios = res["cold_start_ratio"]
    if ratios:
        names = sorted(ratios, key=ratios.get)
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2))
        ax.barh(names, [ratios[n] for n in names],
                color=["#55a868" if ratios[n] <= GOALS["cold_start_ratio"] else "#c44e52" for n in names])
        ax.axvline(GOALS["cold_start_ratio"], color="black", linestyle="--", label="goal 1.5×")
        ax.set_xlabel("cold start / boto3 DynamoDB client baseline")
        ax.legend()
        fig.tight_layout()
        path = bench_dir / "cold-start.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(str(path))
    return written


def current_commit(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str:
    done = run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def write_report(bench_dir: Path, commit: str) -> dict[str, Any]:
    inputs = load_inputs(bench_dir)
    res = results(inputs)
    res["report_commit"] = commit
    plots = plot(bench_dir, res, latency_samples(bench_dir, inputs["load"]))
    (bench_dir / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (bench_dir / "RESULTS.md").write_text(markdown(res, inputs, plots, commit))
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench-dir", type=Path, default=DEFAULT_BENCH_DIR)
    args = parser.parse_args(argv)
    try:
        res = write_report(args.bench_dir, current_commit())
    except MissingInput as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"wrote {args.bench_dir / 'results.json'} and {args.bench_dir / 'RESULTS.md'}: "
          f"{res['aws_requests_per_payment']} AWS requests/payment, ${res['cost_per_payment_usd']:.6f}/payment, "
          f"load p95 {res['load']['p95_ms']} ms, lost {res['load']['lost']}, duplicated {res['load']['duplicated']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
