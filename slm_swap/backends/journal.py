"""The answer journal and cache, the one for every track: each answer is appended as soon as it arrives.

One JSONL file per model identity (endpoint + deployment, or checkpoint + adapter
+ quantisation, with the generation settings). A line is keyed by the exact
messages, so a resumed or repeated run asks the model only for what it has not
answered. Lines are appended with one `write` on an O_APPEND descriptor, so
xdist workers can share a file; a line cut short by a crash is dropped on read,
and the next append starts on a fresh line rather than glued onto it.

`JournalledCalls` puts a batch call behind a journal file; what differs between tracks is an `Entry`: how an item
is keyed (a row's messages, an agent step's chat), where it came from, and how its answer is written and read
back. `CachedModel` is the row tracks' use (`ROW_ENTRY`); the agent track journals its steps' replies
(`slm_swap.tracks.agent.run.policy`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

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


Item = TypeVar("Item")
Reply = TypeVar("Reply")


@dataclass(frozen=True)
class Entry(Generic[Item, Reply]):
    """How one kind of item is journalled: its key, the fields saying which case it belongs to, and its answer
    written as a record and read back (None: a line this entry did not write, so the item is asked again)."""

    key: Callable[[Item], str]
    where: Callable[[Item], dict[str, Any]]
    to_record: Callable[[Reply], dict[str, Any]]
    from_record: Callable[[dict[str, Any]], Reply | None]


class JournalledCalls(Generic[Item, Reply]):
    """A batch call behind a journal file: items it holds answers for are answered from it as `reuse` allows, the
    others asked in one call, each answer journalled. Safe to call from several threads (the concurrent hosted rows)."""

    def __init__(self, ask: Callable[[list[Item]], Sequence[Reply]], file: JournalFile, entry: Entry[Item, Reply]) -> None:
        self.ask, self.file, self.entry = ask, file, entry
        self.reused = 0
        self._lock = threading.Lock()

    def reusable(self, item: Item) -> Reply | None:
        record = self.file.reusable(self.entry.key(item))
        return None if record is None else self.entry.from_record(record)

    def __call__(self, items: list[Item]) -> list[Reply]:
        replies: list[Reply | None] = [self.reusable(item) for item in items]
        with self._lock:
            self.reused += sum(reply is not None for reply in replies)
        missing = [index for index, reply in enumerate(replies) if reply is None]
        if missing:
            for index, reply in zip(missing, self.ask([items[i] for i in missing]), strict=True):
                replies[index] = reply
                item = items[index]
                record = {"key": self.entry.key(item), **self.entry.where(item), "answer": self.entry.to_record(reply)}
                self.file.journal.append_record(record)
        return [reply for reply in replies if reply is not None]


def row_key(row: Row) -> str:
    return messages_key(build_messages(row.prompt))


def cached_answer(record: dict[str, Any]) -> Answer:
    return Answer.from_record({**record, "cached": True})


ROW_ENTRY: Entry[Row, Answer] = Entry(row_key, lambda row: {"id": row.id, "track": row.track}, Answer.to_record, cached_answer)


class CachedModel:
    """Wraps a model: reuses journalled answers as `reuse` allows, journals every new one."""

    def __init__(self, inner: Model, cache_dir: Path, reuse: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.file = JournalFile(cache_dir, inner.name, inner.describe(), reuse)
        self.calls = JournalledCalls(lambda rows: [inner.answer(row) for row in rows], self.file, ROW_ENTRY)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), **self.file.describe()}

    def prepare(self, rows: Sequence[Row]) -> None:
        self.inner.prepare([row for row in rows if self.calls.reusable(row) is None])

    def answer(self, row: Row) -> Answer:
        return self.calls([row])[0]

    def generate_alone(self, rows: Sequence[Row]) -> None:
        """The batch invariance check, passed to the model (only the local SLM has it); alone answers are not journalled."""
        self.inner.generate_alone(rows)  # type: ignore[attr-defined]

    def alone_answer(self, row: Row) -> Answer | None:
        return self.inner.alone_answer(row)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.file.close()
        self.inner.close()
