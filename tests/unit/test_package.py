"""Deterministic packaging (localdev.package) against a throwaway project tree.

Most tests replace pip with a fake that "installs" a fixed tree, so they run offline and fast.
The tests marked `integration` run the real pip against PyPI for the Lambda platform.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest

from localdev import package

FAKE_REQUIREMENTS = "six==1.17.0\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture()
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    _write(root / "lambdas" / "alpha" / "handler.py", "def handler(event, context):\n    return 'alpha'\n")
    _write(root / "lambdas" / "alpha" / "helpers" / "util.py", "X = 1\n")
    _write(root / "lambdas" / "beta" / "handler.py", "def handler(event, context):\n    return 'beta'\n")
    _write(root / "layers" / "core" / "python" / "paystream" / "__init__.py", "")
    _write(root / "layers" / "core" / "python" / "paystream" / "domain.py", "STATES = ()\n")
    _write(root / "layers" / "deps" / "requirements.txt", FAKE_REQUIREMENTS)
    return root


class FakePip:
    """Stands in for `subprocess.run([... pip install ... --target T ...])`: writes a fixed tree into T."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.calls.append(list(command))
        target = Path(command[command.index("--target") + 1])
        _write(target / "six.py", "# six\n")
        _write(target / "six-1.17.0.dist-info" / "METADATA", "Name: six\nVersion: 1.17.0\n")
        _write(target / "bin" / "some-script", "#!/machine/specific/python\n")
        _write(target / "__pycache__" / "six.cpython-312.pyc", "bytecode")
        return subprocess.CompletedProcess(command, 0, "", "")


@pytest.fixture()
def fake_pip(monkeypatch) -> FakePip:
    fake = FakePip()
    monkeypatch.setattr(package.subprocess, "run", fake)
    return fake


def _tree_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return zf.namelist()


def test_two_builds_are_byte_identical(project, tmp_path, fake_pip):
    package.build(tmp_path / "out1", project)
    package.build(tmp_path / "out2", project)
    first, second = _tree_bytes(tmp_path / "out1"), _tree_bytes(tmp_path / "out2")
    assert "functions/alpha.zip" in first and "layers/deps.zip" in first
    assert first == second
    assert len(fake_pip.calls) == 2  # separate out dirs, separate caches: both really built


def test_file_times_and_modes_change_nothing(project, tmp_path, fake_pip):
    out = tmp_path / "out"
    before = package.build(out, project)
    later = 2_000_000_000
    for path in project.rglob("*"):
        os.utime(path, (later, later))
    (project / "lambdas" / "alpha" / "handler.py").chmod(0o755)
    assert package.build(out, project) == before


def test_changing_one_function_changes_only_its_zip(project, tmp_path, fake_pip):
    out = tmp_path / "out"
    before = package.build(out, project)["artifacts"]
    _write(project / "lambdas" / "beta" / "handler.py", "def handler(event, context):\n    return 'beta v2'\n")
    after = package.build(out, project)["artifacts"]
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"functions/beta.zip"}


def test_function_zip_holds_code_at_root_without_bytecode_or_tests(project, tmp_path, fake_pip):
    alpha = project / "lambdas" / "alpha"
    _write(alpha / "__pycache__" / "handler.cpython-311.pyc", "bytecode")
    _write(alpha / "helpers" / "stray.pyc", "bytecode")
    _write(alpha / "tests" / "test_handler.py", "def test(): pass\n")
    package.build(tmp_path / "out", project)
    assert _names(tmp_path / "out" / "functions" / "alpha.zip") == ["handler.py", "helpers/util.py"]


def test_zip_entries_have_fixed_time_mode_and_order(project, tmp_path, fake_pip):
    (project / "lambdas" / "alpha" / "handler.py").chmod(0o700)
    package.build(tmp_path / "out", project)
    for zip_path in (tmp_path / "out").rglob("*.zip"):
        with zipfile.ZipFile(zip_path) as zf:
            infos = zf.infolist()
            assert [i.filename for i in infos] == sorted(i.filename for i in infos), zip_path
            for info in infos:
                assert not info.is_dir(), info.filename
                assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
                assert info.create_system == 3
                assert info.external_attr >> 16 == 0o100644, info.filename
                assert info.compress_type == zipfile.ZIP_DEFLATED


def test_core_layer_is_under_python(project, tmp_path, fake_pip):
    _write(project / "layers" / "core" / "python" / "paystream" / "__pycache__" / "domain.cpython-311.pyc", "x")
    package.build(tmp_path / "out", project)
    assert _names(tmp_path / "out" / "layers" / "core.zip") == ["python/paystream/__init__.py", "python/paystream/domain.py"]


