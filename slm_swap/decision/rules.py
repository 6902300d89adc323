"""The decision step: fine-tune the SLM on a track when it trails the hosted model by more than delta.

Two rules, one verdict. The seed's point rule (`fine_tune`, the default) compares point estimates: fine-tune
when any core metric's gap hosted - SLM exceeds delta. The verdict reads the same gaps through their 95 %
paired intervals (`slm_swap.stats.intervals`): `slm_trails` only when an interval lies wholly above delta,
`slm_matches` only when every interval lies at or below it, `no_baseline` when the hosted model passes no
row, `inconclusive` otherwise, with the rows that would resolve it. Under the interval rule `fine_tune`
follows the verdict. Both rules read only the core metrics, the rates two runs can be paired on; a rate that
cannot be paired (`tracks.reported_metrics`: the agent track's valid_action_rate) is reported beside them, and a
rate over a zero denominator (None, shown "n/a") enters no rule.

`decide_track` is pure: two metric documents, their paired comparisons and the rule in, a TrackDecision out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.decision.caveats import batch_caveats
from slm_swap.decision.compare import DecisionInputError
from slm_swap.files import sha256_file
from slm_swap.harness.records import load_metric_file
from slm_swap.stats.intervals import Interval, PairedComparison, Verdict, rows_needed, verdict_for, wilson_interval
from slm_swap.tracks.registry import core_metrics, definition, reported_metrics

RULES = ("point", "interval")
EPSILON = 1e-9  # keeps float noise (0.72 - 0.70 = 0.0200000001) from turning an exact delta into a fine-tune


@dataclass(frozen=True)
class MetricGap:
    metric: str
    hosted: float
    slm: float
    paired: PairedComparison | None = None  # hosted (a) against the SLM (b) on the same rows

    @property
    def gap(self) -> float:
        return self.hosted - self.slm

    def unsettled(self, delta: float) -> bool:
        """The gap's interval straddles delta: the rows cannot tell which side the gap is on."""
        return self.paired is not None and self.paired.interval.low <= delta < self.paired.interval.high

    def rows_needed(self, delta: float) -> int | None:
        """Rows that would settle this metric at the observed gap; None when it is settled (or the gap is delta itself)."""
        return rows_needed(self.paired, delta) if self.unsettled(delta) else None


@dataclass(frozen=True)
class TrackDecision:
    track: str
    fine_tune: bool
    delta: float
    gaps: tuple[MetricGap, ...]
    reasons: tuple[str, ...]
    verdict: Verdict = Verdict.INCONCLUSIVE
    rule: str = "point"
    intervals: Mapping[str, Mapping[str, Interval]] = field(default_factory=dict)  # role -> metric -> Wilson interval
    caveats: tuple[str, ...] = ()  # why the verdict may not hold (slm_swap.decision.caveats)
    reported: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)  # metric -> (hosted, SLM), no rule

    @property
    def rows_needed(self) -> int | None:
        if self.verdict is not Verdict.INCONCLUSIVE:
            return None
        needed = [n for g in self.gaps if (n := g.rows_needed(self.delta)) is not None]
        return max(needed) if needed else None

    def to_json(self) -> dict[str, Any]:
        return {
            "fine_tune": int(self.fine_tune),
            "rule": self.rule,
            "verdict": self.verdict.value,
            "verdict_text": verdict_text(self),
            "rows_needed": self.rows_needed,
            "delta": self.delta,
            "metrics": {g.metric: self.metric_json(g) for g in self.gaps},
            "reasons": list(self.reasons),
            "caveats": list(self.caveats),
            "reported": {m: reported_json(hosted, slm) for m, (hosted, slm) in self.reported.items()},
        }

    def metric_json(self, g: MetricGap) -> dict[str, Any]:
        doc: dict[str, Any] = {"hosted": g.hosted, "slm": g.slm, "gap": round(g.gap, 6)}
        for role in ("hosted", "slm"):
            if g.metric in self.intervals.get(role, {}):
                doc[f"{role}_ci95"] = self.intervals[role][g.metric].as_list()
        if g.paired is not None:
            doc.update(
                gap_ci95=g.paired.interval.as_list(),
                only_hosted=g.paired.only_a,
                only_slm=g.paired.only_b,
                mcnemar_p=significant(g.paired.mcnemar_p),
                rows_needed=g.rows_needed(self.delta),
            )
        return doc


def reported_json(hosted: float | None, slm: float | None) -> dict[str, Any]:
    """A rate beside the verdict: both sides and the point gap, None (n/a) where either side has no rate."""
    gap = None if hosted is None or slm is None else round(hosted - slm, 6)
    return {"hosted": hosted, "slm": slm, "gap": gap}


def significant(p: float) -> float:
    """A p-value to three significant digits: small ones stay readable instead of rounding to 0."""
    return float(f"{p:.3g}")


