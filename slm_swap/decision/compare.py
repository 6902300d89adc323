"""The paired comparison behind a decision: two runs' row-level flags, matched by row id, per core metric.
For the agent track the rows are tasks: task success is paired by task, turn success by turn (`Track.checks`).

Each metric file's predictions file (its sibling `<stem>.predictions.jsonl`) holds every row's flags, and is the
source of truth: a metric file whose numbers disagree with it is refused (`harness.paired`). Two runs are compared
only on the same rows: different row sets are refused, naming the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.harness.paired import Flags, unit_flags, verified_flags
from slm_swap.layout import predictions_for_metric
from slm_swap.stats.intervals import PairedComparison, paired_difference
from slm_swap.tracks.registry import paired_checks


class DecisionInputError(ValueError):
    """The runs cannot be compared; the message names the files and rows."""


class PredictionsMissing(DecisionInputError):
    """A run's predictions file is not there: its rows cannot be paired, nor its numbers checked."""


def predictions_file(metric_path: Path, document: Mapping[str, Any]) -> Path:
    """The run's predictions: beside its metric file, else where the metric file says they were written."""
    sibling = predictions_for_metric(metric_path)
    if sibling.is_file() or not document.get("predictions_path"):
        return sibling
    return Path(document["predictions_path"])


def load_flags(metric_path: Path, document: Mapping[str, Any]) -> Flags:
    path = predictions_file(metric_path, document)
    if not path.is_file():
        raise PredictionsMissing(
            f"{path}: predictions file not found; the paired comparison needs each row's flags (re-run the evaluation of {metric_path})"
        )
    try:
        return verified_flags(metric_path, document, path)
    except ValueError as exc:
        raise DecisionInputError(str(exc)) from None


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
    """Per core metric (`<check>_rate`), run a against run b on the same rows (turns): gap = a - b."""
    compared = {}
    for check in paired_checks(track):
        try:
            a_units, b_units = unit_flags(a, check, rows), unit_flags(b, check, rows)
        except KeyError as exc:
            raise DecisionInputError(f"a predictions file of track {track} has a row without the flag {exc}") from None
        if a_units.keys() != b_units.keys():
            differ = set(a_units) ^ set(b_units)
            raise DecisionInputError(f"the runs' {check} flags cover different units ({shown(differ)}): evaluate the same tasks")
        units = sorted(a_units)
        compared[f"{check}_rate"] = paired_difference([a_units[u] for u in units], [b_units[u] for u in units])
    return compared
