"""checkov over the Terraform configuration (issue 6): zero failed checks, every skip justified next to its resource.

checkov runs from its own virtualenv (.venv/checkov, installed by `make install` from requirements/checkov.lock:
its dependencies conflict with requirements/dev.lock) with the repository's .checkov.yaml, offline
(`skip-download`, no platform API key). `make checkov` prints the same scan's counts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = PROJECT_ROOT / "terraform"
CONFIG = PROJECT_ROOT / ".checkov.yaml"
CHECKOV = Path(os.environ.get("PAYSTREAM_CHECKOV", PROJECT_ROOT / ".venv" / "checkov" / "bin" / "checkov"))
LOCKED_VERSION = re.search(
    r"^checkov==(\S+)$", (PROJECT_ROOT / "requirements" / "checkov.lock").read_text(), re.MULTILINE
).group(1)

# checkov's own inline-suppression syntax (checkov/common/comment/enum.py): `checkov:skip=<ID>[:<reason>]`.
SKIP_COMMENT = re.compile(r"checkov:skip=\s*([A-Za-z_\d]+)(?::([^\n]*))?")
# A reason has to say why; checkov fills in "No comment provided" when there is none.
MIN_REASON_CHARS = 20


def _tf_files() -> list[Path]:
    return [p for p in sorted(TERRAFORM_DIR.rglob("*.tf")) if ".terraform" not in p.parts]


@pytest.fixture(scope="module")
def report() -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install` (it creates .venv/checkov from requirements/checkov.lock)")
    # No platform credentials: the scan must not depend on (or send anything to) Prisma Cloud.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(CONFIG), "--output", "json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, env=env, timeout=300,
    )
    # Exit code 1 only means "failed checks"; the assertions below list them.
    assert result.returncode in (0, 1), f"checkov crashed (exit {result.returncode}):\n{result.stderr[-4000:]}"
    data = json.loads(result.stdout)
    reports = data if isinstance(data, list) else [data]
    assert [r["check_type"] for r in reports] == ["terraform"], [r["check_type"] for r in reports]
    return reports[0]


def test_checkov_is_the_locked_version(report):
    assert report["summary"]["checkov_version"] == LOCKED_VERSION


def test_checkov_parses_everything_and_has_checks_to_run(report):
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert summary["passed"] > 100, summary


def test_no_failed_checks(report):
    failed = [
        f"{c['check_id']} {c['resource']} {Path(c['file_abs_path']).relative_to(PROJECT_ROOT)}:"
        f"{c['file_line_range'][0]}-{c['file_line_range'][1]} ({c['check_name']})"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, (
        "checkov failed checks (fix them, or skip next to the resource with `#checkov:skip=<ID>:<why>`):\n  "
        + "\n  ".join(sorted(failed))
    )


def _module_sources(directory: Path) -> set[Path]:
    sources = set()
    for path in directory.glob("*.tf"):
        for source in re.findall(r'^\s*source\s*=\s*"(\.\.?/[^"]+)"', path.read_text(), re.MULTILINE):
            sources.add((directory / source).resolve())
    return sources


def test_every_module_with_resources_is_reached_from_the_scanned_root():
    # The scan starts at environments/prod (see .checkov.yaml) and checkov follows local module calls from
    # there: a module that no call reaches would silently escape the scan.
    roots = [(PROJECT_ROOT / d).resolve() for d in yaml.safe_load(CONFIG.read_text())["directory"]]
    reached, todo = set(), list(roots)
    while todo:
        directory = todo.pop()
        if directory not in reached:
            reached.add(directory)
            todo.extend(_module_sources(directory))
    with_resources = {
        p.parent.resolve()
        for p in (TERRAFORM_DIR / "modules").glob("*/*.tf")
        if re.search(r'^resource\s+"', p.read_text(), re.MULTILINE)
    }
    assert sorted(p.name for p in with_resources - reached) == [], "modules with resources that the scan does not reach"


def test_the_scan_evaluates_module_resources(report):
    # checkov did follow the calls: findings point into the modules, not only at the environment's files.
    scanned = {
        Path(c["file_abs_path"]).resolve().parent.name
        for kind in ("passed_checks", "failed_checks", "skipped_checks")
        for c in report["results"][kind]
    }
    assert {"lambda_function", "data", "api", "kms", "queues", "secrets"} <= scanned, scanned


def test_skips_reported_by_checkov_carry_a_reason(report):
    unjustified = [
        f"{c['check_id']} {c['resource']}"
        for c in report["results"]["skipped_checks"]
        if len((c["check_result"].get("suppress_comment") or "").strip()) < MIN_REASON_CHARS
        or c["check_result"].get("suppress_comment") == "No comment provided"
    ]
    assert not unjustified, f"skipped without a reason: {unjustified}"


def test_every_inline_skip_in_terraform_carries_a_reason():
    # Also the skips in files the prod scan does not evaluate: none may be a bare ID.
    bare = []
    for path in _tf_files():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for match in SKIP_COMMENT.finditer(line):
                if len((match.group(2) or "").strip()) < MIN_REASON_CHARS:
                    bare.append(f"{path.relative_to(PROJECT_ROOT)}:{lineno}: {line.strip()}")
    assert not bare, "inline skips without a reason (`#checkov:skip=<ID>:<why>`):\n  " + "\n  ".join(bare)


def test_config_runs_offline_and_skips_only_with_a_comment():
    config = yaml.safe_load(CONFIG.read_text())
    assert config["skip-download"] is True
    assert config["framework"] == ["terraform"]
    assert "soft-fail" not in config and "soft-fail-on" not in config, "a soft fail would hide failed checks"
    # A project-wide skip belongs in the config only with its reason in a comment on the same line.
    lines = CONFIG.read_text().splitlines()
    for check_id in config.get("skip-check") or []:
        line = next(line for line in lines if re.match(rf"\s*-\s*{re.escape(str(check_id))}\b", line))
        assert re.search(r"#\s*\S.{%d,}" % (MIN_REASON_CHARS - 2), line), f"config skip without a reason: {line}"
