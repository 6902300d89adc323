"""From captured trajectories to training records: verified, shortest per task, no duplicates, test scenarios out.

Rejection sampling as `docs/phase2.md` describes it: a trajectory enters training only if the verifier (BFCL's
multi-turn checker) accepted it; of several accepted ones for a task the shortest is kept (fewest assistant
turns, then fewest characters, then the first read); exact duplicates (same arm and messages) count once.
Tasks go to train or val by the agent track's scenario splits (`slm_swap/02_dataset/agent/`), so no variant of
a test scenario is ever trained on: trajectories of test tasks, and of tasks the splits do not name, are dropped
with their reason. Rejected trajectories are written to a file of their own: they are the hard cases.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError, read_lines
from slm_swap.files import sha256_file, write_json_atomic
from slm_swap.tracks.agent.data.trajectories import TrajectoryRecord, read_trajectories, write_trajectories

TRAINING_SPLITS = ("train", "val")
TASK_SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
REJECTED = "rejected.jsonl"


def training_set_name(arm: str) -> str:
    """The folder (under the dataset dir) and fine-tuning track name of an arm's training records."""
    return f"agent_{arm}"


@dataclass
class BuildResult:
    splits: dict[str, list[TrajectoryRecord]] = field(default_factory=lambda: {name: [] for name in TRAINING_SPLITS})
    rejected: list[TrajectoryRecord] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    read: int = 0
    recheck_failures: dict[str, str] = field(default_factory=dict)  # record id -> why a claimed acceptance did not hold


# positions of records that claim acceptance -> None when the re-check confirms it, else why not
Recheck = Callable[[Sequence[TrajectoryRecord]], Mapping[int, "str | None"]]


def task_splits(agent_dir: Path) -> dict[str, str]:
    """task id -> split, from the agent track's split files; DatasetError names the file and line of a bad entry."""
    found: dict[str, str] = {}
    for split in TASK_SPLITS:
        path = Path(agent_dir) / f"{split}.jsonl"
        for number, line in enumerate(read_lines(path, "agent split file", " (run `python tools/prepare_data.py`)"), start=1):
            try:
                task_id = json.loads(line)["id"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DatasetError(f"{path}: line {number}: not an object with an 'id'") from None
            if task_id in found:
                raise DatasetError(f"{path}: line {number}: task {task_id!r} is already in the {found[task_id]} split")
            found[task_id] = split
    return found


def content_key(record: TrajectoryRecord) -> str:
    text = json.dumps([record.arm, [dict(m) for m in record.messages]], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def select(
    records: Sequence[TrajectoryRecord], splits: Mapping[str, str], arm: str, rechecked: Mapping[int, str | None] | None = None
) -> BuildResult:
    """The records of `arm` sorted into train / val / rejected, with a counted reason for every one left out.
    With `rechecked`, a record that claims acceptance counts as accepted only if its re-check confirms it."""
    result = BuildResult(read=len(records))
    best: dict[str, TrajectoryRecord] = {}
    seen: set[str] = set()
    for position, record in enumerate(records):
        if record.arm != arm:
            result.dropped[f"other arm ({record.arm})"] += 1
            continue
        split = splits.get(record.task_id)
        if split is None:
            result.dropped["task not in the agent splits"] += 1
            continue
        if split == "test":
            result.dropped["test task (never trained on)"] += 1
            continue
        key = content_key(record)
        if key in seen:
            result.dropped["duplicate"] += 1
            continue
        seen.add(key)
        if not record.accepted:
            result.rejected.append(record)
            result.dropped["rejected by the verifier"] += 1
            continue
        if rechecked is not None and rechecked.get(position, "not re-checked") is not None:
            result.recheck_failures[record.id] = str(rechecked.get(position, "not re-checked"))
            result.dropped["claims acceptance but fails the re-check"] += 1
            continue
        kept = best.get(record.task_id)
        if kept is None or (record.assistant_turns, record.characters) < (kept.assistant_turns, kept.characters):
            if kept is not None:
                result.dropped["longer than the task's shortest accepted"] += 1
            best[record.task_id] = record
        else:
            result.dropped["longer than the task's shortest accepted"] += 1
    for task_id in sorted(best):
        result.splits[splits[task_id]].append(best[task_id])
    return result


def build_training_records(inputs: Sequence[Path], agent_dir: Path, out_dir: Path, arm: str, recheck: Recheck) -> dict[str, Any]:
    """Read, re-check, select and write `<out_dir>/{train,val}.jsonl`, `rejected.jsonl` and the manifest; returns
    the manifest. `recheck` replays the records that claim acceptance (`slm_swap.tracks.agent.episodes.recheck`): a claim is data.

    Nothing is written unless every input reads cleanly (a broken record stops with its file and line)."""
    splits = task_splits(agent_dir)
    records: list[TrajectoryRecord] = []
    for path in inputs:
        records.extend(read_trajectories(path))
    eligible = [r.accepted and r.arm == arm and splits.get(r.task_id) in TRAINING_SPLITS for r in records]
    replayed = recheck([r for r, keep in zip(records, eligible, strict=True) if keep])
    positions = [i for i, keep in enumerate(eligible) if keep]
    rechecked = {positions[i]: reason for i, reason in replayed.items()}
    result = select(records, splits, arm, rechecked)
    if not any(result.splits.values()):
        raise DatasetError(
            f"no accepted {arm} trajectory of a train or val task among the {len(records)} records read; left out: {dict(result.dropped)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, kept in result.splits.items():
        write_trajectories(out_dir / f"{split}.jsonl", kept)
    write_trajectories(out_dir / REJECTED, result.rejected)
    manifest = {
        "arm": arm,
        "inputs": {str(path): sha256_file(path) for path in inputs},
        "agent_splits": {split: sha256_file(Path(agent_dir) / f"{split}.jsonl") for split in TASK_SPLITS},
        "records_read": result.read,
        "counts": {split: len(kept) for split, kept in result.splits.items()} | {"rejected": len(result.rejected)},
        "dropped": dict(sorted(result.dropped.items())),
        "recheck_failures": dict(sorted(result.recheck_failures.items())),
        "sources": dict(Counter(str(r.source.get("model", "?")) for kept in result.splits.values() for r in kept)),
        "outputs": {name: sha256_file(out_dir / name) for name in (*(f"{s}.jsonl" for s in TRAINING_SPLITS), REJECTED)},
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest
