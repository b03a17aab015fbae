"""The stack a `make bench` module measures: one already running, or its own on free ports.

    with bench_stack("bench_fraud", outputs_path, own_stack) as outputs_path: ...

`own_stack`: `python -m localdev up --ports auto` in a temporary state directory, `down` afterwards whatever
happens. Otherwise the stack whose outputs.json is given (default: `make local-up`'s `.local/outputs.json`).
Raises NoStack, whose message is the one line to print, when there is none.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUTS = PROJECT_ROOT / ".local" / "outputs.json"


class NoStack(Exception):
    """No stack to measure; the message says why and what to do."""


@contextmanager
def bench_stack(name: str, outputs_path: Path = DEFAULT_OUTPUTS, own_stack: bool = False) -> Iterator[Path]:
    """The outputs.json of the stack to measure (see the module's docstring)."""
    if not own_stack:
        if not outputs_path.is_file():
            raise NoStack(f"{name}: no stack outputs at {outputs_path}: run make local-up or pass --own-stack")
        yield outputs_path
        return
    with tempfile.TemporaryDirectory(prefix=f"paystream-{name}-") as tmp:
        state_dir = Path(tmp) / "stack"
        up = subprocess.run([sys.executable, "-m", "localdev", "up", "--state-dir", str(state_dir), "--ports", "auto"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
        try:
            if up.returncode != 0:
                raise NoStack(f"{name}: local-up failed: {(up.stderr.strip().splitlines() or ['no output'])[-1]}")
            yield state_dir / "outputs.json"
        finally:
            subprocess.run([sys.executable, "-m", "localdev", "down", "--state-dir", str(state_dir)],
                           cwd=PROJECT_ROOT, capture_output=True)
