"""The one concurrency path and the one answer journal, driven with toys: what the row tracks and the agent track
both go through (`ConcurrentCalls`, `JournalledCalls` with an `Entry` of their own), and the one mapping from
`--model` to its answerer (`harness.factory.ANSWERERS`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from slm_swap.backends.concurrency import AdaptiveLimit, ConcurrentCalls
from slm_swap.backends.journal import REUSE_ALL, REUSE_NONE, REUSE_SUCCESSES, Entry, JournalFile, JournalledCalls
from slm_swap.harness.factory import ANSWERERS
from slm_swap.harness.settings import MODEL_CHOICES


def test_mapped_calls_come_back_in_order_with_no_more_in_flight_than_the_limit_starts_with():
    lock, in_flight, most = threading.Lock(), [0], [0]

    def call(item: int) -> int:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.02 * (5 - item % 5))  # later items finish first
        with lock:
            in_flight[0] -= 1
        return item * 10

    calls = ConcurrentCalls(AdaptiveLimit(3), thread_name_prefix="toy")
    assert calls.map(call, list(range(9))) == [i * 10 for i in range(9)]
    calls.close()
    assert most[0] == 3 and calls.describe()["start"] == 3


ERROR = "<error>"


def toy_reply(record: dict[str, Any]) -> str | None:
    text = record.get("text")
    if not isinstance(text, (str, type(None))):
        return None  # a line this entry did not write: asked again
    return ERROR if text is None else text


# a toy item: (key, what to ask); a toy reply: a text, or ERROR, journalled without text as the rows' errors are
TOY: Entry[tuple[str, str], str] = Entry(
    key=lambda item: item[0],
    where=lambda item: {"id": item[0]},
    to_record=lambda reply: {"text": None if reply == ERROR else reply},
    from_record=toy_reply,
)


def journalled_run(cache: Path, reuse: str, items: list[tuple[str, str]], asked: list[str], fail: set[str]) -> tuple[list, int]:
    def ask(batch: list[tuple[str, str]]) -> list[str]:
        asked.extend(key for key, _ in batch)
        return [ERROR if key in fail else text.upper() for key, text in batch]

    file = JournalFile(cache, "toy", {"name": "toy"}, reuse)
    calls = JournalledCalls(ask, file, TOY)
    replies = calls(items)
    file.close()
    return replies, calls.reused


def test_a_resumed_run_asks_only_what_the_journal_lacks_and_retry_errors_asks_the_errors_again(tmp_path: Path):
    items = [("a", "x"), ("b", "y"), ("c", "z")]
    asked: list[str] = []
    assert journalled_run(tmp_path, REUSE_NONE, items[:2], asked, fail={"b"}) == (["X", ERROR], 0)
    # --resume: a and b reused (b's error too, as journalled); only c asked
    assert journalled_run(tmp_path, REUSE_ALL, items, asked, fail=set()) == (["X", ERROR, "Z"], 2)
    assert asked == ["a", "b", "c"]
    # --retry-errors: the error is asked again, the answers are not
    assert journalled_run(tmp_path, REUSE_SUCCESSES, items, asked, fail=set()) == (["X", "Y", "Z"], 2)
    assert asked == ["a", "b", "c", "b"]


def test_every_model_choice_has_one_answerer_kind():
    assert set(ANSWERERS) == set(MODEL_CHOICES)
    hosted: dict[str, Any] = {name: kind.hosted for name, kind in ANSWERERS.items()}
    assert [name for name, is_hosted in hosted.items() if is_hosted] == ["azure"]
