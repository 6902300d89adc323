"""Bounded retries for hosted calls: which failures to retry, how long to wait, when to give up.

Pure policy, no I/O: the hosted client asks `next_wait` after each failed attempt and
sleeps itself, and reports each row's outcome to a `CircuitBreaker`, which stops the
run once the same failure keeps repeating across rows instead of retrying for hours.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from slm_swap.scoring.outcomes import ErrorClass

# transient failures, worth a retry; the other classes are final at the first attempt
RETRYABLE = frozenset({ErrorClass.RATE_LIMIT, ErrorClass.SERVER, ErrorClass.TIMEOUT})


class CircuitOpen(RuntimeError):
    """Too many rows in a row failed the same way; the run should stop instead of grinding on."""


@dataclass(frozen=True)
class RetryPolicy:
    """How one row retries. Waits grow as base * 2**retry up to `max_wait_s`, with jitter."""

    max_retries: int = 5
    row_budget_s: float = 120.0
    base_wait_s: float = 0.5
    max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.row_budget_s <= 0 or self.base_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError("row_budget_s must be > 0 and the waits >= 0")

    def next_wait(self, retries_done: int, retry_after_s: float | None, remaining_s: float, rng: random.Random) -> float | None:
        """Seconds to wait before the next attempt, or None when the row must give up now.

        A server-given wait is honoured as a floor, never shortened: retrying early only
        earns another 429. Jitter goes on top, so that parallel workers told the same
        wait do not all return in the same millisecond. When the wait would not leave
        time for an attempt inside the row's budget, give up at once rather than sleep
        (a `retry-after: 600` must not hold a row for ten minutes).
        """
        if retries_done >= self.max_retries:
            return None
        backoff = min(self.max_wait_s, self.base_wait_s * 2**retries_done)
        if retry_after_s is None:
            wait = backoff / 2 + rng.uniform(0, backoff / 2)
        else:
            wait = retry_after_s + rng.uniform(0, min(backoff, retry_after_s) * 0.1)
        if wait >= remaining_s:
            return None
        return wait


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a 429/503 asks for, in seconds: `retry-after-ms`, else `Retry-After` (seconds or HTTP date)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    millis = _non_negative_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_float(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _non_negative_float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    # "nan" and "inf" parse as floats but are no wait anyone can honour.
    if number is None or number != number or number < 0 or number == float("inf"):
        return None
    return number


class CircuitBreaker:
    """Counts consecutive rows that ended with the same error class; opens at `threshold`.

    Shared by every thread of one model object; each xdist worker has its own.
    """

    def __init__(self, threshold: int) -> None:
        if threshold < 1:
            raise ValueError(f"circuit breaker threshold must be >= 1, got {threshold}")
        self.threshold = threshold
        self._lock = threading.Lock()
        self._last_class: str | None = None
        self._count = 0
        self._last_error = ""

    def record(self, error_class: ErrorClass | str | None, error: str | None = None) -> None:
        """Record one finished row: its error class, or None for a reply."""
        with self._lock:
            if error_class is None:
                self._last_class, self._count = None, 0
                return
            error_class = str(error_class)  # its value, as messages name it
            if error_class == self._last_class:
                self._count += 1
            else:
                self._last_class, self._count = error_class, 1
            self._last_error = error or ""

    def check(self) -> None:
        """Raise CircuitOpen when the last `threshold` rows all failed the same way."""
        with self._lock:
            if self._count >= self.threshold:
                raise CircuitOpen(
                    f"stopping: the last {self._count} rows all failed with error class {self._last_class!r} "
                    f"(last error: {self._last_error}); fix the endpoint or raise the threshold, then resume"
                )
