"""The decision step: fine-tune the SLM on a track when it trails the hosted model by more than delta.

`decide_track` is pure: two metric documents and a delta in, a TrackDecision out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.files import sha256_file
from slm_swap.harness.records import load_metric_file
from slm_swap.tracks import get_track


class DecisionInputError(ValueError):
    """The metric files cannot be compared; the message names them."""


@dataclass(frozen=True)
class MetricGap:
    metric: str
    hosted: float
    slm: float

    @property
    def gap(self) -> float:
        return self.hosted - self.slm


@dataclass(frozen=True)
class TrackDecision:
    track: str
    fine_tune: bool
    delta: float
    gaps: tuple[MetricGap, ...]
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "fine_tune": int(self.fine_tune),
            "delta": self.delta,
            "metrics": {g.metric: {"hosted": g.hosted, "slm": g.slm, "gap": round(g.gap, 6)} for g in self.gaps},
            "reasons": list(self.reasons),
        }


def check_comparable(track: str, hosted: dict[str, Any], slm: dict[str, Any], hosted_path: Path, slm_path: Path) -> None:
    for doc, path in ((hosted, hosted_path), (slm, slm_path)):
        if doc["track"] != track:
            raise DecisionInputError(f"{path}: metric file is for track {doc['track']!r}, expected {track!r}")
        if doc.get("n", 0) == 0:
            raise DecisionInputError(f"{path}: metric file has no rows (n=0)")
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


def decide_track(track: str, hosted: dict[str, Any], slm: dict[str, Any], delta: float) -> TrackDecision:
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    gaps = tuple(MetricGap(m, float(hosted["metrics"][m]), float(slm["metrics"][m])) for m in get_track(track).core_metrics)
    # the epsilon keeps float noise (0.72 - 0.70 = 0.0200000001) from turning an exact delta into a fine-tune
    reasons = tuple(
        f"{g.metric}: SLM {g.slm:.3f} trails hosted {g.hosted:.3f} by {g.gap:.3f} > {delta}" for g in gaps if g.gap > delta + 1e-9
    )
    return TrackDecision(track, bool(reasons), delta, gaps, reasons)


def load_pair(track: str, hosted_path: Path, slm_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        hosted, slm = load_metric_file(hosted_path), load_metric_file(slm_path)
    except ValueError as exc:
        raise DecisionInputError(f"{exc} (track {track}: evaluate it first, e.g. `pytest evals -k {track} --model=...`)") from None
    check_comparable(track, hosted, slm, hosted_path, slm_path)
    return hosted, slm


def file_identity(path: Path) -> dict[str, str]:
    return {"path": str(path), "sha256": sha256_file(path)}
