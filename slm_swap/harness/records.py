"""One evaluation run's rows and the files they become: the metric JSON and the predictions JSONL.

A row's outcome is a `RowRecord` (`slm_swap.scoring.outcomes`). Between processes it travels as JSON
inside its pytest report (`report.user_properties`, which pytest-xdist carries as builtin types only);
`record_from_report` turns a report back into a record.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from slm_swap.backends.api import Answer
from slm_swap.data.rows import Row
from slm_swap.scoring.metrics import compute_rates, count_errors, count_failures, count_passes, rate_intervals
from slm_swap.scoring.outcomes import ErrorClass, FailureKind, RowRecord
from slm_swap.scoring.scorers import RowResult
from slm_swap.tracks.rows.definitions import TRACK_NAMES, get_track

ROW_PROPERTY = "slm_swap_row"
MODEL_PROPERTY = "slm_swap_model"
METRIC_SCHEMA = 1
# the node id of one row's case: `evals/test_<track>.py::test_<track>[<row id>]`
ROW_NODE = re.compile(r"::test_(" + "|".join(map(re.escape, TRACK_NAMES)) + r")\[([^\]]+)\]$")


def make_row_record(row: Row, answer: Answer, result: RowResult) -> RowRecord:
    return RowRecord(
        id=row.id,
        track=row.track,
        output=answer.text,
        flags=dict(result.flags),
        passed=result.passed,
        failure=result.failure,
        detail=result.detail,
        latency_s=round(answer.latency_s, 6),
        error=answer.error,
        error_class=answer.error_class,
        finish_reason=answer.finish_reason,
        usage=dict(answer.usage),
        retries=dict(answer.retries),
        cached=answer.cached,
        started_at=answer.started_at,
    )


def error_record(track: str, row_id: str, error: str, error_class: ErrorClass) -> RowRecord:
    """A row that never got an answer (crashed worker, failed setup): it fails every check."""
    flags = dict.fromkeys(get_track(track).checks, False)
    result = RowResult(track, flags, FailureKind.MODEL_ERROR, error, tuple(flags))
    row = Row(row_id, -1, track, "", "")
    return make_row_record(row, Answer(text=None, error=error, error_class=error_class), result)


def parse_row_node(nodeid: str) -> tuple[str, str] | None:
    match = ROW_NODE.search(nodeid)
    return (match.group(1), match.group(2)) if match else None


def record_from_report(report: pytest.TestReport) -> tuple[str, RowRecord, dict[str, Any] | None] | None:
    """The row record a test report carries; crashed or broken rows become error records."""
    parsed = parse_row_node(report.nodeid)
    if parsed is None:
        return None
    track, row_id = parsed
    props = dict(report.user_properties)
    if ROW_PROPERTY in props:
        return track, RowRecord.from_json(props[ROW_PROPERTY]), props.get(MODEL_PROPERTY)
    if report.when == "???":  # how pytest-xdist reports the row a worker died on
        return track, error_record(track, row_id, "the worker process crashed on this row", ErrorClass.WORKER_CRASH), None
    if report.when == "setup" and report.failed:
        message = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "setup failed"
        return track, error_record(track, row_id, message, ErrorClass.SETUP), None
    return None


def record_to_result(record: RowRecord) -> RowResult:
    flags = dict(record.flags)
    failed = tuple(name for name in get_track(str(record.track)).checks if not flags[name])
    return RowResult(str(record.track), flags, record.failure, record.detail, failed)


def sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for count in counts:
        total.update(count)
    return dict(sorted(total.items()))


def summarize(track: str, records: list[RowRecord]) -> dict[str, Any]:
    """Rates, counts and usage over all rows of a run; the part of the metric file that is not identity."""
    results = [record_to_result(r) for r in records]
    error_classes = Counter(str(r.error_class) for r in records if r.output is None and r.error_class)
    return {
        "n": len(records),
        "errors": count_errors(results),
        "metrics": compute_rates(get_track(track).checks, results),
        "counts": count_passes(get_track(track).checks, results),
        "intervals": rate_intervals(get_track(track).checks, results),
        "passed": sum(1 for r in results if r.passed),
        "failures": count_failures(results),
        "error_classes": dict(sorted(error_classes.items())),
        "content_filtered": sum(1 for r in records if r.finish_reason == "content_filter"),
        "retries": sum_counts(dict(r.retries) for r in records),
        "usage": sum_counts(dict(r.usage) for r in records),
        "cached_rows": sum(1 for r in records if r.cached),
    }


def prediction_lines(records: list[RowRecord]) -> list[dict[str, Any]]:
    return [r.prediction_json() for r in sorted(records, key=lambda r: r.id)]


def load_metric_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: metric file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable metric file ({exc})") from exc
    if not isinstance(data, dict) or "track" not in data or "metrics" not in data:
        raise ValueError(f"{path}: not an SLM Swap metric file (no 'track' and 'metrics')")
    return data


def read_row_records(path: Path) -> dict[str, RowRecord]:
    """A run's row records by id, from its predictions JSONL; ValueError names the file and line."""
    records: dict[str, RowRecord] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: not a readable predictions file ({exc})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            record = RowRecord.from_json(data)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path}: line {number}: not a predictions line ({exc})") from None
        if record.id in records:
            raise ValueError(f"{path}: line {number}: row {record.id!r} appears twice")
        records[record.id] = record
    return records
