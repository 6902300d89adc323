"""The receiver's dump folder: the files read as before, uploads are written in batches, and a 600-task agent run
through the real Langfuse SDK arrives whole within the project's flush bound."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from slm_swap.bench.receiver import count_spans, synthetic_run, synthetic_tasks
from slm_swap.tracing.client import LangfuseSettings
from slm_swap.tracing.receiver import dump
from slm_swap.tracing.receiver.dump import DumpWriter
from slm_swap.tracing.receiver.otlp import ReceivedSpan
from slm_swap.tracing.receiver.server import LangfuseReceiver
from slm_swap.tracing.runs import record_eval_run

TRACE = "ab" * 16
KEYS = ("pk-lf-dump", "sk-lf-dump")


def span(span_id: int, start: int, *, parent: int | None = 1, trace: str = TRACE, **attributes: object) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id=trace,
        span_id=f"{span_id:016x}",
        parent_span_id=None if parent is None else f"{parent:016x}",
        name=f"span {span_id}",
        start_time_ns=start,
        end_time_ns=start + 5,
        attributes=dict(attributes),
        scope_name="langfuse-sdk",
        resource={"service.name": "test"},
    )


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def test_trace_file_is_the_text_json_dumps_would_write(tmp_path: Path) -> None:
    """Readers of the old files (indent=2, not ASCII-escaped, spans by start time, equal starts in arrival order) see
    the same bytes, though each span is now encoded once on arrival."""
    writer = DumpWriter(tmp_path)
    spans = [
        span(2, 30, **{"langfuse.observation.input": '{"q": "héllo"}', "n": [1, {"k": None}]}),
        span(1, 10, parent=None, **{"langfuse.trace.name": "eval:agent:gold"}),
        span(3, 30),
    ]
    writer.add_spans(spans[:2])
    writer.add_spans(spans[2:])
    writer.add_scores([{"traceId": TRACE, "name": "task_success", "value": 1.0}, {"sessionId": "s", "name": "x", "value": 2}])
    writer.close()
    document = {
        "trace_id": TRACE,
        "name": "eval:agent:gold",
        "spans": [spans[1].to_json(), spans[0].to_json(), spans[2].to_json()],
        "scores": [{"traceId": TRACE, "name": "task_success", "value": 1.0}],
    }
    assert (tmp_path / f"trace-{TRACE}.json").read_text() == json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    assert read(tmp_path, "index.json") == {
        "traces": [{"trace_id": TRACE, "name": "eval:agent:gold", "spans": 3, "scores": 1, "file": f"trace-{TRACE}.json"}],
        "untraced_scores": [{"sessionId": "s", "name": "x", "value": 2}],
    }


def test_trace_without_spans_still_gets_a_file_and_an_empty_list(tmp_path: Path) -> None:
    writer = DumpWriter(tmp_path)
    writer.add_scores([{"traceId": TRACE, "name": "rate", "value": 0.5}])
    writer.close()
    score = {"traceId": TRACE, "name": "rate", "value": 0.5}
    assert read(tmp_path, f"trace-{TRACE}.json") == {"trace_id": TRACE, "name": None, "spans": [], "scores": [score]}
    assert read(tmp_path, "index.json")["traces"][0]["scores"] == 1


def test_a_burst_of_uploads_is_written_in_one_batch_once_it_pauses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old store rewrote the whole trace on each of a run's uploads: quadratic in the run's size."""
    written: list[str] = []
    real_write = dump.write_text_atomic
    monkeypatch.setattr(dump, "write_text_atomic", lambda path, text: (written.append(Path(path).name), real_write(path, text)))
    monkeypatch.setattr(dump, "QUIET_S", 1.0)  # room for a loaded machine to pause between two uploads of the burst
    writer = DumpWriter(tmp_path)
    for i in range(50):
        writer.add_spans([span(i + 2, i)])
    deadline = time.monotonic() + 10
    while not (tmp_path / "index.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert read(tmp_path, "index.json")["traces"][0]["spans"] == 50  # written without close(): the burst ended
    assert written == [f"trace-{TRACE}.json"]
    writer.close()
    assert written == [f"trace-{TRACE}.json"]  # nothing left for close() to write


def test_a_long_burst_still_reaches_the_files_within_the_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dump, "QUIET_S", 10.0)  # uploads never pause long enough
    monkeypatch.setattr(dump, "MAX_WAIT_S", 0.2)
    writer = DumpWriter(tmp_path)
    started = time.monotonic()
    while not (tmp_path / "index.json").is_file() and time.monotonic() - started < 10:
        writer.add_spans([span(2, 0)])
        time.sleep(0.01)
    assert time.monotonic() - started < 5
    writer.close()


def test_clear_leaves_only_later_traces_in_the_index(tmp_path: Path) -> None:
    writer = DumpWriter(tmp_path)
    writer.add_spans([span(1, 0, parent=None)])
    writer.close()
    writer.clear()
    other = "cd" * 16
    writer.add_spans([span(1, 0, parent=None, trace=other)])
    writer.close()
    assert [t["trace_id"] for t in read(tmp_path, "index.json")["traces"]] == [other]
    assert (tmp_path / f"trace-{TRACE}.json").is_file()  # a file once written stays


def test_600_task_agent_run_arrives_whole_within_the_flush_bound(tmp_path: Path) -> None:
    """Issue 32: a 600-task, 6,000-step run (about 12,600 spans) recorded by `record_eval_run` into a receiver with a
    dump folder, in this process (so the receiver shares its interpreter with the SDK), within the 30 s bound."""
    at = time.time() - 1000
    tasks = synthetic_tasks(600, 10, 2, at)
    with LangfuseReceiver([KEYS], dump_dir=tmp_path) as receiver:
        settings = LangfuseSettings(*KEYS, receiver.url)
        assert settings.flush_timeout_s == 30.0  # the project's bound, not one raised for the test
        started = time.monotonic()
        ref = record_eval_run(settings, synthetic_run(600, at), tasks)  # raises TracingError past the bound
        took = time.monotonic() - started
        assert len(receiver.spans(ref.trace_id)) == count_spans(tasks) == 12_601
    trace = read(tmp_path, f"trace-{ref.trace_id}.json")
    assert len(trace["spans"]) == 12_601 and len({s["span_id"] for s in trace["spans"]}) == 12_601
    assert len(trace["scores"]) == 600 + 2  # task_success per task, two rates
    assert read(tmp_path, "index.json")["traces"] == [
        {"trace_id": ref.trace_id, "name": "eval:agent:gold", "spans": 12_601, "scores": 602, "file": f"trace-{ref.trace_id}.json"}
    ]
    assert took < settings.flush_timeout_s
