"""The regression gate: compare a run's core metrics with a reference run's.

Two rules. `point` compares the reference's rates with this run's: a core metric fails when it dropped by more
than delta. `interval` pairs the reference run's predictions with this run's row records by row id (the agent
track's turn success by turn) and fails a metric only when the paired drop's 95 % interval lies wholly above
delta, so a drop that the rows cannot tell from noise does not fail the gate.

Under both rules the reference's predictions are read, its metric file is checked against them (`harness.paired`:
a file whose rates disagree with its rows is refused), and the two runs must cover the same rows. A reference that
passes no row cannot show a drop: the gate says so beside its verdict. A rate over a zero denominator (None) is
not gated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slm_swap.harness.paired import Flags, unit_flags, verified_flags
from slm_swap.harness.records import load_metric_file
from slm_swap.layout import predictions_for_metric
from slm_swap.stats.intervals import Interval, paired_difference
from slm_swap.tracks.registry import core_metrics, get_track, paired_checks

SHOWN_IDS = 3  # row ids named when the two runs' rows differ


@dataclass(frozen=True)
class GateCheck:
    metric: str
    reference: float
    current: float
    delta: float
    # the interval rule's: the paired drop's interval and the exact McNemar p over the same rows
    interval: Interval | None = None
    mcnemar_p: float | None = None

    @property
    def drop(self) -> float:
        return self.reference - self.current

    @property
    def passed(self) -> bool:
        if self.interval is not None:
            return self.interval.low <= self.delta
        # a tiny epsilon keeps 0.7 - 0.68 (a 0.02 drop in floats) from failing a 0.02 delta
        return self.drop <= self.delta + 1e-12

    def summary(self) -> str:
        """The terminal summary's line for this metric."""
        numbers = f"reference {self.reference:.3f} current {self.current:.3f} drop {self.drop:+.3f}"
        verdict = "ok" if self.passed else "FAIL"
        if self.interval is None:
            return f"gate {self.metric}: {numbers} (delta {self.delta}) {verdict}"
        p = self.mcnemar_p if self.mcnemar_p is not None else 1.0
        shown_p = f"p={p:.3f}" if p >= 0.001 else "p<0.001"
        bounds = f"[{self.interval.low:.3f}, {self.interval.high:.3f}]"
        return f"gate {self.metric}: {numbers} {bounds} {shown_p} (delta {self.delta}, interval rule) {verdict}"


def compare_to_reference(
    track: str, reference: Mapping[str, float | None], current: Mapping[str, float | None], delta: float
) -> list[GateCheck]:
    """The point rule, per core metric with a rate on both sides (a rate over zero rows is n/a and not gated)."""
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    rated = [m for m in core_metrics(track) if reference.get(m) is not None and current.get(m) is not None]
    return [GateCheck(m, float(reference[m]), float(current[m]), delta) for m in rated]


def gate_passes(checks: list[GateCheck]) -> bool:
    return all(check.passed for check in checks)


def reference_predictions_path(metric_path: Path, document: Mapping[str, Any]) -> Path:
    """The reference run's predictions: the metric file's sibling `<stem>.predictions.jsonl`, else its "predictions_path"."""
    metric_path = Path(metric_path)
    sibling = predictions_for_metric(metric_path)
    if sibling.is_file():
        return sibling
    recorded = document.get("predictions_path")
    if isinstance(recorded, str) and recorded and Path(recorded).is_file():
        return Path(recorded)
    tried = str(sibling) + (f" nor {recorded}" if isinstance(recorded, str) and recorded else "")
    raise ValueError(f"{metric_path}: the reference run's predictions file is missing (neither {tried} exists)")


def load_reference_flags(metric_path: Path, document: Mapping[str, Any]) -> Flags:
    """The reference's flags per row (task), from its predictions, once its metric file agrees with them."""
    return verified_flags(metric_path, document, reference_predictions_path(metric_path, document))


def check_same_rows(reference: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """Both rules compare the same rows: a run over other rows than the reference's is refused, naming some."""
    missing_here = sorted(set(reference) - set(current))
    missing_there = sorted(set(current) - set(reference))
    if not missing_here and not missing_there:
        return

    def some(ids: list[str]) -> str:
        return ", ".join(ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")

    parts = []
    if missing_here:
        parts.append(f"{len(missing_here)} reference row(s) missing from this run ({some(missing_here)})")
    if missing_there:
        parts.append(f"{len(missing_there)} row(s) of this run missing from the reference ({some(missing_there)})")
    raise ValueError("the gate compares the same rows, but the runs' rows differ: " + "; ".join(parts) + "; evaluate the reference's rows")


def compare_paired(track: str, reference: Flags, current: Flags, delta: float) -> list[GateCheck]:
    """The interval rule: per paired check (`tracks.paired_checks`: the agent track's turn success by turn), the
    paired drop reference - current with its 95 % interval."""
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    check_same_rows(reference, current)
    ids = sorted(current)
    checks = []
    for check in paired_checks(track):
        ref_units, cur_units = unit_flags(reference, check, ids), unit_flags(current, check, ids)
        check_same_rows(ref_units, cur_units)
        units = sorted(cur_units)
        pc = paired_difference([ref_units[u] for u in units], [cur_units[u] for u in units])
        checks.append(GateCheck(f"{check}_rate", pc.a_rate, pc.b_rate, delta, pc.interval, pc.mcnemar_p))
    return checks


def run_gate(
    track: str, rule: str, reference: Mapping[str, Any], reference_flags: Flags, current: Flags, metrics: Mapping[str, Any], delta: float
) -> tuple[list[GateCheck], list[str]]:
    """The gate's checks under `rule` over the same rows, and its warnings. ValueError: the rows differ."""
    check_same_rows(reference_flags, current)
    if rule == "interval":
        checks = compare_paired(track, reference_flags, current, delta)
    else:
        checks = compare_to_reference(track, reference["metrics"], metrics, delta)
    warnings = []
    if reference.get("passed") == 0:  # checked against the reference's predictions (harness.paired)
        warnings.append(f"the reference passes no row of {reference.get('n')}, so no drop can fail this gate: check the reference run")
    return checks, warnings


def check_gate_track(reference_path: Path, items: list[pytest.Item], settings: Any) -> None:
    """The gate's reference must be for a track this run evaluates, and comparable with it (`Track.reference_problem`:
    the agent track's arm): say so before any case runs."""
    reference = load_metric_file(reference_path)
    track = reference["track"]
    try:
        problem = get_track(track).reference_problem(reference, settings, reference_path)
    except ValueError:
        problem = None  # an unknown track: the check below names the tracks this run evaluates
    if problem is not None:
        raise pytest.UsageError(problem)
    selected = {getattr(getattr(item, "module", None), "TRACK", None) for item in items}
    if track not in selected:
        raise pytest.UsageError(f"--gate-against {reference_path}: reference is for track {track!r}, which this run does not evaluate")
