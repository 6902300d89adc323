"""Which tracks a run evaluates: the row tracks unless told otherwise, the agent track when selected.

`pytest evals --model=X` runs the row tracks (structured, toolcall) in the minutes README promises; the agent track
(hundreds of multi-turn episodes) runs when the command selects it: with `-k` (`-k agent`; any keyword expression
decides for every track, as pytest's own -k does) or by naming its test file or case
(`pytest evals/test_agent.py`). Unselected, its tasks are not even loaded: one case with id `agent-track-not-selected` stands for them
and is deselected, so the run's summary says `1 deselected`. The plugin module imports the hook here, so it is
registered with it, and calls `parametrize_tasks` for the agent track's module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_swap.data.rows import DatasetError
from slm_swap.harness.context import run_context
from slm_swap.tracks import AGENT

BROKEN_ID = "dataset-error"  # the one case of a track whose dataset cannot be read (reported only if it is selected)
UNSELECTED_ID = "agent-track-not-selected"  # the one case of an agent track the command did not select


def agent_selected(config: pytest.Config, module: Path) -> bool:
    """Whether the command selects the agent track, whose cases live in `module`: -k, or the module named."""
    if config.option.keyword:
        return True
    here = config.invocation_params.dir
    return any((here / str(arg).split("::")[0]).resolve() == module.resolve() for arg in config.args)


def parametrize_tasks(metafunc: pytest.Metafunc) -> None:
    """One case per agent task, id the task id; a task whose ground truth cannot be scored is skipped with the reason."""
    if not agent_selected(metafunc.config, metafunc.definition.path):
        metafunc.parametrize("task", [None], ids=[UNSELECTED_ID])
        return
    context = run_context(metafunc.config)
    try:
        tasks = context.selected_tasks(AGENT.name)
    except DatasetError as exc:
        context.broken[AGENT.name] = str(exc)
        metafunc.parametrize("task", [None], ids=[BROKEN_ID])
        return
    marks = {task_id: pytest.mark.skip(reason=f"excluded: {reason}") for task_id, reason in context.excluded.items()}
    params = [pytest.param(task, id=task.id, marks=[marks[task.id]] if task.id in marks else []) for task in tasks]
    metafunc.parametrize("task", params)


def is_unselected(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("task", "") is None and callspec.id == UNSELECTED_ID


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unselected = [item for item in items if is_unselected(item)]
    if unselected:
        items[:] = [item for item in items if not is_unselected(item)]
        config.hook.pytest_deselected(items=unselected)
