"""Types shared by the data plane's parts (function workers, event source pollers, HTTP front ends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class InvokeResult:
    """Outcome of one synchronous invocation, as the Lambda service reports it.

    ok=False covers handler exceptions (error_type from the runtime, e.g. "ValueError"), timeouts
    ("Sandbox.Timedout") and crashes of the worker process ("Runtime.ExitError"); payload is then the
    error document the Invoke API would return.
    """

    ok: bool
    payload: bytes
    error_type: str | None = None
    duration_ms: float = 0.0


# What event source pollers need from the function side: invoke(function_name_or_arn, payload) -> result.
Invoke = Callable[[str, bytes], InvokeResult]
