"""Function code and layers, fetched from the emulator and unpacked once per sha256 under `<state>/runtime/`."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import threading
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path
from urllib.parse import quote

from localdev.dataplane.discovery import FunctionSpec, LayerRef

SITE_PACKAGES = sysconfig.get_paths()["purelib"]
_ABI_TAG = re.compile(r"\.cpython-(\d+)[a-z]*-[^/]*\.so$")
_THIS_ABI = f"{sys.version_info.major}{sys.version_info.minor}"
# Local URLs only: never let an HTTP(S)_PROXY from the environment intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ArtifactError(Exception):
    """A function's code or layer cannot be made runnable here; the message says what to do."""


def _normalize(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


class ArtifactStore:
    def __init__(self, endpoint: str, region: str, runtime_dir: Path):
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.runtime_dir = Path(runtime_dir)
        self._lock = threading.Lock()

    def task_root(self, fn: FunctionSpec) -> Path:
        url = f"{self.endpoint}/_localdev/lambda/functions/{quote(fn.name)}/code?region={self.region}"
        return self._unpacked("functions", url, fn.code_sha256, f"function {fn.name}")

    def layer_paths(self, layer: LayerRef) -> list[str]:
        """The sys.path entries for one layer, as Lambda adds them after unpacking it into /opt."""
        url = f"{self.endpoint}/_localdev/lambda/layers/{quote(layer.name)}/{layer.version}/content?region={self.region}"
        root = self._unpacked("layers", url, layer.code_sha256, f"layer {layer.arn}")
        python_dir = root / "python"
        if _foreign_abi(python_dir):
            self._check_installed_here(python_dir, layer)
            return [SITE_PACKAGES]
        versioned = python_dir / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
        return [str(p) for p in (versioned, python_dir) if p.is_dir()]

    def _unpacked(self, kind: str, url: str, sha256_b64: str, what: str) -> Path:
        target = self.runtime_dir / kind / base64.urlsafe_b64decode(sha256_b64).hex()
        if target.is_dir():
            return target
        with self._lock:
            if target.is_dir():
                return target
            try:
                with _OPENER.open(url, timeout=60) as resp:
                    data = resp.read()
            except OSError as exc:
                raise ArtifactError(f"cannot fetch the code of {what} from {url}: {exc}") from exc
            actual = base64.b64encode(hashlib.sha256(data).digest()).decode()
            if actual != sha256_b64:
                raise ArtifactError(
                    f"code of {what} from {url} has sha256 {actual}, but Lambda reports CodeSha256 {sha256_b64}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
            try:
                zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)
                os.rename(tmp, target)
            except Exception:
                shutil.rmtree(tmp, ignore_errors=True)
                if not target.is_dir():
                    raise
            return target

    @staticmethod
    def _check_installed_here(python_dir: Path, layer: LayerRef) -> None:
        installed = {
            _normalize(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[SITE_PACKAGES])
        }
        for metadata in sorted(python_dir.rglob("*.dist-info/METADATA")):
            headers = Parser().parsestr(metadata.read_text(encoding="utf-8", errors="replace"), headersonly=True)
            name, wanted = headers["Name"], headers["Version"]
            have = installed.get(_normalize(name or ""))
            if have != wanted:
                here = f"version {have}" if have else "not installed"
                raise ArtifactError(
                    f"layer {layer.arn} is built for another Python (compiled extensions for a CPython ABI other "
                    f"than {_THIS_ABI}), so the data plane runs it with this environment's packages instead; "
                    f"but {name} is {wanted} in the layer and {here} here. Install {name}=={wanted} in this "
                    f"environment (make install) or rebuild the layer for Python {sys.version_info.major}."
                    f"{sys.version_info.minor}."
                )


def _foreign_abi(python_dir: Path) -> bool:
    for so in python_dir.rglob("*.so"):
        match = _ABI_TAG.search(so.name)
        if match and match.group(1) != _THIS_ABI:
            return True
    return False
