"""Hosted calls in parallel inside one process: an adaptive limit on requests in flight, the threads that send
calls through it (`ConcurrentCalls`, the one concurrency path of every track), and a model wrapper that answers a
run's rows up front through them.

`AdaptiveLimit` is additive-increase / multiplicative-decrease, as TCP's congestion window: a 429
halves the requests allowed in flight (not below 1; at most once per window of requests sent under
the same limit, so a burst of 429s from one window halves it once), and every `limit` successes in
a row raise it by one, back up to the start. The hosted client holds one slot per HTTP attempt, so
retries and their waits count against it too.

`ConcurrentCalls` sends calls through up to `limit.start` threads: submitted one by one (`ConcurrentModel`'s rows)
or mapped over a batch in order (the agent track's step: `slm_swap.tracks.agent.run.policy`).

`ConcurrentModel` wraps a model (the hosted one behind its answer journal): `prepare` sends the
given rows' requests, in order, through up to `max_connections` threads and returns at once, each
answer journalled as it arrives; `answer` waits for its own row only, so the first rows are scored
while later ones are still in flight. Rows not prepared (a pytest-xdist worker learns its share as
it goes) are sent on first ask, together with the rows `more_rows` says come next. A `CircuitOpen`
stops new requests at once: the rows not yet asked raise it, as the serial path would on its next row. So does a
`HarnessError` (`api.answer_row`: the harness itself failed on a row twice).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from slm_swap.backends.api import Answer, HarnessError, Model, answer_row
from slm_swap.backends.retry import CircuitOpen
from slm_swap.data.rows import DatasetError, Row
from slm_swap.scoring.outcomes import ErrorClass

Progress = Callable[[int, int, dict[str, int]], None]  # (rows answered, rows asked, errors by class)
Item = TypeVar("Item")
Result = TypeVar("Result")


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


class ConcurrentCalls:
    """Calls sent through up to `limit.start` threads, started on the first call; the model called holds one slot of
    `limit` per HTTP attempt (the hosted client's gate), so 429s narrow what is in flight whichever track asks."""

    def __init__(self, limit: AdaptiveLimit, thread_name_prefix: str) -> None:
        self.limit = limit
        self.thread_name_prefix = thread_name_prefix
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, call: Callable[[Item], Result], item: Item) -> Future[Result]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.limit.start, thread_name_prefix=self.thread_name_prefix)
        return self._pool.submit(call, item)

    def map(self, call: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
        """`call` on every item at once, the results in the items' order."""
        return [future.result() for future in [self.submit(call, item) for item in items]]

    def describe(self) -> dict[str, int]:
        return self.limit.describe()

    def close(self) -> None:
        """Calls not yet started are dropped (a run stopped early); those in flight finish."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class ConcurrentModel:
    """A model whose rows are asked up front, `max_connections` at a time, and read as they arrive."""

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
        self.calls = ConcurrentCalls(limit, thread_name_prefix="hosted")
        self.more_rows = more_rows
        self.progress = progress
        self._pending: dict[tuple[str, str], Future[Answer | BaseException]] = {}
        self._errors: Counter[str] = Counter()
        self._done = 0
        self._lock = threading.Lock()
        self._stopped: CircuitOpen | HarnessError | None = None

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "concurrency": self.calls.describe()}

    def prepare(self, rows: Sequence[Row]) -> None:
        """Send the rows' requests and return at once: each row's test waits for its own answer only."""
        self.inner.prepare(rows)
        self.submit(rows)

    def answer(self, row: Row) -> Answer:
        if (row.track, row.id) not in self._pending:
            following = list(self.more_rows()) if self.more_rows else []
            self.submit([row, *following])
        found = self._pending[(row.track, row.id)].result()
        self._report()
        if isinstance(found, BaseException):
            raise found
        return found

    def close(self) -> None:
        """Requests not yet sent are dropped (a run stopped early); those in flight finish and are journalled."""
        self.calls.close()
        self.inner.close()

    def submit(self, rows: Sequence[Row]) -> None:
        """Queue the rows not asked yet, in order; up to `limit.start` threads send them."""
        todo = list({(row.track, row.id): row for row in rows if (row.track, row.id) not in self._pending}.values())
        if not todo:
            return
        for row in todo:
            self._pending[(row.track, row.id)] = self.calls.submit(self._ask, row)
        if self.progress is not None:
            self.progress(0, len(self._pending), {})

    def _report(self) -> None:
        """Progress, from the thread that runs the tests (never in the middle of pytest's own output)."""
        if self.progress is not None:
            with self._lock:
                done, errors = self._done, dict(self._errors)
            self.progress(done, len(self._pending), errors)

    def _ask(self, row: Row) -> Answer | BaseException:
        result = self._call(row)
        with self._lock:
            self._done += 1
            if isinstance(result, Answer) and result.error_class is not None:
                self._errors[str(result.error_class)] += 1
        return result

    def _call(self, row: Row) -> Answer | BaseException:
        if self._stopped is not None:
            return self._stopped  # the circuit is open, or the harness failed: no new request
        try:
            return answer_row(self.inner, row)
        except (CircuitOpen, HarnessError) as exc:  # handed to the row's own test, which stops the run
            self._stopped = exc
            return exc
        except DatasetError as exc:  # bad input for this row: its test stops the run naming it
            return exc
