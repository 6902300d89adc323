"""The answer journal and cache: every model answer is appended as soon as it arrives.

One JSONL file per model identity (endpoint + deployment, or checkpoint + adapter
+ quantisation, with the generation settings). A line is keyed by the exact
messages, so a resumed or repeated run asks the model only for rows it has not
answered. Lines are appended with one `write` on an O_APPEND descriptor, so
xdist workers can share a file; a line cut short by a crash is dropped on read,
and the next append starts on a fresh line rather than glued onto it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.backends.api import Answer, Model
from slm_swap.data.rows import Row
from slm_swap.formats.jsontext import canonical_bytes
from slm_swap.prompts import build_messages

REUSE_NONE, REUSE_ALL, REUSE_SUCCESSES = "none", "all", "successes"
# Settings in a model's describe() that change how hard a call is tried, not what it answers:
# a run resumed after an outage with a longer budget or more retries must find its journal.
EFFORT_KEYS = frozenset({"timeout_s", "max_retries", "row_budget_s", "base_wait_s", "max_wait_s", "circuit_threshold"})


class JournalError(RuntimeError):
    """The answer journal cannot be read or written; the message names the file and what to do."""


def unusable_journal(path: Path, exc: OSError) -> JournalError:
    return JournalError(
        f"{path}: cannot use the answer journal ({exc.strerror}: {exc.filename}); choose another --cache-dir or pass --no-cache"
    )


def identity_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes({k: v for k, v in identity.items() if k not in EFFORT_KEYS})).hexdigest()


def messages_key(messages: list[dict[str, str]]) -> str:
    return hashlib.sha256(canonical_bytes(messages)).hexdigest()


@dataclass
class JournalRead:
    answers: dict[str, dict[str, Any]]
    dropped_lines: int


def read_journal(path: Path) -> JournalRead:
    answers: dict[str, dict[str, Any]] = {}
    dropped = 0
    try:
        with open(path, "rb") as handle:
            lines = handle.readlines()
    except FileNotFoundError:
        return JournalRead(answers, 0)
    except OSError as exc:
        raise unusable_journal(path, exc) from None
    for raw in lines:
        if not raw.strip():
            continue  # two workers that both mended a cut line leave an empty one
        try:
            record = json.loads(raw)
            answers[record["key"]] = record["answer"]  # later lines win: a retried error is replaced
        except (ValueError, KeyError, TypeError):
            dropped += 1
    return JournalRead(answers, dropped)


def ends_with_newline(path: Path) -> bool:
    """True for an empty file or one whose last byte ends a line."""
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


class AnswerJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if not ends_with_newline(path):
                os.write(self._fd, b"\n")  # end a line a crash cut short, so the next record is not glued to it
        except OSError as exc:
            raise unusable_journal(path, exc) from None

    def append(self, key: str, row: Row, answer: Answer) -> None:
        self.append_record({"key": key, "id": row.id, "track": row.track, "answer": answer.to_record()})

    def append_record(self, record: dict[str, Any]) -> None:
        """One line `{"key": ..., ..., "answer": {...}}`, written whole."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        with self._lock:  # hosted answers arrive from several threads; each line is written whole
            os.write(self._fd, line)

    def close(self) -> None:
        os.close(self._fd)


class JournalFile:
    """One model identity's journal, `<cache_dir>/<stem>-<identity>.jsonl`: the answers it already holds, handed
    out as `reuse` allows (an answer without text is an error: `successes` asks again), and the appender."""

    def __init__(self, cache_dir: Path, stem: str, identity: dict[str, Any], reuse: str) -> None:
        self.reuse = reuse
        self.path = Path(cache_dir) / f"{stem}-{identity_key(identity)[:16]}.jsonl"
        previous = read_journal(self.path) if reuse != REUSE_NONE else JournalRead({}, 0)
        self.cached = previous.answers
        self.dropped_lines = previous.dropped_lines
        self.journal = AnswerJournal(self.path)

    def reusable(self, key: str) -> dict[str, Any] | None:
        record = self.cached.get(key)
        if record is None or (self.reuse == REUSE_SUCCESSES and record.get("text") is None):
            return None
        return record

    def describe(self) -> dict[str, Any]:
        return {"answer_journal": str(self.path), "answer_journal_dropped_lines": self.dropped_lines}

    def close(self) -> None:
        self.journal.close()


class CachedModel:
    """Wraps a model: reuses journalled answers as `reuse` allows, journals every new one."""

    def __init__(self, inner: Model, cache_dir: Path, reuse: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.file = JournalFile(cache_dir, inner.name, inner.describe(), reuse)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), **self.file.describe()}

    def reusable(self, row: Row) -> Answer | None:
        record = self.file.reusable(messages_key(build_messages(row.prompt)))
        return None if record is None else Answer.from_record({**record, "cached": True})

    def prepare(self, rows: Sequence[Row]) -> None:
        self.inner.prepare([row for row in rows if self.reusable(row) is None])

    def answer(self, row: Row) -> Answer:
        cached = self.reusable(row)
        if cached is not None:
            return cached
        answer = self.inner.answer(row)
        self.file.journal.append(messages_key(build_messages(row.prompt)), row, answer)
        return answer

    def generate_alone(self, rows: Sequence[Row]) -> None:
        """The batch invariance check, passed to the model (only the local SLM has it); alone answers are not journalled."""
        self.inner.generate_alone(rows)  # type: ignore[attr-defined]

    def alone_answer(self, row: Row) -> Answer | None:
        return self.inner.alone_answer(row)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.file.close()
        self.inner.close()
