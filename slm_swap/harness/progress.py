"""Progress of a long step inside a pytest run, printed past pytest's output capture.

The local SLM generates every selected row up front, in the first row's setup: minutes on a CPU
during which pytest itself prints nothing. The hosted model sends its rows' requests up front too,
through its connections, and its rows' tests report as they read their answers. `RowProgress` writes
one line as rows finish (at most one a second for the hosted model's row-by-row reports), on a line
of its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

import pytest


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
        self.min_interval_s = min_interval_s
        self.stream = stream
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
