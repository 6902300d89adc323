"""A row track's part of its run's Langfuse trace: each row a generation under the run's root, its checks 0/1 scores.

The run's root, its rate scores and the recording itself are the same for every track (`slm_swap.tracing.runs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slm_swap.data.rows import Row
from slm_swap.formats.jsontext import is_number
from slm_swap.harness.settings import EvalSettings
from slm_swap.harness.trace import eval_run_trace, unix_time
from slm_swap.prompts import build_messages
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.recorder import Score, SpanTree
from slm_swap.tracing.runs import record_eval_run

SUMMARY_KEYS = ("n", "errors", "passed", "failures", "error_classes", "retries", "usage", "cached_rows", "content_filtered")
RECORD_METADATA = ("passed", "failure", "detail", "error_class", "finish_reason", "retries", "cached")


@dataclass(frozen=True)
class RowTrace:
    """One evaluated row; becomes a generation named after the row id, its checks 0/1 scores on it."""

    row_id: str
    messages: Sequence[Mapping[str, str]]
    output: str | None
    gold: str
    started_at: float  # unix seconds
    latency_s: float
    checks: Mapping[str, bool]
    usage: Mapping[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    error: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)  # failure kind, error class, finish reason, ...

    def span(self, model_name: str, fallback_at: float) -> SpanTree:
        ended_at = self.started_at + self.latency_s
        return SpanTree(
            self.row_id,
            self.started_at,
            ended_at,
            kind="generation",
            input=[dict(m) for m in self.messages],
            output=self.output,
            metadata={"gold_completion": self.gold, "latency_s": self.latency_s, "error": self.error, **self.metadata},
            level="ERROR" if self.error else None,
            status_message=self.error,
            model=model_name,
            usage=self.usage,
            scores=[Score(check, 1.0 if passed else 0.0, "BOOLEAN", ended_at) for check, passed in self.checks.items()],
        )


def row_trace_from_record(row: Row, record: RowRecord, *, started_at: float) -> RowTrace:
    """The trace view of one harness row record (`slm_swap.harness.records.make_row_record`) and its dataset row."""
    plain = record.to_json()  # enums as their values: the metadata stays plain JSON
    extra = {key: plain[key] for key in RECORD_METADATA if plain[key] not in (None, "", {})}
    return RowTrace(
        row_id=record.id,
        messages=build_messages(row.prompt),
        output=record.output,
        gold=row.completion,
        started_at=started_at,
        latency_s=float(record.latency_s) if is_number(record.latency_s) and math.isfinite(record.latency_s) else 0.0,
        checks=dict(record.flags),
        usage=dict(record.usage or {}),
        error=record.error,
        metadata=extra,
    )


def trace_eval_run(
    langfuse: LangfuseSettings,
    settings: EvalSettings,
    document: dict[str, Any],
    records: Sequence[RowRecord],
    rows: Mapping[str, Row],
    secrets: Sequence[str],
) -> TraceRef:
    track = document["track"]
    row_traces = []
    for record in records:
        row = rows.get(record.id) or Row(record.id, -1, track, "", "")
        started = record.started_at or unix_time(document["started_at"])
        row_traces.append(row_trace_from_record(row, record, started_at=started))
    return record_eval_run(langfuse, eval_run_trace(settings, document, SUMMARY_KEYS), row_traces, secrets=secrets)
