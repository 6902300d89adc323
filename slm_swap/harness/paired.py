"""A run's paired flags, read from its predictions file, with its metric file checked against them.

The predictions file is the source of truth. Every rate and count a metric file states (`n`, `passed`, `metrics`,
`counts`, `totals`, `intervals`) is recomputed from the rows (the agent track: the tasks) of its predictions file;
the decision, the gate and the report use a metric file only when the two agree and every number in it is finite.
Otherwise `MetricFileMismatch` says which file, which number, and both values, so an edited rate never flips a
decision. Fields an older metric file does not have (`counts`, `intervals`) are not asked for.

Flags map a row (task) id to check -> passed. The agent track's `turn_success` holds one flag per turn
(`Track.flags`); `unit_flags` spreads it into `<task id>#<turn>` units, so turns are paired by turn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError
from slm_swap.tracks.registry import get_track

Flags = Mapping[str, Mapping[str, Any]]  # row (task) id -> check -> passed (a tuple of per-turn flags for turn_success)
CHECKED_FIELDS = ("n", "passed", "metrics", "counts", "totals", "intervals")
TOLERANCE = 1e-9  # rates are written as computed; this only forgives a float's last digit


class MetricFileMismatch(ValueError):
    """A metric file disagrees with its predictions or holds a non-finite number; the message names both values."""


def unit_flags(flags: Flags, check: str, ids: Sequence[str] | None = None) -> dict[str, bool]:
    """One flag per paired unit: the row (task) itself, or `<task id>#<turn>` for a per-turn check."""
    units: dict[str, bool] = {}
    for row_id in sorted(flags) if ids is None else ids:
        value = flags[row_id][check]
        if isinstance(value, (list, tuple)):
            units.update({f"{row_id}#{turn}": bool(passed) for turn, passed in enumerate(value)})
        else:
            units[row_id] = bool(value)
    return units


def recompute(track: str, predictions: Path) -> tuple[dict[str, Any], Flags]:
    """The numbers a metric file of `track` should state, and each row's flags, from its predictions file."""
    return get_track(track).recompute(predictions)


def shown(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, list):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def agrees(stated: Any, expected: Any) -> bool:
    if expected is None or isinstance(expected, bool) or isinstance(stated, bool):
        return type(stated) is type(expected) and stated == expected  # true is not 1, null is not 0
    if isinstance(expected, (int, float)):
        return isinstance(stated, (int, float)) and math.isfinite(stated) and abs(stated - expected) <= TOLERANCE
    if isinstance(expected, list):
        return isinstance(stated, list) and len(stated) == len(expected) and all(map(agrees, stated, expected))
    return stated == expected


def disagreements(document: Mapping[str, Any], expected: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    """(field, stated, recomputed) for each number that differs; a rate missing from `metrics` differs too."""
    for field, value in expected.items():
        stated = document[field]
        if not isinstance(value, dict):
            if not agrees(stated, value):
                yield field, stated, value
            continue
        inner = stated if isinstance(stated, dict) else {}
        for key, number in value.items():
            if (key in inner or field == "metrics") and not agrees(inner.get(key), number):
                yield f"{field}.{key}", inner.get(key, "missing"), number


def non_finite(value: Any, where: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield where, value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from non_finite(inner, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from non_finite(inner, f"{where}[{index}]")


def check_metric_file(metric_path: Path, document: Mapping[str, Any], expected: Mapping[str, Any], predictions: Path) -> None:
    """Refuse a metric document whose numbers differ from those recomputed from its predictions, or are not finite."""
    wanted = {field: expected[field] for field in CHECKED_FIELDS if field in expected and field in document}
    for field, stated, value in disagreements(document, wanted):
        raise MetricFileMismatch(
            f"{metric_path}: {field} is {shown(stated)} but its predictions {predictions} give {shown(value)}; "
            "the predictions are the source of truth: re-run the evaluation or restore the metric file"
        )
    for where, value in non_finite(dict(document), ""):
        raise MetricFileMismatch(f"{metric_path}: {where} is {value!r}, not a finite number")


def verified_flags(metric_path: Path, document: Mapping[str, Any], predictions: Path) -> Flags:
    """Each row's flags from `predictions`, once the metric document's numbers agree with them.
    ValueError (a bad predictions line names file and line; a disagreement is a `MetricFileMismatch`)."""
    track = str(document.get("track"))
    try:
        expected, flags = recompute(track, predictions)
    except DatasetError as exc:
        raise ValueError(str(exc)) from None
    except KeyError as exc:
        raise ValueError(f"{predictions}: a row has no flag {exc}, which track {track} scores") from None
    check_metric_file(metric_path, document, expected, predictions)
    return flags
