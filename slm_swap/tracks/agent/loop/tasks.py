"""Which agent tasks a Phase II step runs, written as a task list (the split files' own line format).

A real run takes the first N tasks of a split, in the split's order (all of them without N), as `--limit` would.
The offline demo takes the N *shortest* tasks instead (fewest turns, no long-context variant, smallest function
docs), skipping any whose ground truth BFCL's checker cannot score: every SLM step re-reads a 3,000 to 6,000 token
prompt of tool docs, and a 2-core CPU can afford only a few. That is a convenience of the demo, never a sample
of the split, and the demo says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from slm_swap.files import write_text_atomic
from slm_swap.layout import split_path
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnData, MultiTurnTask
from slm_swap.tracks.agent.data.splits import load_split_tasks
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.scoring import ground_truth_rejection

ORDERS = ("first", "shortest")


def size_key(task: MultiTurnTask) -> tuple[bool, int, int, str]:
    return task.long_context, len(task.turns), len(json.dumps(task.functions)), task.id


def pick_tasks(tasks: Sequence[MultiTurnTask], n: int | None, order: str) -> list[MultiTurnTask]:
    if order == "first":
        return list(tasks[:n] if n else tasks)
    if order != "shortest" or not n:
        raise ValueError(f"order {order!r} needs a number of tasks; orders: {ORDERS}")
    picked = []
    for task in sorted(tasks, key=size_key):
        if ground_truth_rejection(task) is None:
            picked.append(task)
        if len(picked) == n:
            break
    return picked


def task_line(task: MultiTurnTask) -> str:
    return json.dumps({"id": task.id, "category": task.category, "scenario": task.scenario}) + "\n"


def write_task_list(dataset_dir: Path, splits: dict[str, int | None], order: str, out: Path, data: MultiTurnData) -> list[str]:
    """Write the picked tasks of each split (split -> how many, None: all) to `out`; returns their ids.

    `data`: BFCL's multi-turn tasks (`load_multi_turn()`), read once by the caller for all its task lists.
    """
    picked = [
        task
        for split, n in splits.items()
        for task in pick_tasks(load_split_tasks(split_path(dataset_dir, AGENT.name, split), data), n, order)
    ]
    write_text_atomic(out, "".join(task_line(task) for task in picked))
    return [task.id for task in picked]