def test_manifest_has_terraform_hash_and_size_of_each_artifact(project, tmp_path, fake_pip):
    out = tmp_path / "out"
    manifest = package.build(out, project)
    assert set(manifest["artifacts"]) == {"functions/alpha.zip", "functions/beta.zip", "layers/core.zip", "layers/deps.zip"}
    for name, info in manifest["artifacts"].items():
        data = (out / name).read_bytes()
        assert info == {"filebase64sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(), "size": len(data)}
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_no_functions_yet_builds_the_layers(project, tmp_path, fake_pip):
    for name in ("alpha", "beta"):
        for path in sorted((project / "lambdas" / name).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (project / "lambdas" / name).rmdir()
    assert set(package.build(tmp_path / "out", project)["artifacts"]) == {"layers/core.zip", "layers/deps.zip"}
    (project / "lambdas").rmdir()
    assert set(package.build(tmp_path / "out2", project)["artifacts"]) == {"layers/core.zip", "layers/deps.zip"}


def test_removed_function_leaves_no_stale_zip(project, tmp_path, fake_pip):
    out = tmp_path / "out"
    package.build(out, project)
    (project / "lambdas" / "beta" / "handler.py").unlink()
    (project / "lambdas" / "beta").rmdir()
    package.build(out, project)
    assert sorted(p.name for p in (out / "functions").iterdir()) == ["alpha.zip"]


def test_empty_function_directory_is_a_clear_error(project, tmp_path, fake_pip, capsys):
    (project / "lambdas" / "gamma").mkdir()
    assert package.main(["--out", str(tmp_path / "out"), "--project-root", str(project)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "package: lambdas/gamma/ holds no code to package: add its handler.py or remove the directory"


def test_deps_layer_is_built_for_the_lambda_runtime_and_cached(project, tmp_path, fake_pip):
    out = tmp_path / "out"
    package.build(out, project)
    (command,) = fake_pip.calls
    flags = " ".join(command)
    for flag in ("--platform manylinux2014_x86_64", "--implementation cp", "--python-version 3.12",
                 "--only-binary=:all:", "--no-compile", "-r " + str(project / "layers" / "deps" / "requirements.txt")):
        assert flag in flags
    # Console scripts (machine-specific shebang) and bytecode stay out of the layer.
    assert _names(out / "layers" / "deps.zip") == ["python/six-1.17.0.dist-info/METADATA", "python/six.py"]
    cached = list((out / ".cache").glob("deps-*.zip"))
    assert len(cached) == 1 and cached[0].read_bytes() == (out / "layers" / "deps.zip").read_bytes()

    package.build(out, project)
    assert len(fake_pip.calls) == 1, "unchanged requirements must reuse the cached layer"

    _write(project / "layers" / "deps" / "requirements.txt", FAKE_REQUIREMENTS + "idna==3.20\n")
    package.build(out, project)
    assert len(fake_pip.calls) == 2, "changed requirements must rebuild the layer"


def test_deps_build_failure_is_one_clear_message(project, tmp_path, monkeypatch, capsys):
    # A closed local port as the package index: pip fails at once, with or without a network.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no extra indexes or local wheel dirs from pip.conf
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    assert package.main(["--out", str(tmp_path / "out"), "--project-root", str(project)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("package: building the deps layer failed (")
    assert "check the network" in err
    assert not list((tmp_path / "out").glob(".cache/deps-*.zip")), "a failed build must not be cached"


@pytest.mark.integration
def test_real_deps_layer_is_reproducible(project, tmp_path):
    """Real pip, one tiny pure wheel: two uncached builds give the same bytes."""
    first = package.build(tmp_path / "out1", project)["artifacts"]["layers/deps.zip"]
    second = package.build(tmp_path / "out2", project)["artifacts"]["layers/deps.zip"]
    assert first == second
    names = _names(tmp_path / "out1" / "layers" / "deps.zip")
    assert "python/six.py" in names
    assert "python/six-1.17.0.dist-info/METADATA" in names


@pytest.mark.integration
def test_real_deps_layer_has_python312_manylinux_binaries(project, tmp_path):
    """A compiled package must come as the cp312 manylinux wheel, not this interpreter's build."""
    _write(project / "layers" / "deps" / "requirements.txt", "pydantic-core==2.50.4\ntyping-extensions==4.16.0\n")
    package.build(tmp_path / "out", project)
    with zipfile.ZipFile(tmp_path / "out" / "layers" / "deps.zip") as zf:
        names = zf.namelist()
        extensions = [n for n in names if n.startswith("python/pydantic_core/") and n.endswith(".so")]
        assert extensions == ["python/pydantic_core/_pydantic_core.cpython-312-x86_64-linux-gnu.so"]
        wheel = zf.read("python/pydantic_core-2.50.4.dist-info/WHEEL").decode()
    assert "Tag: cp312-cp312-manylinux" in wheel
    assert not [n for n in names if n.endswith(".pyc") or "/__pycache__/" in n]


def test_an_arm64_deps_layer_is_built_from_aarch64_wheels_beside_the_x86_64_one(project, tmp_path, fake_pip):
    manifest = package.build(tmp_path / "out", project, ("x86_64", "arm64"))
    platforms = [call[call.index("--platform") + 1] for call in fake_pip.calls]
    assert platforms == ["manylinux2014_x86_64", "manylinux2014_aarch64"]
    assert {"layers/deps.zip", "layers/deps-arm64.zip"} <= set(manifest["artifacts"])
    package.build(tmp_path / "out", project, ("arm64",))  # cached per platform: no new pip run
    assert len(fake_pip.calls) == 2
    with pytest.raises(package.PackageError, match="unknown architecture 'sparc'"):
        package.build(tmp_path / "out", project, ("sparc",))
