"""Deterministic splits of BFCL's multi-turn tasks by scenario, and their manifest.

Every variant of one scenario (`multi_turn_base_12`, `multi_turn_miss_func_12`, ...) lands in the same
split: they share environments, initial state and most turns, so a model trained on one variant has
seen the others' answers. The order is a hash of seed and scenario per scenario (as `splits.split_key`
does per example), so adding or removing scenarios moves no other scenario. Sizes count scenarios.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError, read_lines
from slm_swap.data.splits import DEFAULT_SEED, SPLITS, split_key
from slm_swap.files import jsonl_text, write_bytes_atomic
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnData, MultiTurnTask

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ScenarioSplitSizes:
    test: int = 50
    val: int = 25
    train: int = 125  # at most: train gets what is left after test and val


def task_order(task: MultiTurnTask) -> tuple[str, int]:
    return task.category, int(task.id.rpartition("_")[2])


def assign_scenario_splits(tasks: list[MultiTurnTask], seed: int, sizes: ScenarioSplitSizes) -> dict[str, list[MultiTurnTask]]:
    """split -> its tasks (every variant of each of its scenarios), in category and number order."""
    scenarios = sorted({task.scenario for task in tasks}, key=lambda s: (split_key(seed, s), s))
    needed = sizes.test + sizes.val
    if len(scenarios) <= needed:
        raise DatasetError(
            f"only {len(scenarios)} scenarios: test ({sizes.test}) and val ({sizes.val}) need {needed}, and train at least one more"
        )
    chosen = {"test": scenarios[: sizes.test], "val": scenarios[sizes.test : needed], "train": scenarios[needed : needed + sizes.train]}
    split_of = {scenario: split for split, names in chosen.items() for scenario in names}
    splits: dict[str, list[MultiTurnTask]] = {split: [] for split in SPLITS}
    for task in sorted(tasks, key=task_order):
        if task.scenario in split_of:
            splits[split_of[task.scenario]].append(task)
    return splits


def render_split_files(splits: dict[str, list[MultiTurnTask]]) -> dict[str, bytes]:
    """One JSONL per split naming its tasks; the tasks themselves stay in the package's files."""
    return {
        f"{split}.jsonl": jsonl_text([{"id": t.id, "category": t.category, "scenario": t.scenario} for t in splits[split]]).encode("utf-8")
        for split in SPLITS
    }


def build_multi_turn_manifest(
    data: MultiTurnData, seed: int, sizes: ScenarioSplitSizes, splits: dict[str, list[MultiTurnTask]], files: dict[str, bytes]
) -> dict[str, Any]:
    scenarios = {split: len({t.scenario for t in splits[split]}) for split in SPLITS}
    return {
        "source": "bfcl_multi_turn",
        "source_version": data.version,
        "categories": data.categories,
        "source_files": data.source_files,
        "seed": seed,
        "sizes": asdict(sizes),
        "rows_read": data.rows_read,
        "dropped": dict(sorted(data.dropped.items())),
        "usable": len(data.tasks),
        "scenarios": scenarios,
        "counts": {split: len(splits[split]) for split in SPLITS},
        "counts_by_category": {split: dict(sorted(Counter(t.category for t in splits[split]).items())) for split in SPLITS},
        "unused": len(data.tasks) - sum(len(splits[split]) for split in SPLITS),
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
    }


def prepare_multi_turn_splits(
    data: MultiTurnData, out_dir: Path, seed: int = DEFAULT_SEED, sizes: ScenarioSplitSizes = ScenarioSplitSizes()
) -> dict[str, Any]:
    """Write `{train,val,test}.jsonl` and, last, `manifest.json` into `out_dir`; return the manifest."""
    splits = assign_scenario_splits(data.tasks, seed, sizes)
    files = render_split_files(splits)
    manifest = build_multi_turn_manifest(data, seed, sizes, splits, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        write_bytes_atomic(out_dir / name, content)
    # written last: a manifest means every split file it hashes is in place
    write_bytes_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
    return manifest


def load_split_tasks(path: Path, data: MultiTurnData) -> list[MultiTurnTask]:
    """The tasks a split file names, in its order; DatasetError names the file and line of a bad or unknown entry."""
    path = Path(path)
    lines = read_lines(path, "agent split file", " (run `python tools/prepare_data.py` or pass --dataset)")
    by_id = {task.id: task for task in data.tasks}
    tasks: list[MultiTurnTask] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        task_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(task_id, str):
            raise DatasetError(f"{path}: line {number}: not an object with a string 'id'")
        if task_id not in by_id:
            raise DatasetError(f"{path}: line {number}: task {task_id!r} is not among BFCL's multi-turn tasks ({data.version})")
        if task_id in seen:
            raise DatasetError(f"{path}: line {number}: task {task_id!r} appears twice")
        seen.add(task_id)
        tasks.append(by_id[task_id])
    if not tasks:
        raise DatasetError(f"{path}: split has no tasks")
    return tasks
