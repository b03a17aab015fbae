"""Circuit breaker around the payment provider, shared by every instance through an injected store.

States: closed → open after `failure_threshold` consecutive failures within `window_seconds` (the first
failure of a streak starts the window; a failure after it starts a new streak); open → half_open after
`cooldown_seconds`, when exactly one caller claims the probe; the probe's success closes the breaker,
its failure opens it again for a new cooldown. A probe that never reports (its Lambda timed out) can be
claimed again after `probe_timeout_seconds`.

Callers count as failures only `unavailable` provider errors (connection error, timeout, 5xx); any
other answer from the provider, a card decline included, proves it is up and counts as a success.

Every change is a compare-and-set on the stored state's version, so concurrent instances agree: only
the writer that wins a transition reports it through `on_transition(old, new, reason)`.

Cost: `allow()` on a closed breaker reads the store once, or not at all while a closed state read less
than `closed_cache_seconds` ago is trusted (another instance may have opened it meanwhile; this one then
notices on its next read or failure). `record_success` writes only when there are failures to reset.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerState:
    state: str = CLOSED
    failures: int = 0
    window_started_at: float = 0.0
    open_until: float = 0.0
    probe_id: str | None = None
    probe_expires_at: float = 0.0
    version: int = 0  # 0: never stored


class BreakerStore(Protocol):
    def load(self, name: str) -> BreakerState:
        """The stored state, or BreakerState() (version 0) when there is none."""

    def save(self, name: str, state: BreakerState, expected_version: int) -> bool:
        """Store `state` (its own version ignored) with version expected_version + 1 if the stored version is still
        expected_version (0: nothing stored); False when another writer got there first."""


@dataclass(frozen=True)
class Permit:
    """Permission for one provider call; hand it back to record_success / record_failure."""

    seen: BreakerState
    probe_id: str | None = None

    @property
    def is_probe(self) -> bool:
        return self.probe_id is not None


Transition = Callable[[str, str, str], None]

MAX_ATTEMPTS = 10  # compare-and-set retries under contention; each retry re-reads a newer state


class CircuitBreaker:
    def __init__(self, name: str, store: BreakerStore, *, failure_threshold: int = 5, window_seconds: float = 60,
                 cooldown_seconds: float = 30, probe_timeout_seconds: float | None = None,
                 closed_cache_seconds: float = 0, on_transition: Transition | None = None,
                 clock: Callable[[], float] = time.time):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self._store = store
        self._threshold = failure_threshold
        self._window = window_seconds
        self._cooldown = cooldown_seconds
        self._probe_timeout = probe_timeout_seconds if probe_timeout_seconds is not None else cooldown_seconds
        self._cache_seconds = closed_cache_seconds
        self._on_transition = on_transition
        self._clock = clock
        self._cached: tuple[BreakerState, float] | None = None

    def current(self) -> BreakerState:
        return self._load()

    def allow(self) -> Permit | None:
        """A permit to call the provider, or None while the breaker is open (park the payment)."""
        now = self._clock()
        if self._cached and self._cached[0].state == CLOSED and now - self._cached[1] < self._cache_seconds:
            return Permit(self._cached[0])
        for _ in range(MAX_ATTEMPTS):
            seen = self._load()
            if seen.state == CLOSED:
                return Permit(seen)
            probe_due = now >= seen.open_until if seen.state == OPEN else now >= seen.probe_expires_at
            if not probe_due:
                return None
            probe_id = uuid.uuid4().hex
            claimed = dataclasses.replace(seen, state=HALF_OPEN, probe_id=probe_id,
                                          probe_expires_at=now + self._probe_timeout)
            if self._save(seen, claimed):
                if seen.state == OPEN:
                    self._report(OPEN, HALF_OPEN, "cooldown elapsed: letting one probe request through")
                return Permit(claimed, probe_id)
        return None  # lost every race for the probe: someone else is probing

    def record_success(self, permit: Permit) -> None:
        if not permit.is_probe and permit.seen.failures == 0:
            return  # the common case: nothing to reset, no write
        for _ in range(MAX_ATTEMPTS):
            seen = self._load()
            if permit.is_probe:
                if seen.state != HALF_OPEN or seen.probe_id != permit.probe_id:
                    return  # our probe expired and another caller owns the breaker's fate now
                if self._save(seen, BreakerState()):
                    self._report(HALF_OPEN, CLOSED, "probe succeeded")
                    return
            else:
                if seen.state != CLOSED or seen.failures == 0:
                    return  # only a probe closes an open breaker
                if self._save(seen, BreakerState()):
                    return

    def record_failure(self, permit: Permit) -> None:
        """Record an `unavailable` failure of the call this permit allowed."""
        for _ in range(MAX_ATTEMPTS):
            now = self._clock()
            seen = self._load()
            if permit.is_probe:
                if seen.state != HALF_OPEN or seen.probe_id != permit.probe_id:
                    return
                reopened = BreakerState(state=OPEN, open_until=now + self._cooldown)
                if self._save(seen, reopened):
                    self._report(HALF_OPEN, OPEN, f"probe failed: open for {self._cooldown:g} s more")
                    return
                continue
            if seen.state != CLOSED:
                return  # already open or probing: this late failure changes nothing
            in_window = seen.failures > 0 and now - seen.window_started_at <= self._window
            failures = seen.failures + 1 if in_window else 1
            window_started_at = seen.window_started_at if in_window else now
            if failures >= self._threshold:
                new = BreakerState(state=OPEN, open_until=now + self._cooldown)
            else:
                new = dataclasses.replace(seen, failures=failures, window_started_at=window_started_at)
            if self._save(seen, new):
                if new.state == OPEN:
                    self._report(CLOSED, OPEN, f"{failures} consecutive provider failures within "
                                               f"{self._window:g} s: open for {self._cooldown:g} s")
                return

    def _load(self) -> BreakerState:
        state = self._store.load(self.name)
        self._cached = (state, self._clock())
        return state

    def _save(self, seen: BreakerState, new: BreakerState) -> bool:
        if not self._store.save(self.name, new, seen.version):
            return False
        self._cached = (dataclasses.replace(new, version=seen.version + 1), self._clock())
        return True

    def _report(self, old: str, new: str, reason: str) -> None:
        logger.warning("circuit breaker %s: %s -> %s (%s)", self.name, old, new, reason)
        if self._on_transition is None:
            return
        try:
            self._on_transition(old, new, reason)
        except Exception:  # noqa: BLE001 - an alert that fails must not fail the payment; it is logged
            logger.exception("circuit breaker %s: reporting %s -> %s failed", self.name, old, new)
