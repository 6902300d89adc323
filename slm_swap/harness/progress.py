"""Progress of a long step inside a pytest run, printed past pytest's output capture.

The local SLM generates every selected row up front, in the first row's setup: minutes on a CPU
during which pytest itself prints nothing. `GenerationProgress` writes one line per finished batch.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import pytest


class GenerationProgress:
    """`slm toolcall: 64/200 rows generated, 3.21 rows/s, 20 s`: one line each time the model reports.

    A report of 0 rows done starts the clock (`generating 200 rows`), so the rate leaves model loading out.
    """

    def __init__(self, config: pytest.Config, label: str, stream: TextIO | None = None) -> None:
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.label = label
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if done == 0:
            self.started = time.monotonic()
            line = f"{self.label}: generating {total} rows\n"
        else:
            elapsed = time.monotonic() - self.started
            rate = done / elapsed if elapsed > 0 else 0.0
            line = f"{self.label}: {done}/{total} rows generated, {rate:.2f} rows/s, {elapsed:.0f} s\n"
        if self.capture is None:
            self.write(line)
            return
        with self.capture.global_and_fixture_disabled():
            self.write(line)

    def write(self, line: str) -> None:
        stream = self.stream or sys.stderr  # looked up now: pytest swaps sys.stderr while it captures
        stream.write(line)
        stream.flush()
