"""One pytest run's shared state: its settings, its environment and the rows each track selected.

The plugin builds it once per process in `pytest_configure`; the fixtures (`conftest.py`) and the run
writer ask `run_context(config)` for it instead of reaching into the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from slm_swap.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.data.rows import Row, load_rows
from slm_swap.harness.environ import HiddenEnviron
from slm_swap.harness.settings import EvalSettings


@dataclass
class RunContext:
    settings: EvalSettings
    environ: HiddenEnviron
    rows: dict[str, list[Row]] = field(default_factory=dict)  # track -> selected rows, loaded once
    broken: dict[str, str] = field(default_factory=dict)  # track -> why its dataset could not be read
    tasks: list[MultiTurnTask] | None = None  # the agent track's selected tasks, loaded once
    excluded: dict[str, str] = field(default_factory=dict)  # agent task id -> why it cannot be scored

    def selected_rows(self, track: str) -> list[Row]:
        """The rows of a track after --limit; loaded once per process."""
        if track not in self.rows:
            settings = self.settings
            rows = load_rows(settings.dataset_path(track), track, settings.split_name())
            self.rows[track] = rows[: settings.limit] if settings.limit else rows
        return self.rows[track]

    def selected_tasks(self, track: str) -> list[MultiTurnTask]:
        """The agent track's tasks after --limit, and (in `excluded`) those whose ground truth cannot be scored."""
        if self.tasks is None:
            # imported here: BFCL's checker is loaded only by runs that collect the agent track
            from slm_swap.agent.scoring import ground_truth_rejection
            from slm_swap.data.bfcl_multi_turn import load_multi_turn
            from slm_swap.data.multi_turn_splits import load_split_tasks

            tasks = load_split_tasks(self.settings.dataset_path(track), load_multi_turn())
            self.tasks = tasks[: self.settings.limit] if self.settings.limit else tasks
            self.excluded = {task.id: reason for task in self.tasks if (reason := ground_truth_rejection(task))}
        return self.tasks

    def rows_by_id(self, track: str) -> Mapping[str, Row]:
        return {row.id: row for row in self.selected_rows(track)}


CONTEXT_KEY = pytest.StashKey[RunContext]()


def run_context(config: pytest.Config) -> RunContext:
    return config.stash[CONTEXT_KEY]
