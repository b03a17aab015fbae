"""`make bench` (cold start part, issue 8 item 3): every function's import and init time in a fresh process,
as a ratio to `import boto3; boto3.client("dynamodb")` measured in the same run, and the package sizes.

    python -m localdev.bench_cold_start [--own-stack | --outputs FILE] [--runs 11]   # bench/cold-start.json

What one sample is: a fresh interpreter runs `import handler` from `lambdas/<function>/` with the
function's environment variables as Terraform set them on the local stack (GetFunctionConfiguration), calls
going to the stack's emulator. That is what Lambda's init phase runs: module import, client construction,
configuration parsing, and the reads some functions make at init (the fraud configuration from SSM, for
example). The interpreter runs isolated (`-I -S`, no .pth files) with the function's directory, the core layer and this environment's
site-packages on its path — the deps layer is built for Lambda's Python (cp312), so its packages are taken
from here, as the local data plane does — and it may import only what Lambda would find: the standard
library, the function's and core's own modules and the top-level modules the deps layer zip ships. This
environment holds packages the functions never ship (aiohttp, which localstripe needs and the stripe SDK
imports whenever it finds it, made stripe_webhook look 0.4x slower than it is on Lambda). Cases are interleaved run by run so a slow moment of a shared
machine weighs on all alike; each figure is the median of `--runs`. Needs a running stack (`--outputs`,
default `.local/outputs.json`) or `--own-stack`.

Package sizes: each function's code zip and each layer, zipped and unzipped, from `make package`'s output
(`build/manifest.json` and the zips), built first when missing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from localdev.bench_stack import DEFAULT_OUTPUTS, NoStack, bench_stack

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BASELINE = "boto3_dynamodb"
BASELINE_CODE = 'import boto3; boto3.client("dynamodb")'
GOAL_RATIO = 1.5  # issue 8: every function's cold start ≤ 1.5× the boto3 baseline

def function_names(project_root: Path = PROJECT_ROOT) -> list[str]:
    return sorted(p.parent.name for p in (project_root / "lambdas").glob("*/handler.py"))


def function_environments(outputs: dict) -> dict[str, dict[str, str]]:
    """Each function's environment as Lambda gives it on the local stack: its configured variables, the
    region, test credentials and the emulator as endpoint (what the local data plane sets too)."""
    import boto3

    lam = boto3.client("lambda", endpoint_url=outputs["aws_endpoint_url"], region_name=outputs["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    environments = {}
    for key, name in sorted(outputs["function_names"].items()):
        variables = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        environments[key] = {**variables, "AWS_ENDPOINT_URL": outputs["aws_endpoint_url"],
                             "AWS_REGION": outputs["region"], "AWS_DEFAULT_REGION": outputs["region"],
                             "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                             "AWS_LAMBDA_FUNCTION_NAME": name}
    return environments


def cases(environments: dict[str, dict[str, str]], project_root: Path = PROJECT_ROOT) -> dict[str, tuple]:
    """Case name → (code a fresh interpreter runs, the directory put first on its path, extra environment)."""
    baseline_env = {k: v for k, v in next(iter(environments.values()), {}).items()
                    if k.startswith("AWS_") and k != "AWS_LAMBDA_FUNCTION_NAME"}
    found: dict[str, tuple] = {BASELINE: (BASELINE_CODE, None, baseline_env)}
    for name in function_names(project_root):
        if name not in environments:
            raise KeyError(f"the stack has no function {name} (function_names in its outputs)")
        found[name] = ("import handler", project_root / "lambdas" / name, environments[name])
    return found


# Run first in an isolated interpreter: a top-level import that only this environment's site-packages could
# satisfy, of a module the function does not ship, fails as it would in Lambda (the standard library, and
# the interpreter's own modules outside sys.stdlib_module_names such as _sysconfigdata_*, stay importable).
_SHIPPED_ONLY = """import sys
from importlib.machinery import PathFinder

sys.path[:0] = {path!r}
sys.path.append({site_packages!r})
_shipped = frozenset({shipped!r})


class _NotShipped:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if path is None and name not in _shipped and PathFinder.find_spec(name, [{site_packages!r}]) is not None:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the function's code or layers)", name=name)
        return None


