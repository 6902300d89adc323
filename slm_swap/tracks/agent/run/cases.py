"""The agent track's cases: one per BFCL multi-turn task, loaded only when the command selects the track.

`pytest evals --model=X` runs the row tracks in the minutes README promises; the agent track (hundreds of
multi-turn episodes) runs when the command selects it: with `-k` (`-k agent`; any keyword expression decides for
every track, as pytest's own -k does) or by naming its test file or case (`pytest evals/test_agent.py`).
Unselected, its tasks are not even loaded: one stand-in case (`harness.selection.UNSELECTED_ID`) stands for them
and is deselected, so the run's summary says `1 deselected`. A task whose ground truth cannot be scored is a
case skipped with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_swap.data.rows import DatasetError
from slm_swap.harness.context import RunContext
from slm_swap.harness.selection import BROKEN_ID, UNSELECTED_ID
from slm_swap.harness.shares import items_to_run, track_cases
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.definition import AGENT


def agent_selected(config: pytest.Config, module: Path) -> bool:
    """Whether the command selects the agent track, whose cases live in `module`: -k, or the module named."""
    if config.option.keyword:
        return True
    here = config.invocation_params.dir
    return any((here / str(arg).split("::")[0]).resolve() == module.resolve() for arg in config.args)


def selected_tasks(context: RunContext) -> list[MultiTurnTask]:
    """The agent track's tasks after --limit, loaded once per process; those whose ground truth cannot be scored
    are noted in `context.excluded`."""
    if AGENT.name not in context.cases:
        # imported here: BFCL's checker is loaded only by runs that collect the agent track
        from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
        from slm_swap.tracks.agent.data.splits import load_split_tasks
        from slm_swap.tracks.agent.episodes.scoring import ground_truth_rejection

        tasks = load_split_tasks(context.settings.dataset_path(AGENT.name), load_multi_turn())
        tasks = tasks[: context.settings.limit] if context.settings.limit else tasks
        context.cases[AGENT.name] = tasks
        context.excluded.update({task.id: reason for task in tasks if (reason := ground_truth_rejection(task))})
    return context.cases[AGENT.name]


def parametrize_tasks(metafunc: pytest.Metafunc, context: RunContext) -> None:
    """One case per agent task, id the task id; a task whose ground truth cannot be scored is skipped with the reason."""
    if not agent_selected(metafunc.config, metafunc.definition.path):
        metafunc.parametrize("task", [None], ids=[UNSELECTED_ID])
        return
    try:
        tasks = selected_tasks(context)
    except DatasetError as exc:
        context.broken[AGENT.name] = str(exc)
        metafunc.parametrize("task", [None], ids=[BROKEN_ID])
        return
    marks = {task_id: pytest.mark.skip(reason=f"excluded: {reason}") for task_id, reason in context.excluded.items()}
    params = [pytest.param(task, id=task.id, marks=[marks[task.id]] if task.id in marks else []) for task in tasks]
    metafunc.parametrize("task", params)


def tasks_to_run(session: pytest.Session) -> list[MultiTurnTask]:
    """The agent track's selected tasks that are not skipped (excluded); in an xdist worker, those queued to it now."""
    return track_cases(items_to_run(session), AGENT.name, "task", MultiTurnTask)
