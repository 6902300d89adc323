"""What a track is to the harness, the gate, the decision and the report: one `Protocol`.

The row tracks (`slm_swap.tracks.rows.track`) and the agent track (`slm_swap.tracks.agent.track`) are its two
implementations. Code outside a track's slice asks `slm_swap.tracks.registry.get_track(name)` and calls these
members; it never asks which track it holds. Records are the track's own (a row record, a task record): the
harness keeps them by case id and hands them back to the track that made them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Flags = Mapping[str, Mapping[str, Any]]  # case id -> check -> passed (a tuple of flags for a per-turn check)


@dataclass(frozen=True)
class Collected:
    """What one case's pytest report carries for its track: the record, the model's description, why it was
    excluded (a case whose ground truth cannot be scored), and anything else the track keeps per case."""

    case_id: str
    record: Any = None
    model: Mapping[str, Any] | None = None
    excluded: str | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class CollectedRun:
    """One track's part of a run, as the controller gathered it from the reports."""

    records: dict[str, Any] = field(default_factory=dict)  # case id -> the track's record
    excluded: dict[str, str] = field(default_factory=dict)  # case id -> why it cannot be scored
    extras: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # case id -> the track's extra properties
    model: Mapping[str, Any] = field(default_factory=dict)  # the answering model's description

    def add(self, collected: Collected) -> None:
        if collected.record is not None:
            self.records[collected.case_id] = collected.record
        if collected.excluded is not None:
            self.excluded[collected.case_id] = collected.excluded
        if collected.extras:
            self.extras[collected.case_id] = collected.extras
        if collected.model and not self.model:
            self.model = dict(collected.model)

    def sorted_records(self) -> list[Any]:
        return [self.records[case_id] for case_id in sorted(self.records)]


class TrackDefinition(Protocol):
    """A track's constants, low in the layers: what the rules compare, without the machinery."""

    name: str
    core_metrics: tuple[str, ...]
    checks: tuple[str, ...]
    reported_metrics: tuple[str, ...]
    case_noun: str  # what a case is called in verdicts: "row", "task"
    missing_hosted_hint: str  # added to the decision's error when the hosted run's file is missing ("" for none)


class Track(Protocol):
    """A kind of traffic the SLM must take over, evaluated case by case."""

    name: str  # the split folder, the metric files' prefix, `-k <name>`
    case_noun: str  # what a case is called in verdicts: "row", "task"
    core_metrics: tuple[str, ...]  # the rates the decision and the gate compare, one per paired check
    checks: tuple[str, ...]  # the flags two runs are paired on: `<check>_rate` is a core metric
    reported_metrics: tuple[str, ...]  # rates shown beside the verdict that enter no rule
    answered_by: frozenset[str]  # the `--model` values that answer this track
    case_fixture: str  # the evals test's parameter that holds one case ("row", "task")

    def refusal(self, model: str) -> str | None:
        """Why `--model=<model>` cannot answer this track (None when it can): the usage error's text."""

    def parametrize(self, metafunc: Any, context: Any) -> None:
        """One pytest case per case of the run (after --limit), the case id its id."""

    def collect(self, report: Any) -> Collected | None:
        """This track's part of one test report; None when the report is not one of its cases."""

    def run_tag(self, settings: Any) -> str | None:
        """The tag in the run's file names (`<track>_<model>[_<tag>]`)."""

    def metric_part(self, run: CollectedRun, settings: Any, context: Any) -> dict[str, Any]:
        """The metric document's track-specific part: counts, rates, intervals and what else the track reports."""

    def prediction_lines(self, records: Sequence[Any]) -> list[dict[str, Any]]:
        """The predictions JSONL's lines, one per case, sorted as given."""

    def write_more(self, run: CollectedRun, settings: Any, document: dict[str, Any]) -> None:
        """Files beside the predictions (and their mention in `document`), when the run asked for them."""

    def trace(
        self, langfuse: Any, settings: Any, document: Mapping[str, Any], run: CollectedRun, context: Any, secrets: Sequence[str]
    ) -> Any:
        """The run's Langfuse trace; returns its reference (`trace_id`, `url`)."""

    def summary_lines(self, document: Mapping[str, Any]) -> list[str]:
        """Lines the terminal summary adds for this track, after the rates."""

    def flags(self, records: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Each case's paired flags, by case id."""

    def recompute(self, predictions: Path) -> tuple[dict[str, Any], Flags]:
        """The numbers a metric file should state and each case's flags, read from a predictions file."""

    def reference_problem(self, reference: Mapping[str, Any], settings: Any, reference_path: Path) -> str | None:
        """Why a gate reference of this track cannot be compared with this run (None when it can)."""

    def check_predictions(self, path: Path) -> None:
        """Read a predictions file of this track whole (replay); DatasetError names the file and line."""

    def decision_runs(self, eval_dir: Path, hosted_model: str, after_tag: str, arm: str) -> tuple[Path, Path, Path]:
        """The metric files the decision compares by default: hosted, SLM, and the SLM after fine-tuning."""

    def report_section(self, eval_dir: Path) -> list[str]:
        """The report's markdown lines for this track's runs beyond the row tables (none when it has none)."""
