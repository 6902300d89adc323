"""One evaluation run's rows and the files they become: the metric JSON and the predictions JSONL.

Row records are plain dicts because they travel between processes inside pytest
reports (`report.user_properties`) under pytest-xdist.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.data.rows import Row
from slm_swap.scoring.metrics import compute_rates, count_errors, count_failures
from slm_swap.scoring.scorers import CHECKS, FailureKind, RowResult

ROW_PROPERTY = "slm_swap_row"
METRIC_SCHEMA = 1


def make_row_record(row: Row, answer: Answer, result: RowResult) -> dict[str, Any]:
    return {
        "id": row.id,
        "track": row.track,
        "output": answer.text,
        "flags": dict(result.flags),
        "passed": result.passed,
        "failure": result.failure.value if result.failure else None,
        "detail": result.detail,
        "latency_s": round(answer.latency_s, 6),
        "error": answer.error,
        "error_class": answer.error_class,
        "finish_reason": answer.finish_reason,
        "usage": dict(answer.usage),
        "retries": dict(answer.retries),
        "cached": answer.cached,
        "started_at": answer.started_at,
    }


def error_record(track: str, row_id: str, error: str, error_class: str) -> dict[str, Any]:
    """A row that never got an answer (crashed worker, failed setup): it fails every check."""
    flags = dict.fromkeys(CHECKS[track], False)
    result = RowResult(track, flags, FailureKind.MODEL_ERROR, error, tuple(flags))
    row = Row(row_id, -1, track, "", "")
    return make_row_record(row, Answer(text=None, error=error, error_class=error_class), result)


def record_to_result(record: dict[str, Any]) -> RowResult:
    failure = FailureKind(record["failure"]) if record["failure"] else None
    flags = dict(record["flags"])
    failed = tuple(name for name in CHECKS[record["track"]] if not flags[name])
    return RowResult(record["track"], flags, failure, record.get("detail", ""), failed)


def sum_counts(records: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for record in records:
        total.update(record.get(key) or {})
    return dict(sorted(total.items()))


def summarize(track: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates, counts and usage over all rows of a run; the part of the metric file that is not identity."""
    results = [record_to_result(r) for r in records]
    error_classes = Counter(r["error_class"] for r in records if r["output"] is None and r["error_class"])
    return {
        "n": len(records),
        "errors": count_errors(results),
        "metrics": compute_rates(track, results),
        "passed": sum(1 for r in results if r.passed),
        "failures": count_failures(results),
        "error_classes": dict(sorted(error_classes.items())),
        "content_filtered": sum(1 for r in records if r.get("finish_reason") == "content_filter"),
        "retries": sum_counts(records, "retries"),
        "usage": sum_counts(records, "usage"),
        "cached_rows": sum(1 for r in records if r.get("cached")),
    }


def prediction_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("id", "track", "output", "flags", "failure", "latency_s", "error", "error_class", "finish_reason", "usage")
    return [{k: r.get(k) for k in keys} for r in sorted(records, key=lambda r: r["id"])]


def load_metric_file(path: Path) -> dict[str, Any]:
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: metric file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable metric file ({exc})") from exc
    if not isinstance(data, dict) or "track" not in data or "metrics" not in data:
        raise ValueError(f"{path}: not an SLM Swap metric file (no 'track' and 'metrics')")
    return data
