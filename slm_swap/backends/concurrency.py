"""Hosted calls in parallel inside one process: an adaptive limit on requests in flight, and a model
wrapper that answers a run's rows up front through a thread pool.

`AdaptiveLimit` is additive-increase / multiplicative-decrease, as TCP's congestion window: a 429
halves the requests allowed in flight (not below 1; at most once per window of requests sent under
the same limit, so a burst of 429s from one window halves it once), and every `limit` successes in
a row raise it by one, back up to the start. The hosted client holds one slot per HTTP attempt, so
retries and their waits count against it too.

`ConcurrentModel` wraps a model (the hosted one behind its answer journal): `prepare` answers the
given rows with up to `max_connections` threads, each answer journalled as it arrives; `answer` then
only reads. Rows not prepared (a pytest-xdist worker learns its share as it goes) are answered on
first ask, together with the rows `more_rows` says come next. A `CircuitOpen` stops new requests at
once: the rows not yet asked raise it, as the serial path would on its next row.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from slm_swap.backends.api import Answer, Model
from slm_swap.backends.retry import CircuitOpen
from slm_swap.data.rows import Row
from slm_swap.scoring.outcomes import ErrorClass

Progress = Callable[[int, int, dict[str, int]], None]  # (rows answered, rows asked, errors by class)


class AdaptiveLimit:
    """How many requests may be in flight; thread-safe."""

    def __init__(self, start: int) -> None:
        if start < 1:
            raise ValueError(f"max connections must be at least 1, got {start}")
        self.start = self.limit = self.minimum = start
        self.in_flight = self.max_in_flight = 0
        self._window = 0  # bumped at each decrease: a 429 from an older window does not halve again
        self._successes = 0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[Callable[[ErrorClass | str | None], None]]:
        """Hold one request slot; call the yielded function with the attempt's error class (None: a reply)."""
        with self._cond:
            self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            window = self._window
        outcome: list[ErrorClass | str | None] = [None]
        try:
            yield lambda error_class: outcome.__setitem__(0, error_class)
        finally:
            with self._cond:
                self.in_flight -= 1
                self._settle(outcome[0], window)
                self._cond.notify_all()

    def _settle(self, error_class: ErrorClass | str | None, window: int) -> None:
        if error_class == ErrorClass.RATE_LIMIT:
            self._successes = 0
            if window == self._window:
                self.limit = max(1, self.limit // 2)
                self.minimum = min(self.minimum, self.limit)
                self._window += 1
            return
        if error_class is None:
            self._successes += 1
            if self._successes >= self.limit and self.limit < self.start:
                self.limit += 1
                self._successes = 0

    def describe(self) -> dict[str, int]:
        with self._cond:
            return {"start": self.start, "minimum": self.minimum, "final": self.limit, "max_in_flight": self.max_in_flight}


class Unlimited:
    """The serial path's gate: every attempt goes at once (one row at a time asks one at a time)."""

    @contextmanager
    def slot(self) -> Iterator[Callable[[ErrorClass | str | None], None]]:
        yield lambda error_class: None


class ConcurrentModel:
    """A model whose rows are answered up front, `max_connections` at a time."""

    def __init__(
        self,
        inner: Model,
        limit: AdaptiveLimit,
        *,
        more_rows: Callable[[], Sequence[Row]] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.limit = limit
        self.more_rows = more_rows
        self.progress = progress
        self._answers: dict[tuple[str, str], Answer | BaseException] = {}
        self._lock = threading.Lock()
        self._stopped: CircuitOpen | None = None

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "concurrency": self.limit.describe()}

    def prepare(self, rows: Sequence[Row]) -> None:
        self.inner.prepare(rows)
        self.answer_all(rows)

    def answer(self, row: Row) -> Answer:
        if (row.track, row.id) not in self._answers:
            following = list(self.more_rows()) if self.more_rows else []
            self.answer_all([row, *following])
        found = self._answers[(row.track, row.id)]
        if isinstance(found, BaseException):
            raise found
        return found

    def close(self) -> None:
        self.inner.close()

    def answer_all(self, rows: Sequence[Row]) -> None:
        todo = list({(row.track, row.id): row for row in rows if (row.track, row.id) not in self._answers}.values())
        if not todo:
            return
        errors: Counter[str] = Counter()
        done = [0]

        def one(row: Row) -> None:
            result = self._ask(row)
            with self._lock:
                self._answers[(row.track, row.id)] = result
                done[0] += 1
                if isinstance(result, Answer) and result.error_class is not None:
                    errors[str(result.error_class)] += 1
                if self.progress is not None:
                    self.progress(done[0], len(todo), dict(errors))

        workers = min(self.limit.start, len(todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hosted") as pool:
            list(pool.map(one, todo))

    def _ask(self, row: Row) -> Answer | BaseException:
        if self._stopped is not None:
            return self._stopped  # the circuit is open: no new request
        try:
            return self.inner.answer(row)
        except CircuitOpen as exc:
            self._stopped = exc
            return exc
        except Exception as exc:  # handed to the row's own test, as the serial path would raise it there
            return exc
