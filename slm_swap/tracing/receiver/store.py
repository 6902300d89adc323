"""What the local Langfuse receiver got: requests, spans and scores, kept in memory and, with a dump folder, handed
to its `DumpWriter` (`dump`), which writes them as `trace-<id>.json` files and an `index.json` in batches.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.tracing.receiver.dump import DumpWriter
from slm_swap.tracing.receiver.otlp import ReceivedSpan

SCORE_TARGETS = ("traceId", "sessionId", "datasetRunId")


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it (decompressed body; no headers besides the content kind)."""

    method: str
    path: str
    status: int
    public_key: str | None
    content_type: str
    content_encoding: str
    body: bytes


def check_score(score: Any) -> str | None:
    """Why Langfuse would reject this score, or None when it is acceptable."""
    if not isinstance(score, dict):
        return "a score must be a JSON object"
    name, value = score.get("name"), score.get("value")
    if not isinstance(name, str) or not name:
        return "score has no name"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return f"score {name!r} has no numeric or string value"
    if not any(score.get(key) for key in SCORE_TARGETS):
        return f"score {name!r} names no trace, session or dataset run"
    if score.get("observationId") and not score.get("traceId"):
        return f"score {name!r} names an observation without its trace"
    if score.get("dataType") == "BOOLEAN" and value not in (0, 1):
        return f"boolean score {name!r} has value {value!r}, not 0 or 1"
    return None


class ReceiverStore:
    def __init__(self, dump_dir: Path | None = None) -> None:
        self.dump_dir = dump_dir
        self._dump = DumpWriter(dump_dir) if dump_dir is not None else None
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._spans: list[ReceivedSpan] = []
        self._scores: list[dict[str, Any]] = []

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._spans.clear()
            self._scores.clear()
        if self._dump is not None:
            self._dump.clear()

    def close(self) -> None:
        """Write what the dump folder still lacks and stop its writer (the receiver's stop)."""
        if self._dump is not None:
            self._dump.close()

    def add_request(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def add_spans(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)
        if self._dump is not None:
            self._dump.add_spans(spans)

    def add_scores(self, scores: list[dict[str, Any]]) -> None:
        with self._lock:
            self._scores.extend(scores)
        if self._dump is not None:
            self._dump.add_scores(scores)

    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]

    def scores(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._scores]

    def trace_ids(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(s.trace_id for s in self._spans))