sys.meta_path.insert(0, _NotShipped)
"""


def import_seconds(code: str, directory: Path | None, extra_env: dict[str, str],
                   project_root: Path = PROJECT_ROOT, layer_modules: frozenset[str] | None = None) -> float:
    """Seconds a fresh interpreter spends running `code` (the interpreter's own start-up excluded).

    With `layer_modules` (the top-level modules the layers ship) the interpreter is isolated and may import
    only those, the standard library and the function's and core's own modules, as in Lambda; without, it
    sees all of this environment's site-packages."""
    path = [str(directory)] if directory else []
    path.append(str(project_root / "layers" / "core" / "python"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))} | extra_env
    if layer_modules is None:
        command = [sys.executable, "-c"]
        env["PYTHONPATH"] = os.pathsep.join(path)
        prelude = ""
    else:
        command = [sys.executable, "-I", "-S", "-c"]
        own = {module_name(entry) for folder in path for entry in Path(folder).iterdir()}
        prelude = _SHIPPED_ONLY.format(path=path, site_packages=sysconfig.get_paths()["purelib"],
                                       shipped=sorted((own | layer_modules) - {None}))
    script = f"{prelude}import time; t = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    result = subprocess.run([*command, script], capture_output=True, text=True, env=env,
                            cwd=directory or project_root, timeout=120)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{directory.name if directory else BASELINE}: import failed: {last}")
    return float(result.stdout.strip().splitlines()[-1])


def cold_start(environments: dict[str, dict[str, str]], runs: int, project_root: Path = PROJECT_ROOT,
               measure=import_seconds) -> dict:
    """Median seconds and ratio to the baseline per function, cases interleaved run by run."""
    measured = cases(environments, project_root)
    samples: dict[str, list[float]] = {name: [] for name in measured}
    for _ in range(runs):
        for name, (code, directory, extra_env) in measured.items():
            samples[name].append(measure(code, directory, extra_env, project_root))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians.pop(BASELINE)
    return {
        "baseline": {"code": BASELINE_CODE, "seconds": round(baseline, 4)},
        "functions": {name: {"seconds": round(seconds, 4), "ratio": round(seconds / baseline, 2),
                             "within_goal": seconds / baseline <= GOAL_RATIO}
                      for name, seconds in sorted(medians.items())},
        "runs": runs,
    }


def unzipped_bytes(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def package_sizes(build_dir: Path) -> dict:
    """Zipped and unzipped bytes of every function zip and layer under `build_dir` (make package's output)."""
    sizes: dict[str, dict] = {"functions": {}, "layers": {}}
    for kind in ("functions", "layers"):
        for path in sorted((build_dir / kind).glob("*.zip")):
            sizes[kind][path.stem] = {"zip_bytes": path.stat().st_size, "unzipped_bytes": unzipped_bytes(path)}
    return sizes


def module_name(entry: Path | str) -> str | None:
    """The top-level module a directory entry provides (`pkg/`, `mod.py`, `mod.cpython-312-….so`), or None."""
    name = Path(entry).name
    if name.endswith((".dist-info", ".egg-info", ".pth")) or name.startswith((".", "__pycache__")):
        return None
    if name.endswith((".py", ".so", ".pyd")):
        return name.partition(".")[0]
    return name if "." not in name else None


def layer_modules(build_dir: Path, layer: str) -> frozenset[str]:
    """The top-level modules `make package`'s layer zip ships under python/ (what Lambda puts on the path)."""
    with zipfile.ZipFile(build_dir / "layers" / f"{layer}.zip") as archive:
        names = archive.namelist()
    found: set[str | None] = set()
    for parts in (name.split("/") for name in names):
        if len(parts) >= 2 and parts[0] == "python" and parts[1]:
            found.add(module_name(parts[1]))
    return frozenset(name for name in found if name)


def measure(outputs: dict, runs: int, build_dir: Path) -> dict:
    if not (build_dir / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "localdev", "package", "--out", str(build_dir)], check=True,
                       cwd=PROJECT_ROOT)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=PROJECT_ROOT).stdout.strip()
    shipped = layer_modules(build_dir, "deps")
    return {
        "cold_start": cold_start(function_environments(outputs), runs,
                                 measure=functools.partial(import_seconds, layer_modules=shipped)),
        "path": "isolated interpreter (-I -S): the function directory, layers/core/python and site-packages, "
                f"importing only the standard library, the function's and core's modules and the {len(shipped)} "
                f"top-level modules of {build_dir.name}/layers/deps.zip",
        "goal_ratio": GOAL_RATIO,
        "package_sizes": package_sizes(build_dir),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.bench_cold_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, default=DEFAULT_OUTPUTS,
                        help="the running stack's outputs.json (default .local/outputs.json)")
    parser.add_argument("--own-stack", action="store_true", help="start a stack on free ports and stop it afterwards")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--build", type=Path, default=PROJECT_ROOT / "build")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "cold-start.json")
    args = parser.parse_args(argv)
    try:
        with bench_stack("bench_cold_start", args.outputs, args.own_stack) as outputs_path:
            results = measure(json.loads(outputs_path.read_text()), args.runs, args.build)
    except NoStack as exc:
        print(exc, file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["cold_start"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
