"""The receiver's dump folder: one `trace-<id>.json` per trace and an `index.json`, written in batches.

Each span and score is encoded to JSON text once, when it arrives; a trace file is then those texts joined, so
writing it costs its size and no re-encoding. Writes happen on a background thread, not in the request: once
uploads pause for `QUIET_S`, or once the oldest unwritten upload has waited `max(MAX_WAIT_S, 10 x the last
write's time)`, so the writer never takes more than about a tenth of the receiver's time however large a trace
grows, and a run's thousands of spans cost a few rewrites instead of one per upload. `close()` (the receiver's
`stop()`, and so the CLI's SIGTERM) writes what is left. Files are replaced atomically: a receiver killed at any
moment leaves whole files behind, at most that wait behind what it had received. The files read exactly as
`json.dumps(document, indent=2, ensure_ascii=False)` would write them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.files import write_json_atomic, write_text_atomic
from slm_swap.tracing.receiver.otlp import ReceivedSpan

QUIET_S = 0.3  # uploads this far apart are one burst: write once it is over
MAX_WAIT_S = 2.0  # during a long burst, the files lag at most this far behind (or 10 x the last write)
INDENT = "    "  # an item of `spans` or `scores` sits two levels deep


def item_text(value: Any) -> str:
    """`value` as it reads inside a list that is a field of the document (json.dumps's indent=2 layout)."""
    return INDENT + json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False).replace("\n", "\n" + INDENT)


def list_text(items: list[str]) -> str:
    return "[]" if not items else "[\n" + ",\n".join(items) + "\n  ]"


def trace_file_text(trace_id: str, name: str | None, spans: list[str], scores: list[str]) -> str:
    head = f'  "trace_id": {json.dumps(trace_id)},\n  "name": {json.dumps(name, ensure_ascii=False)},\n'
    return "{\n" + head + f'  "spans": {list_text(spans)},\n  "scores": {list_text(scores)}\n}}\n'


@dataclass
class TraceEntry:
    """One trace as the dump holds it: span texts with their start times (arrival order) and score texts."""

    trace_id: str
    named: str | None = None  # the first `langfuse.trace.name` that arrived
    root: str | None = None  # the first root span's name, when no span carries a trace name
    spans: list[tuple[int, str]] = field(default_factory=list)
    scores: list[str] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.named or self.root

    def text(self) -> str:
        ordered = sorted(self.spans, key=lambda item: item[0])  # stable: equal starts stay in arrival order
        return trace_file_text(self.trace_id, self.name, [text for _, text in ordered], list(self.scores))


class DumpWriter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()  # guards the entries and the pending set
        self._write_lock = threading.Lock()  # one writer at a time: the thread, or flush() from close()
        self._entries: dict[str, TraceEntry] = {}
        self._span_order: list[str] = []  # traces in the order their first span arrived
        self._untraced: list[dict[str, Any]] = []
        self._pending: set[str] = set()
        self._index_pending = False
        self._first_pending = 0.0
        self._last_upload = 0.0
        self._last_write_s = 0.0
        self._wake, self._closing = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def add_spans(self, spans: list[ReceivedSpan]) -> None:
        encoded = [(s, item_text(s.to_json())) for s in spans]  # outside the lock: requests encode side by side
        with self._lock:
            for span, text in encoded:
                entry = self._entry(span.trace_id)
                if not entry.spans:
                    self._span_order.append(span.trace_id)
                entry.spans.append((span.start_time_ns, text))
                entry.named = entry.named or span.attributes.get("langfuse.trace.name")
                if span.parent_span_id is None and entry.root is None:
                    entry.root = span.name
            self._mark({s.trace_id for s in spans})

    def add_scores(self, scores: list[dict[str, Any]]) -> None:
        encoded = [(s, item_text(s)) for s in scores]
        with self._lock:
            for score, text in encoded:
                if score.get("traceId"):
                    self._entry(score["traceId"]).scores.append(text)
                else:
                    self._untraced.append(score)
            self._mark({s["traceId"] for s in scores if s.get("traceId")})

    def clear(self) -> None:
        """Forget what arrived; the files stay until the next write lists only what comes after."""
        with self._lock:
            self._entries.clear()
            self._span_order.clear()
            self._untraced.clear()
            self._pending.clear()

    def flush(self) -> None:
        """Write every pending file now."""
        with self._write_lock:
            with self._lock:
                if not self._pending and not self._index_pending:
                    return
                started = time.monotonic()
                # texts are immutable and lists are copied, so the files are built outside the lock
                files = {t: (self._entries[t], list(self._entries[t].spans), list(self._entries[t].scores)) for t in self._pending}
                index = self._index()
                self._pending, self._index_pending = set(), False
            for trace_id, (entry, spans, scores) in sorted(files.items()):
                snapshot = TraceEntry(trace_id, entry.named, entry.root, spans, scores)
                write_text_atomic(self.folder / f"trace-{trace_id}.json", snapshot.text())
            write_json_atomic(self.folder / "index.json", index)
            self._last_write_s = time.monotonic() - started

    def close(self) -> None:
        """Stop the background writer and write what is left; a later upload starts a new writer."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._closing.clear()
        self.flush()

    def _entry(self, trace_id: str) -> TraceEntry:
        if trace_id not in self._entries:
            self._entries[trace_id] = TraceEntry(trace_id)
        return self._entries[trace_id]

    def _mark(self, trace_ids: set[str]) -> None:
        now = time.monotonic()
        if not self._pending and not self._index_pending:
            self._first_pending = now
        self._pending |= trace_ids
        self._index_pending = True
        self._last_upload = now
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="langfuse-receiver-dump", daemon=True)
            self._thread.start()
        self._wake.set()

    def _index(self) -> dict[str, Any]:
        listed = self._span_order + [t for t in self._entries if not self._entries[t].spans]
        traces = [
            {"trace_id": t, "name": e.name, "spans": len(e.spans), "scores": len(e.scores), "file": f"trace-{t}.json"}
            for t, e in ((t, self._entries[t]) for t in listed)
        ]
        return {"traces": traces, "untraced_scores": list(self._untraced)}

    def _due_in(self) -> float:
        """Seconds until the pending files are due (0: now)."""
        with self._lock:
            if not self._pending and not self._index_pending:
                return float("inf")
            now = time.monotonic()
            quiet = self._last_upload + QUIET_S - now
            overdue = self._first_pending + max(MAX_WAIT_S, 10 * self._last_write_s) - now
            return max(0.0, min(quiet, overdue))

    def _run(self) -> None:
        while not self._closing.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._closing.is_set() and (wait := self._due_in()) > 0:
                if wait == float("inf"):
                    break  # nothing pending (cleared): sleep until the next upload
                self._closing.wait(wait)
            if not self._closing.is_set():
                self.flush()
