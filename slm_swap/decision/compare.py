"""The paired comparison behind a decision: two runs' row-level flags, matched by row id, per core metric.
For the agent track the rows are tasks and the flag is the task's success (`tracks.AGENT.checks`).

Each metric file's predictions file (its sibling `<stem>.predictions.jsonl`) holds every row's flags. Two
runs are compared only on the same rows: different row sets are refused, naming the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError
from slm_swap.harness.agent_records import read_task_records, task_flags
from slm_swap.harness.records import read_row_records
from slm_swap.layout import predictions_for_metric
from slm_swap.stats.intervals import PairedComparison, paired_difference
from slm_swap.tracks import AGENT, paired_checks

Flags = dict[str, Mapping[str, bool]]  # row id -> check -> passed


class DecisionInputError(ValueError):
    """The runs cannot be compared; the message names the files and rows."""


def predictions_file(metric_path: Path, document: Mapping[str, Any]) -> Path:
    """The run's predictions: beside its metric file, else where the metric file says they were written."""
    sibling = predictions_for_metric(metric_path)
    if sibling.is_file() or not document.get("predictions_path"):
        return sibling
    return Path(document["predictions_path"])


def load_flags(metric_path: Path, document: Mapping[str, Any]) -> Flags:
    path = predictions_file(metric_path, document)
    if not path.is_file():
        raise DecisionInputError(
            f"{path}: predictions file not found; the paired comparison needs each row's flags (re-run the evaluation of {metric_path})"
        )
    try:
        if document.get("track") == AGENT.name:
            return task_flags(read_task_records(path))
        records = read_row_records(path)
    except (ValueError, DatasetError) as exc:
        raise DecisionInputError(str(exc)) from None
    return {row_id: record.flags for row_id, record in records.items()}


def shown(ids: set[str]) -> str:
    listed = sorted(ids)
    return ", ".join(listed[:5]) + (" ..." if len(listed) > 5 else "")


def same_rows(a: Flags, b: Flags, a_name: str, b_name: str) -> list[str]:
    """The shared row ids in order; refuses when either run has rows the other lacks."""
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        parts = [f"{len(ids)} row(s) only in {name} ({shown(ids)})" for ids, name in ((only_a, a_name), (only_b, b_name)) if ids]
        raise DecisionInputError(f"{a_name} and {b_name} evaluated different rows: {'; '.join(parts)}; evaluate the same rows")
    return sorted(a)


def compare(track: str, a: Flags, b: Flags, rows: list[str]) -> dict[str, PairedComparison]:
    """Per core metric (`<check>_rate`), run a against run b on the same rows: gap = a - b."""
    try:
        return {
            f"{check}_rate": paired_difference([bool(a[row][check]) for row in rows], [bool(b[row][check]) for row in rows])
            for check in paired_checks(track)
        }
    except KeyError as exc:
        raise DecisionInputError(f"a predictions file of track {track} has a row without the flag {exc}") from None
