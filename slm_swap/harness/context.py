"""One pytest run's shared state: its settings, its environment and the cases each track selected.

The plugin builds it once per process in `pytest_configure`; the fixtures (`conftest.py`) and the run
writer ask `run_context(config)` for it instead of reaching into the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from slm_swap.data.rows import Row, load_rows
from slm_swap.harness.environ import HiddenEnviron
from slm_swap.harness.settings import EvalSettings


@dataclass
class RunContext:
    settings: EvalSettings
    environ: HiddenEnviron
    rows: dict[str, list[Row]] = field(default_factory=dict)  # track -> selected rows, loaded once
    broken: dict[str, str] = field(default_factory=dict)  # track -> why its dataset could not be read
    cases: dict[str, list[Any]] = field(default_factory=dict)  # track -> its selected cases, for tracks whose cases are not rows
    excluded: dict[str, str] = field(default_factory=dict)  # case id -> why its ground truth cannot be scored

    def selected_rows(self, track: str) -> list[Row]:
        """The rows of a track after --limit; loaded once per process."""
        if track not in self.rows:
            settings = self.settings
            rows = load_rows(settings.dataset_path(track), track, settings.split_name())
            self.rows[track] = rows[: settings.limit] if settings.limit else rows
        return self.rows[track]

    def rows_by_id(self, track: str) -> Mapping[str, Row]:
        return {row.id: row for row in self.selected_rows(track)}


CONTEXT_KEY = pytest.StashKey[RunContext]()


def run_context(config: pytest.Config) -> RunContext:
    return config.stash[CONTEXT_KEY]
