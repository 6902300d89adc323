"""The row tracks' implementation of the track protocol: one case per dataset row, one reply per case.

Structured output and tool calling differ only in their definition (`slm_swap.tracks.rows.definitions`: checks,
scorer, gold formatter); everything a run does with their rows (cases, records, metric files, traces, pairing)
is written once here, over the harness's row machinery (`slm_swap.harness.records`, `invariance`), with their part of
the trace in `slm_swap.tracks.rows.trace`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data.rows import DatasetError
from slm_swap.harness.invariance import ALONE_PROPERTY, compare_alone, invariance_block
from slm_swap.harness.invariance import summary_line as invariance_summary
from slm_swap.harness.records import prediction_lines, read_row_records, record_from_report, summarize
from slm_swap.harness.selection import BROKEN_ID
from slm_swap.layout import metric_path
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracks.protocol import Collected, CollectedRun, Flags
from slm_swap.tracks.rows.definitions import Track as RowDefinition
from slm_swap.tracks.rows.definitions import get_track as row_definition


class RowTrack:
    """A row track (`structured`, `toolcall`) behind the track protocol."""

    case_noun = "row"
    case_fixture = "row"
    answered_by = frozenset({"azure", "slm", "replay", "routed"})

    def __init__(self, definition: RowDefinition) -> None:
        self.definition = definition
        self.name = definition.name
        self.core_metrics = definition.core_metrics
        self.checks = definition.checks
        self.reported_metrics = definition.reported_metrics

    def refusal(self, model: str) -> str | None:
        if model in self.answered_by:
            return None
        return f"--model={model} answers the agent track only (-k agent)"

    def parametrize(self, metafunc: pytest.Metafunc, context: Any) -> None:
        try:
            rows = context.selected_rows(self.name)
        except DatasetError as exc:
            # reported only if this track's case survives -k: `-k toolcall` must not fail on a structured dataset it never reads
            context.broken[self.name] = str(exc)
            metafunc.parametrize("row", [None], ids=[BROKEN_ID])
            return
        # an ordered list, so every xdist worker collects the same cases in the same order
        metafunc.parametrize("row", rows, ids=[row.id for row in rows])

    def collect(self, report: pytest.TestReport) -> Collected | None:
        found = record_from_report(report)
        if found is None or found[0] != self.name:
            return None
        _, record, model = found
        properties = dict(report.user_properties)
        extras = {ALONE_PROPERTY: properties[ALONE_PROPERTY]} if ALONE_PROPERTY in properties else {}
        return Collected(record.id, record, model, extras=extras)

    def run_tag(self, settings: Any) -> str | None:
        return settings.tag

    def metric_part(self, run: CollectedRun, settings: Any, context: Any) -> dict[str, Any]:
        part = summarize(self.name, run.sorted_records())
        if settings.check_batch_invariance:
            alone = {case_id: extras[ALONE_PROPERTY] for case_id, extras in run.extras.items() if ALONE_PROPERTY in extras}
            comparison = compare_alone(self.name, run.records, alone, context.rows_by_id(self.name))
            block = invariance_block(settings.check_batch_invariance, settings.engine, settings.batch_invariant, comparison)
            part["batch_invariance"] = block
        return part

    def prediction_lines(self, records: Sequence[RowRecord]) -> list[dict[str, Any]]:
        return prediction_lines(list(records))

    def write_more(self, run: CollectedRun, settings: Any, document: dict[str, Any]) -> None:
        return None  # a row run writes its metric file and predictions only

    def trace(
        self, langfuse: Any, settings: Any, document: Mapping[str, Any], run: CollectedRun, context: Any, secrets: Sequence[str]
    ) -> Any:
        from slm_swap.tracks.rows.trace import trace_eval_run  # the Langfuse SDK comes with it: loaded once the run is under way

        return trace_eval_run(langfuse, settings, dict(document), run.sorted_records(), context.rows_by_id(self.name), secrets)

    def summary_lines(self, document: Mapping[str, Any]) -> list[str]:
        return ["  " + invariance_summary(document["batch_invariance"])] if "batch_invariance" in document else []

    def flags(self, records: Mapping[str, RowRecord]) -> dict[str, dict[str, Any]]:
        return {row_id: dict(record.flags) for row_id, record in records.items()}

    def recompute(self, predictions: Path) -> tuple[dict[str, Any], Flags]:
        rows = read_row_records(predictions)
        return summarize(self.name, list(rows.values())), self.flags(rows)

    def reference_problem(self, reference: Mapping[str, Any], settings: Any, reference_path: Path) -> str | None:
        return None  # a row run has no arm: any reference of the track compares

    def check_predictions(self, path: Path) -> None:
        from slm_swap.backends.replay import load_predictions

        load_predictions(path)

    def decision_runs(self, eval_dir: Path, hosted_model: str, after_tag: str, arm: str) -> tuple[Path, Path, Path]:
        return (
            metric_path(eval_dir, self.name, hosted_model),
            metric_path(eval_dir, self.name, "slm"),
            metric_path(eval_dir, self.name, "slm", after_tag),
        )

    def report_section(self, eval_dir: Path) -> list[str]:
        return []  # the report's tables, chart and examples are the row tracks' own (`slm_swap.report`)


def track(name: str) -> RowTrack:
    return RowTrack(row_definition(name))
