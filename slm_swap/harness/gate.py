"""The regression gate: compare a run's core metrics with a reference metric file."""

from __future__ import annotations

from dataclasses import dataclass

from slm_swap.tracks import get_track


@dataclass(frozen=True)
class GateCheck:
    metric: str
    reference: float
    current: float
    delta: float

    @property
    def drop(self) -> float:
        return self.reference - self.current

    @property
    def passed(self) -> bool:
        # a tiny epsilon keeps 0.7 - 0.68 (a 0.02 drop in floats) from failing a 0.02 delta
        return self.drop <= self.delta + 1e-12


def compare_to_reference(track: str, reference: dict[str, float], current: dict[str, float], delta: float) -> list[GateCheck]:
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    return [GateCheck(m, float(reference[m]), float(current[m]), delta) for m in get_track(track).core_metrics]


def gate_passes(checks: list[GateCheck]) -> bool:
    return all(check.passed for check in checks)
