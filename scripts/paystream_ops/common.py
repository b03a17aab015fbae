"""What every `paystream-ops` command shares: its errors and exit codes, argument types, the context a
command runs in (environment, console, confirmation, --yes/--dry-run) and progress bars.

A command module (dlq, replay, gaps, rebuild, reconcile) has `register(commands, common)`, which adds its
parser(s) under the top-level subparsers with `set_defaults(handler=...)`; a handler takes
`(args, Context)` and returns the exit code. Errors raised as `Refused` exit 2, `OperationFailed` exit 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from paystream_ops.environment import Environment

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_FOUND = 0, 1, 2, 3
EXIT_CODES = """exit codes:
  0  done
  1  the operation failed or was not confirmed (one line on stderr says what is left and what to do)
  2  bad usage or environment: unknown name, outputs missing, no confirmation possible without --yes
  3  found something: `dlq list` when any DLQ holds messages, `gaps` when there are gaps, `reconcile`
     when there are mismatches, `rebuild --dry-run` when projections differ (a scheduled check can page on it)"""


class OperationFailed(Exception):
    """The command ran but did not finish its work (exit 1); the message says what is left and what to do."""

    def __init__(self, message: str, moved: int = 0):
        super().__init__(message)
        self.moved = moved


class Refused(Exception):
    """The command cannot be applied as asked (exit 2): unknown name, no confirmation, wrong kind of target."""


@dataclass
class Context:
    environment: Environment
    console: Any  # rich.console.Console
    yes: bool
    dry_run: bool
    now: datetime

    def confirm(self, prompt: str, expected: str) -> bool:
        """True with --yes; else asks on a terminal for `expected` to be typed (Refused where no one can answer)."""
        if self.yes:
            return True
        if not sys.stdin.isatty():
            raise Refused("confirmation needed and stdin is not a terminal: pass --yes (or --dry-run first)")
        try:
            return input(prompt).strip() == expected
        except EOFError:
            return False


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> datetime:
    """An instant as ISO 8601 (a date, or a date and time; UTC when no offset is given), `now`, or a duration
    ago: `90s`, `15m`, `2h`, `3d`."""
    text = text.strip()
    if text == "now":
        return now()
    relative = _RELATIVE.match(text)
    if relative:
        return now() - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: use ISO 8601 (2026-11-22T03:00:00Z), "
                                         "'now' or a duration ago (90s, 15m, 2h, 3d)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta:
    """A duration: `90s`, `15m`, `2h`, `3d`."""
    relative = _RELATIVE.match(text.strip())
    if not relative:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use 90s, 15m, 2h or 3d")
    return timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})


def iso(value: datetime) -> str:
    """The platform's timestamp format (models.utc_now): ISO 8601 UTC with milliseconds and Z."""
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def progress(total: int | None, description: str):
    """A rich progress bar on stderr (counts, elapsed) and its task: `with bar: bar.advance(task, n)`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True))
    return bar, bar.add_task(description, total=total)
