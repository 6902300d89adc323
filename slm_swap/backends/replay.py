"""The `replay` model: answers rows from a predictions JSONL the harness wrote earlier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.data.rows import DatasetError, Row, parse_id_record, read_lines
from slm_swap.files import sha256_file
from slm_swap.formats.jsontext import non_finite_number, typed_problem
from slm_swap.scoring.outcomes import RowRecord


class ReplayModel:
    name = "replay"

    def __init__(self, predictions_path: Path) -> None:
        self.path = Path(predictions_path)
        self.records = load_predictions(self.path)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "predictions": str(self.path), "predictions_sha256": sha256_file(self.path)}

    def prepare(self, rows: Sequence[Row]) -> None:
        missing = [row.id for row in rows if (row.track, row.id) not in self.records and (None, row.id) not in self.records]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DatasetError(f"{self.path}: no prediction for {len(missing)} selected row(s): {shown}{self.hint(rows)}")

    def hint(self, rows: Sequence[Row]) -> str:
        """The likely fix: a run over the first N rows (the demo's `--limit 8`) is replayed with the same `--limit`."""
        covered = [row.id for row in rows if (row.track, row.id) in self.records or (None, row.id) in self.records]
        if covered and covered == [row.id for row in rows[: len(covered)]]:
            return f"; run with `--limit {len(covered)}`: the predictions cover {len(covered)} rows"
        return "; select the rows the predictions cover (the `--split`, `--dataset` or `--limit` of the run that wrote them)"

    def answer(self, row: Row) -> Answer:
        record = self.records.get((row.track, row.id)) or self.records.get((None, row.id))
        if record is None:  # a row `prepare` did not see (an xdist worker learns its share as it goes)
            raise DatasetError(f"{self.path}: no prediction for selected row {row.id}{self.hint([row])}")
        return Answer(
            text=record.output,
            latency_s=record.latency_s,
            error=record.error,
            error_class=record.error_class,
            finish_reason=record.finish_reason,
            usage=dict(record.usage),
        )

    def close(self) -> None:
        return None


def load_predictions(path: Path) -> dict[tuple[str | None, str], RowRecord]:
    """Predictions by (track, id); a file without a track field serves any track."""
    lines = read_lines(path, "predictions file")
    records: dict[tuple[str | None, str], RowRecord] = {}
    for index, line in enumerate(lines):
        where = f"{path}: row {index} (line {index + 1})"
        record = parse_id_record(line, where)
        problem = replayed_number_problem(record)
        if problem is not None:
            raise DatasetError(f"{where}: {problem}")
        output = record.get("output")
        if output is None and not record.get("error"):
            raise DatasetError(f"{where}: 'output' is missing and no 'error' is recorded")
        if output is not None and not isinstance(output, str):
            raise DatasetError(f"{where}: 'output' must be a string")
        try:
            prediction = RowRecord.from_json(record)
        except ValueError as exc:
            raise DatasetError(f"{where}: {exc}") from None
        key = (prediction.track, prediction.id)
        if key in records:
            raise DatasetError(f"{where}: duplicate prediction for {prediction.id}")
        records[key] = prediction
    return records


def replayed_number_problem(record: dict[str, Any]) -> str | None:
    """A number that is not finite anywhere in a predictions line, or a numeric field of the wrong type; None if none.
    Replay hands them on to the metric file and the trace, which must never hold NaN (issue 30)."""
    found = non_finite_number(record)
    if found is not None:
        return f"{found[0]} is {found[1]}, not a finite number"
    return typed_problem(record, numbers=("latency_s", "started_at"), counts=("usage", "retries"))
