"""Progress of a long step inside a pytest run, printed past pytest's output capture.

The local SLM generates every selected row up front, in the first row's setup: minutes on a CPU
during which pytest itself prints nothing. The hosted model sends its rows' requests up front too,
through its connections, and its rows' tests report as they read their answers. `RowProgress` writes
one line as rows finish (at most one a second for the hosted model's row-by-row reports), on a line
of its own; within a long SLM batch, the tokens generated so far (`tokens`); for the agent track, a line per
batched step (`AgentProgress`). Not on a terminal (a log file, CI), the frequent lines (hosted rows, tokens, agent
steps) come at most once every `QUIET_INTERVAL_S` seconds; the first line, each SLM batch and the last always show.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import pytest

from slm_swap.backends.api import Answer, Model
from slm_swap.data.rows import Row

QUIET_INTERVAL_S = 30.0  # not on a terminal: one line of the frequent kinds at most this often
TOKEN_INTERVAL_S = 5.0  # on a terminal: a line on the tokens of a batch at most this often


def on_terminal(stream: TextIO | None) -> bool:
    stream = stream or sys.__stderr__  # the real stderr: pytest swaps sys.stderr while it captures
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # a closed stream
        return False


class RowProgress:
    """`slm toolcall: 64/200 rows generated, 3.21 rows/s, 20 s`: a line each time the model reports.

    A report of 0 rows done starts the clock (`generating 200 rows`), so the rate leaves model loading out;
    otherwise the clock starts at the first report. Errors by class, when given, end the line.
    """

    def __init__(
        self, config: pytest.Config, label: str, verb: str = "generated", min_interval_s: float = 0.0, stream: TextIO | None = None
    ) -> None:
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.terminal = config.pluginmanager.getplugin("terminalreporter")
        self.label, self.verb = label, verb
        self.stream = stream
        self.quiet = not on_terminal(stream)
        self.min_interval_s = max(min_interval_s, QUIET_INTERVAL_S) if self.quiet and min_interval_s else min_interval_s
        self.started: float | None = None
        self.last_line = float("-inf")

    def __call__(self, done: int, total: int, errors: Mapping[str, int] | None = None) -> None:
        now = time.monotonic()
        if done == 0 or self.started is None:
            self.started = now
        if done == 0:
            self.emit(f"{self.label}: {'generating' if self.verb == 'generated' else 'asking for'} {total} rows")
            return
        if done < total and now - self.last_line < self.min_interval_s:
            return
        self.last_line = now
        elapsed = now - self.started
        rate = f"{done / elapsed:.2f} rows/s" if elapsed > 0 else "- rows/s"
        failed = f", errors {' '.join(f'{k}={v}' for k, v in sorted(errors.items()))}" if errors else ""
        self.emit(f"{self.label}: {done}/{total} rows {self.verb}, {rate}, {elapsed:.0f} s{failed}")

    def tokens(self, done: int, total: int, batch: int, generated: int, cap: int) -> None:
        """Within a batch: `slm toolcall: batch of 8 rows (rows 1-8 of 200): 64/128 tokens, 40 s`."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if now - self.last_line < (QUIET_INTERVAL_S if self.quiet else TOKEN_INTERVAL_S):
            return
        self.last_line = now
        rows = f"rows {done + 1}-{done + batch} of {total}"
        self.emit(f"{self.label}: batch of {batch} rows ({rows}): {generated}/{cap} tokens, {now - self.started:.0f} s")

    def emit(self, line: str) -> None:
        if self.capture is None:
            self.write(line)
            return
        with self.capture.global_and_fixture_disabled():
            if self.terminal is not None and self.stream is None:
                self.terminal.ensure_newline()  # hosted rows report between tests: not in the middle of a line of dots
            self.write(line)

    def write(self, line: str) -> None:
        stream = self.stream or sys.stderr  # looked up now: pytest swaps sys.stderr while it captures
        stream.write(line + "\n")
        stream.flush()


class AgentProgress(RowProgress):
    """`slm agent toolcall: step 12, 5 episodes open, 3/10 tasks done, 45 s`, after batched steps."""

    def __init__(self, config: pytest.Config, label: str, stream: TextIO | None = None) -> None:
        super().__init__(config, label, min_interval_s=1.0, stream=stream)

    def step(self, steps: int, active: int, finished: int, total: int) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if finished < total and now - self.last_line < self.min_interval_s:
            return
        self.last_line = now
        self.emit(f"{self.label}: step {steps}, {active} episodes open, {finished}/{total} tasks done, {now - self.started:.0f} s")


class ReportedModel:
    """A model asked one row at a time (the hosted model at `--max-connections 1`): a progress report per row answered,
    as the concurrent path gives (`backends.concurrency.ConcurrentModel`)."""

    def __init__(self, inner: Model, progress: Callable[[int, int, dict[str, int]], None]) -> None:
        self.inner, self.progress = inner, progress
        self.name = inner.name
        self.total = self.done = 0
        self.errors: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def prepare(self, rows: Sequence[Row]) -> None:
        self.inner.prepare(rows)
        self.total = len(rows)
        self.progress(0, self.total, {})

    def answer(self, row: Row) -> Answer:
        answer = self.inner.answer(row)
        self.done += 1
        if answer.error_class is not None:
            self.errors[str(answer.error_class)] = self.errors.get(str(answer.error_class), 0) + 1
        self.progress(self.done, max(self.total, self.done), self.errors)
        return answer

    def close(self) -> None:
        self.inner.close()
