"""`python -m localdev package [--out build]` — build the Lambda artifacts, deterministically.

Same inputs give the same bytes, so `terraform apply` of unchanged code changes nothing
(`source_code_hash = filebase64sha256(...)` stays put). Output, under `--out` (default `build/`):

    functions/<name>.zip   the files of lambdas/<name>/ at the zip root (code only)
    layers/core.zip        layers/core/python/** under python/
    layers/deps.zip        layers/deps/requirements.txt installed for the Lambda runtime
                           (python3.12, x86_64), under python/
    layers/deps-arm64.zip  the same for arm64 (Graviton) functions, with `--architecture arm64`
    manifest.json          {"artifacts": {"<relative path>": {"filebase64sha256", "size"}}}
    .cache/deps-<key>.zip  the deps layer, reused while requirements and target platform are unchanged
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The Lambda runtime the layers are built for (not this interpreter): wheels per function architecture.
LAMBDA_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
LAMBDA_PLATFORM = LAMBDA_PLATFORMS["x86_64"]
DEPS_LAYER_NAMES = {"x86_64": "deps.zip", "arm64": "deps-arm64.zip"}
LAMBDA_IMPLEMENTATION = "cp"
LAMBDA_PYTHON_VERSION = "3.12"

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest timestamp a zip entry can hold
FILE_MODE = 0o100644  # regular file, rw-r--r--
COMPRESS_LEVEL = 9

# Our own code ships without its tests; a third-party layer ships exactly what pip installed.
CODE_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", "tests"})
DEPS_SKIP_DIRS = frozenset({"__pycache__"})
SKIP_SUFFIXES = (".pyc", ".pyo")
SKIP_FILES = {".DS_Store"}


class PackageError(Exception):
    """Bad input or a failed build step; the message says what to do."""


def _files(root: Path, skip_dirs: frozenset[str] = CODE_SKIP_DIRS) -> list[tuple[str, Path]]:
    """(archive name relative to root, path) of the files under root, sorted by archive name."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip_dirs and not d.endswith(".egg-info")]
        for name in filenames:
            if name in SKIP_FILES or name.endswith(SKIP_SUFFIXES):
                continue
            path = Path(dirpath, name)
            found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def write_zip(dest: Path, entries: list[tuple[str, Path]]) -> None:
    """Write a zip whose bytes depend only on the entries' names and contents.

    Entries go in sorted order with a fixed timestamp, fixed permissions and a fixed compression
    level; directories are not stored (Lambda and zipimport do not need them). Written to a
    temporary file first so an interrupted build never leaves a truncated artifact behind.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for arcname, path in sorted(entries):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so external_attr is read as a file mode
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes(), compresslevel=COMPRESS_LEVEL)
    os.replace(tmp, dest)


def filebase64sha256(path: Path) -> str:
    """The same value as Terraform's filebase64sha256(path)."""
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def function_names(project_root: Path) -> list[str]:
    lambdas = project_root / "lambdas"
    if not lambdas.is_dir():
        return []
    return sorted(
        p.name for p in lambdas.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )


def build_function(project_root: Path, name: str, out_dir: Path) -> Path:
    source = project_root / "lambdas" / name
    entries = _files(source)
    if not entries:
        raise PackageError(f"lambdas/{name}/ holds no code to package: add its handler.py or remove the directory")
    dest = out_dir / "functions" / f"{name}.zip"
    write_zip(dest, entries)
    return dest


def build_core_layer(project_root: Path, out_dir: Path) -> Path:
    source = project_root / "layers" / "core" / "python"
    if not source.is_dir():
        raise PackageError(f"{source} is missing: the core layer's code lives in layers/core/python/")
    dest = out_dir / "layers" / "core.zip"
    write_zip(dest, [(f"python/{name}", path) for name, path in _files(source)])
    return dest