def verdict_text(decision: TrackDecision) -> str:
    delta, verdict = decision.delta, decision.verdict
    row = definition(decision.track).case_noun  # the agent track's cases are tasks
    if verdict is Verdict.NO_BASELINE:
        return (
            f"no_baseline: the hosted model passes no {row} of this track, so no comparison means anything; "
            "check the prompt and the output format before deciding"
        )
    if verdict is Verdict.SLM_TRAILS:
        worse = [g.metric for g in decision.gaps if g.paired is not None and g.paired.interval.low > delta]
        return f"slm_trails: the SLM trails the hosted model by more than delta {delta} on {', '.join(worse)}, beyond the {row}s' noise"
    if verdict is Verdict.SLM_MATCHES:
        return f"slm_matches: on every core metric the SLM is within delta {delta} of the hosted model, beyond the {row}s' noise"
    open_metrics = [g.metric for g in decision.gaps if g.unsettled(delta)] or [f"a metric without {row}-level flags"]
    needed = decision.rows_needed
    tail = f"; about {needed} {row}s would resolve it (80 % power)" if needed is not None else "; the observed gap equals delta"
    return f"inconclusive: the {row}s cannot tell whether the SLM trails by more than delta {delta} on {', '.join(open_metrics)}{tail}"


def check_comparable(track: str, hosted: dict[str, Any], slm: dict[str, Any], hosted_path: Path, slm_path: Path) -> None:
    for doc, path in ((hosted, hosted_path), (slm, slm_path)):
        if doc["track"] != track:
            raise DecisionInputError(f"{path}: metric file is for track {doc['track']!r}, expected {track!r}")
        if doc.get("n", 0) == 0:
            raise DecisionInputError(f"{path}: metric file has no rows (n=0)")
    if hosted.get("arm") != slm.get("arm"):
        raise DecisionInputError(f"{hosted_path} (arm {hosted.get('arm')!r}) and {slm_path} (arm {slm.get('arm')!r}) ran different arms")
    if hosted.get("split") != slm.get("split"):
        raise DecisionInputError(
            f"{hosted_path} (split {hosted.get('split')!r}) and {slm_path} (split {slm.get('split')!r}) evaluated different splits"
        )
    hosted_sha, slm_sha = hosted["dataset"]["sha256"], slm["dataset"]["sha256"]
    if hosted_sha != slm_sha:
        raise DecisionInputError(f"{hosted_path} and {slm_path} evaluated different datasets (sha256 {hosted_sha[:12]} vs {slm_sha[:12]})")
    if hosted["n"] != slm["n"]:
        raise DecisionInputError(
            f"{hosted_path} has n={hosted['n']} rows but {slm_path} has n={slm['n']}: evaluate the same rows (same --limit)"
        )


def rate_intervals(document: Mapping[str, Any], metrics: tuple[str, ...]) -> dict[str, Interval]:
    """Each rate's 95 % Wilson interval: from the metric file, or from its rate and n for older files."""
    stored = document.get("intervals", {})
    n = int(document["n"])
    return {
        m: Interval(*stored[m]) if stored.get(m) else wilson_interval(round(float(document["metrics"][m]) * n), n)
        for m in metrics
        if document["metrics"].get(m) is not None
    }


def decide_track(
    track: str,
    hosted: dict[str, Any],
    slm: dict[str, Any],
    delta: float,
    paired: Mapping[str, PairedComparison] | None = None,
    rule: str = "point",
    fine_tune_when_inconclusive: bool = False,
) -> TrackDecision:
    """`paired`: per core metric, hosted against the SLM on the same rows (without it the verdict is inconclusive)."""
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    paired = paired or {}
    rated = [m for m in core_metrics(track) if hosted["metrics"].get(m) is not None and slm["metrics"].get(m) is not None]
    metrics = tuple(rated)
    gaps = tuple(MetricGap(m, float(hosted["metrics"][m]), float(slm["metrics"][m]), paired.get(m)) for m in metrics)
    beside = (*(m for m in core_metrics(track) if m not in rated), *reported_metrics(track))
    reported = {m: (hosted["metrics"].get(m), slm["metrics"].get(m)) for m in beside}
    hosted_passes = int(hosted.get("passed", 1)) > 0
    ruled = {m: paired[m] for m in metrics if m in paired}
    verdict = verdict_for(hosted_passes, ruled, delta) if metrics and len(ruled) == len(metrics) else Verdict.INCONCLUSIVE
    if rule == "point":
        reasons = tuple(
            f"{g.metric}: SLM {g.slm:.3f} trails hosted {g.hosted:.3f} by {g.gap:.3f} > {delta}" for g in gaps if g.gap > delta + EPSILON
        )
        fine_tune = bool(reasons)
    else:
        fine_tune = verdict is Verdict.SLM_TRAILS or (verdict is Verdict.INCONCLUSIVE and fine_tune_when_inconclusive)
        reasons = (f"interval rule: verdict {verdict.value}",) if fine_tune else ()
    intervals = {"hosted": rate_intervals(hosted, metrics), "slm": rate_intervals(slm, metrics)}
    caveats = batch_caveats(track, slm, {g.metric: g.gap for g in gaps}, delta)
    return TrackDecision(track, fine_tune, delta, gaps, reasons, verdict, rule, intervals, caveats, reported)


def load_pair(track: str, hosted_path: Path, slm_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        hosted, slm = load_metric_file(hosted_path), load_metric_file(slm_path)
    except ValueError as exc:
        hint = f"track {track}: evaluate it first, e.g. `pytest evals -k {track} --model=...`"
        if definition(track).missing_hosted_hint and not Path(hosted_path).exists():
            hint += f"; {definition(track).missing_hosted_hint}"
        raise DecisionInputError(f"{exc} ({hint})") from None
    return hosted, slm


def file_identity(path: Path) -> dict[str, str]:
    return {"path": str(path), "sha256": sha256_file(path)}
