"""The `replay` model: answers rows from a predictions JSONL the harness wrote earlier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.data.rows import DatasetError, Row, parse_id_record, read_lines
from slm_swap.files import sha256_file
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
            raise DatasetError(f"{self.path}: no prediction for {len(missing)} selected row(s): {shown}")

    def answer(self, row: Row) -> Answer:
        record = self.records.get((row.track, row.id)) or self.records[(None, row.id)]
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