def deps_cache_key(requirements: bytes, platform: str = LAMBDA_PLATFORM) -> str:
    key = hashlib.sha256(requirements)
    key.update(f"\0{platform}\0{LAMBDA_IMPLEMENTATION}\0{LAMBDA_PYTHON_VERSION}".encode())
    return key.hexdigest()[:16]


def _pip_install_for_lambda(requirements: Path, target: Path, platform: str = LAMBDA_PLATFORM) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
        "--platform", platform, "--implementation", LAMBDA_IMPLEMENTATION,
        "--python-version", LAMBDA_PYTHON_VERSION, "--only-binary=:all:", "--no-compile",
        "--target", str(target), "-r", str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1] if lines else "no output")
        raise PackageError(
            f"building the deps layer failed ({reason}). It needs PyPI once (later builds reuse the cache); "
            f"check the network, and that every pin in {requirements} has a "
            f"cp{LAMBDA_PYTHON_VERSION.replace('.', '')} {platform} or pure-Python wheel."
        )


def build_deps_layer(project_root: Path, out_dir: Path, architecture: str = "x86_64") -> Path:
    """Build the deps layer for one function architecture, or reuse the cached build for the same
    requirements and platform."""
    if architecture not in LAMBDA_PLATFORMS:
        raise PackageError(f"unknown architecture {architecture!r}: use one of {', '.join(LAMBDA_PLATFORMS)}")
    platform = LAMBDA_PLATFORMS[architecture]
    requirements = project_root / "layers" / "deps" / "requirements.txt"
    if not requirements.is_file():
        raise PackageError(f"{requirements} is missing: run `make lock` to pin the deps layer")
    cached = out_dir / ".cache" / f"deps-{deps_cache_key(requirements.read_bytes(), platform)}.zip"
    if not cached.is_file():
        with tempfile.TemporaryDirectory(prefix="paystream-deps-") as tmp:
            target = Path(tmp, "python")
            _pip_install_for_lambda(requirements, target, platform)
            # Console scripts carry this machine's interpreter path in their shebang and are
            # useless in a layer.
            shutil.rmtree(target / "bin", ignore_errors=True)
            write_zip(cached, [(f"python/{name}", path) for name, path in _files(target, DEPS_SKIP_DIRS)])
    dest = out_dir / "layers" / DEPS_LAYER_NAMES[architecture]
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, dest)
    return dest


def build(out_dir: Path, project_root: Path = PROJECT_ROOT, architectures: tuple[str, ...] = ("x86_64",)) -> dict:
    """Build every artifact into out_dir (a deps layer per function architecture asked for) and write
    out_dir/manifest.json; return the manifest."""
    out_dir = Path(out_dir)
    project_root = Path(project_root)
    names = function_names(project_root)
    artifacts = [build_function(project_root, name, out_dir) for name in names]
    # A function whose directory is gone must not leave its old zip for Terraform to pick up.
    for stale in (out_dir / "functions").glob("*.zip"):
        if stale.stem not in names:
            stale.unlink()
    artifacts.append(build_core_layer(project_root, out_dir))
    artifacts += [build_deps_layer(project_root, out_dir, architecture) for architecture in dict.fromkeys(architectures)]
    manifest = {
        "artifacts": {
            path.relative_to(out_dir).as_posix(): {"filebase64sha256": filebase64sha256(path), "size": path.stat().st_size}
            for path in artifacts
        }
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev package", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build", help="output directory (default: build/)")
    parser.add_argument("--project-root", type=Path, default=PROJECT_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--architecture", action="append", choices=sorted(LAMBDA_PLATFORMS), default=None,
                        help="function architecture to build the deps layer for (repeatable; default x86_64)")
    args = parser.parse_args(argv)
    try:
        manifest = build(args.out, args.project_root, tuple(args.architecture or ("x86_64",)))
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    for name, info in manifest["artifacts"].items():
        print(f"{args.out / name}  {info['size']:>10} bytes  {info['filebase64sha256']}")
    return 0
