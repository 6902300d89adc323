"""The routed system from two runs' rows, pure: per row the validator's answer on the SLM's output picks whose row
counts (the SLM's when accepted, the hosted model's otherwise), and the routed system is compared with hosted-only.

    evaluate_routing("toolcall", rows, hosted_records, slm_records, delta=0.02)

Rates carry Wilson intervals (`stats.wilson_interval`); the routed system against hosted-only is the paired gap
hosted - routed per core metric (`stats.paired_difference`, Bonett & Price's interval) and its verdict
(`stats.verdict_for`, routed in the SLM's seat). No I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slm_swap.data.rows import Row
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.stats.intervals import Interval, PairedComparison, Verdict, paired_difference, verdict_for, wilson_interval
from slm_swap.tracks.rows.definitions import get_track
from slm_swap.validation.validator import Validation, validate_prompt_answer

SYSTEMS = ("hosted_only", "slm_only", "routed")


@dataclass(frozen=True)
class RoutedRow:
    id: str
    validation: Validation
    slm_passed: bool
    hosted_passed: bool

    @property
    def route(self) -> str:
        return self.validation.route

    @property
    def routed_passed(self) -> bool:
        return self.slm_passed if self.validation.accepted else self.hosted_passed


@dataclass(frozen=True)
class RoutingEvaluation:
    track: str
    delta: float
    rows: tuple[RoutedRow, ...]
    rates: Mapping[str, Mapping[str, tuple[int, Interval]]]  # system -> metric -> (passes, Wilson interval)
    gaps: Mapping[str, PairedComparison]  # metric -> hosted-only (a) against routed (b)
    verdict: Verdict

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def accepted(self) -> int:
        return sum(1 for row in self.rows if row.validation.accepted)

    @property
    def slm_share(self) -> float:
        return self.accepted / self.n if self.n else 0.0

    @property
    def precision(self) -> float | None:
        """Of the SLM answers the validator accepted, the share that pass every check (exactly right); None with none."""
        right = sum(1 for row in self.rows if row.validation.accepted and row.slm_passed)
        return right / self.accepted if self.accepted else None

    def rejection_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(row.validation.rejection.value for row in self.rows if row.validation.rejection).items()))

    def rejection_cost(self) -> dict[str, int]:
        """What the rejections cost: hosted calls, those the SLM had right (needless), and how each changed a row's pass."""
        rejected = [row for row in self.rows if not row.validation.accepted]
        return {
            "hosted_calls": len(rejected),
            "slm_was_right": sum(1 for row in rejected if row.slm_passed),
            "passes_lost": sum(1 for row in rejected if row.slm_passed and not row.hosted_passed),
            "passes_gained": sum(1 for row in rejected if row.hosted_passed and not row.slm_passed),
        }


def passes(record: RowRecord) -> bool:
    """A row passes when it has no failure (`harness.records.summarize` counts it so); a predictions line holds no
    `passed` field, so the record's own `passed` reads False there."""
    return record.failure is None


def routed_flags(hosted: RowRecord, slm: RowRecord, accepted: bool) -> Mapping[str, bool]:
    return slm.flags if accepted else hosted.flags


def evaluate_routing(
    track: str, rows: Mapping[str, Row], hosted: Mapping[str, RowRecord], slm: Mapping[str, RowRecord], delta: float, ids: Sequence[str]
) -> RoutingEvaluation:
    """`ids`: the rows both runs evaluated (already paired and checked by the caller); `rows` gives each one's prompt."""
    checks = get_track(track).checks
    routed_rows, flags = [], {system: {check: [] for check in checks} for system in SYSTEMS}
    for row_id in ids:
        validation = validate_prompt_answer(track, rows[row_id].prompt, slm[row_id].output)
        routed_rows.append(RoutedRow(row_id, validation, passes(slm[row_id]), passes(hosted[row_id])))
        chosen = routed_flags(hosted[row_id], slm[row_id], validation.accepted)
        for check in checks:
            for system, source in (("hosted_only", hosted[row_id].flags), ("slm_only", slm[row_id].flags), ("routed", chosen)):
                flags[system][check].append(bool(source[check]))
    rates = {
        system: {f"{check}_rate": (sum(values), wilson_interval(sum(values), len(values))) for check, values in by_check.items()}
        for system, by_check in flags.items()
    }
    gaps = {f"{check}_rate": paired_difference(flags["hosted_only"][check], flags["routed"][check]) for check in checks}
    hosted_passes = any(passes(hosted[row_id]) for row_id in ids)
    return RoutingEvaluation(track, delta, tuple(routed_rows), rates, gaps, verdict_for(hosted_passes, gaps, delta))
