"""Tracing through the real langfuse SDK into the local receiver: what arrives, what never does, and every way it fails."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import httpcore
import httpx
import pytest
from langfuse import Langfuse

from slm_swap.backends.api import Answer
from slm_swap.data.rows import Row
from slm_swap.harness.records import make_row_record
from slm_swap.prompts import build_messages
from slm_swap.tracing.client import (
    REDACTED,
    LangfuseSettings,
    TracingError,
    check_connection,
    describe_api_failure,
    redact,
    settings_from_env,
)
from slm_swap.tracing.receiver.server import LangfuseReceiver
from slm_swap.tracing.recorder import usage_details
from slm_swap.tracing.runs import (
    EvalRunTrace,
    TrainingRunTrace,
    record_decisions,
    record_eval_run,
    record_training_run,
)
from slm_swap.tracks.rows.definitions import get_track
from slm_swap.tracks.rows.trace import RowTrace, row_trace_from_record

PUBLIC, SECRET = "pk-lf-tracing", "sk-lf-tracing-secret"
CANARY = "sk-CANARY-azure-key-0123456789"
T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def shared() -> Iterator[LangfuseReceiver]:
    with LangfuseReceiver([(PUBLIC, SECRET)]) as server:
        yield server


@pytest.fixture
def receiver(shared: LangfuseReceiver) -> LangfuseReceiver:
    shared.clear()
    return shared


@pytest.fixture
def settings(receiver: LangfuseReceiver) -> LangfuseSettings:
    return LangfuseSettings(PUBLIC, SECRET, receiver.url, request_timeout_s=2.0, flush_timeout_s=10.0)


@pytest.fixture
def lone_receiver() -> Iterator[LangfuseReceiver]:
    """A receiver of its own for failure tests, so late retries cannot reach the shared one."""
    with LangfuseReceiver([(PUBLIC, SECRET)]) as server:
        yield server


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def eval_run(**overrides) -> EvalRunTrace:
    fields = dict(
        track="structured",
        model_name="slm",
        model={"name": "slm", "checkpoint": "models/tiny"},
        dataset_path="slm_swap/02_dataset/structured/test.jsonl",
        dataset_sha256="ab" * 32,
        metric_path="slm_swap/05_eval/structured_slm.json",
        predictions_path="slm_swap/05_eval/structured_slm.predictions.jsonl",
        pytest_args=["evals", "--model=slm", "--limit", "2"],
        started_at=T0,
        ended_at=T0 + 9,
        rates={"json_valid_rate": 0.5, "exact_match_rate": 0.0},
        summary={"n": 2, "errors": 1},
    )
    return EvalRunTrace(**{**fields, **overrides})


def rows() -> list[RowTrace]:
    return [
        RowTrace(
            "test-0000",
            [{"role": "user", "content": "Weather in Oslo?"}],
            '{"name": "w"}',
            '{"name": "weather"}',
            T0 + 1,
            2.5,
            {"json_valid": True, "exact_match": False},
            {"prompt_tokens": 11, "completion_tokens": 4},
            metadata={"failure": "wrong_name"},
        ),
        RowTrace(
            "test-0001",
            [{"role": "user", "content": "Time in Rome?"}],
            None,
            '{"name": "time"}',
            T0 + 4,
            1.0,
            {"json_valid": False, "exact_match": False},
            error="timeout after 1 s",
            metadata={"error_class": "timeout"},
        ),
    ]


def test_settings_from_env_names_every_missing_variable() -> None:
    with pytest.raises(TracingError) as caught:
        settings_from_env({"LANGFUSE_SECRET_KEY": "  "})
    assert all(name in str(caught.value) for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"))


def test_settings_from_env_reads_and_hides_the_secret() -> None:
    settings = settings_from_env({"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk-hidden", "LANGFUSE_HOST": "https://lf.example/"})
    assert (settings.public_key, settings.host, settings.flush_timeout_s) == ("pk", "https://lf.example", 30.0)
    assert "sk-hidden" not in repr(settings)


def test_host_without_scheme_is_refused() -> None:
    with pytest.raises(TracingError, match="http"):
        LangfuseSettings("pk", "sk", "localhost:3000")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("key=sk-1 end", f"key={REDACTED} end"),  # inside a string
        ({"sk-1": ["sk-1", 3, None, True]}, {REDACTED: [REDACTED, 3, None, True]}),  # dict keys and nested lists; other leaves kept
        (("a", "sk-1"), ["a", REDACTED]),  # tuples become lists, as in JSON
        ("sk-1-long and sk-1", f"{REDACTED} and {REDACTED}"),  # the longer secret goes first, no fragment left
        (2.5, 2.5),  # numbers untouched
    ],
)
def test_redact_replaces_every_secret(value, expected) -> None:
    assert redact(value, ["sk-1", "sk-1-long", ""]) == expected


def test_redact_never_raises_on_odd_objects() -> None:
    class Loud:
        def __str__(self) -> str:
            raise RuntimeError("no")

    class Carrier:
        def __str__(self) -> str:
            return "carries sk-1"

    assert redact([Loud(), Carrier()], ["sk-1"]) == [REDACTED, f"carries {REDACTED}"]


def test_empty_secret_list_changes_nothing() -> None:
    assert redact({"a": "b"}, ["", "  "]) == {"a": "b"}


def test_usage_uses_langfuse_names() -> None:
    assert usage_details({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cached": 1}) == {
        "input": 3,
        "output": 4,
        "total": 7,
        "cached": 1,
    }


def test_check_connection_accepts_the_right_keys(settings: LangfuseSettings) -> None:
    check_connection(settings)


def test_check_connection_refuses_a_wrong_secret_even_after_a_good_one(settings: LangfuseSettings) -> None:
    """The SDK hands back its cached client per public key; a wrong secret must still be caught."""
    check_connection(settings)
    with pytest.raises(TracingError) as caught:
        check_connection(LangfuseSettings(PUBLIC, "sk-wrong-one", settings.host))
    assert "HTTP 401" in str(caught.value) and "LANGFUSE_SECRET_KEY" in str(caught.value)
    assert "sk-wrong-one" not in str(caught.value)
    check_connection(settings)


def test_check_connection_names_an_unreachable_host() -> None:
    url = closed_port_url()
    with pytest.raises(TracingError, match=f"cannot reach Langfuse at {url}"):
        check_connection(LangfuseSettings(PUBLIC, SECRET, url))


def test_check_connection_is_bounded_when_the_host_never_answers() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections complete in the kernel; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(TracingError, match="did not"):
            check_connection(LangfuseSettings(PUBLIC, SECRET, url, request_timeout_s=30), timeout_s=0.5)
        assert time.monotonic() - started < 3


def test_eval_run_is_one_trace_with_a_generation_per_row(receiver: LangfuseReceiver, settings: LangfuseSettings) -> None:
    ref = record_eval_run(settings, eval_run(tags=["post-finetune"]), rows())
    assert ref.url == f"{receiver.url}/project/{receiver.project_id}/traces/{ref.trace_id}"
    assert receiver.trace_ids() == [ref.trace_id]
    spans = {s.name: s for s in receiver.spans(ref.trace_id)}
    root = spans["eval:structured:slm"]
    assert root.parent_span_id is None
    assert (root.start_time_ns, root.end_time_ns) == (T0 * 10**9, (T0 + 9) * 10**9)
    assert root.json_attribute("langfuse.observation.input") == {
        "model": {"name": "slm", "checkpoint": "models/tiny"},
        "dataset": {"path": "slm_swap/02_dataset/structured/test.jsonl", "sha256": "ab" * 32},
        "pytest_args": ["evals", "--model=slm", "--limit", "2"],
    }
    assert root.json_attribute("langfuse.observation.metadata.metric_path") == "slm_swap/05_eval/structured_slm.json"
    assert root.json_attribute("langfuse.observation.metadata.predictions_path") == "slm_swap/05_eval/structured_slm.predictions.jsonl"
    assert {s.attributes["langfuse.trace.name"] for s in spans.values()} == {"eval:structured:slm"}
    assert root.attributes["langfuse.trace.tags"] == ["post-finetune"]

    first, second = spans["test-0000"], spans["test-0001"]
    assert {first.parent_span_id, second.parent_span_id} == {root.span_id}
    assert first.observation_type == "generation"
    assert first.json_attribute("langfuse.observation.input") == [{"role": "user", "content": "Weather in Oslo?"}]
    assert first.attributes["langfuse.observation.output"] == '{"name": "w"}'
    assert first.attributes["langfuse.observation.model.name"] == "slm"
    assert first.json_attribute("langfuse.observation.usage_details") == {"input": 11, "output": 4}
    assert first.json_attribute("langfuse.observation.metadata.gold_completion") == '{"name": "weather"}'
    assert first.json_attribute("langfuse.observation.metadata.failure") == "wrong_name"
    assert (first.start_time_ns, first.end_time_ns) == ((T0 + 1) * 10**9, (T0 + 3.5) * 10**9)
    assert "langfuse.observation.output" not in second.attributes
    assert (second.attributes["langfuse.observation.level"], second.status_message) == ("ERROR", "timeout after 1 s")

    by_target = {
        (s.get("observationId"), s["name"]): (s["value"], s["dataType"]) for s in receiver.scores() if s["traceId"] == ref.trace_id
    }
    observation_ids = {"test-0000": first.span_id, "test-0001": second.span_id}
    assert by_target == {
        (observation_ids["test-0000"], "json_valid"): (1.0, "BOOLEAN"),
        (observation_ids["test-0000"], "exact_match"): (0.0, "BOOLEAN"),
        (observation_ids["test-0001"], "json_valid"): (0.0, "BOOLEAN"),
        (observation_ids["test-0001"], "exact_match"): (0.0, "BOOLEAN"),
        (None, "json_valid_rate"): (0.5, "NUMERIC"),
        (None, "exact_match_rate"): (0.0, "NUMERIC"),
    }


def test_training_run_carries_settings_curve_and_final_losses(receiver: LangfuseReceiver, settings: LangfuseSettings) -> None:
    run = TrainingRunTrace(
        track="toolcall",
        base_model="models/tiny",
        backend="hf",
        settings={"r": 64, "alpha": 16, "lr": 2e-4},
        train_path="train.jsonl",
        val_path="val.jsonl",
        dataset_sha256={"train": "11" * 32, "val": "22" * 32},
        adapter_path="slm_swap/04_ft/adapter_toolcall",
        started_at=T0,
        ended_at=T0 + 60,
        loss_curve=[{"step": 1, "train_loss": 2.5}, {"step": 2, "train_loss": 2.1}],
        final_losses={"train_loss": 2.1, "val_loss": 2.3},
        details={"tokens_per_s": 80.0},
    )
    ref = record_training_run(settings, run)
    (root,) = receiver.spans(ref.trace_id)
    assert (root.name, root.attributes["langfuse.trace.name"]) == ("train:toolcall:models/tiny", "train:toolcall:models/tiny")
    assert root.json_attribute("langfuse.observation.input")["settings"] == {"r": 64, "alpha": 16, "lr": 2e-4}
    output = root.json_attribute("langfuse.observation.output")
    assert (output["adapter_path"], output["loss_curve"][1], output["tokens_per_s"]) == (
        "slm_swap/04_ft/adapter_toolcall",
        {"step": 2, "train_loss": 2.1},
        80.0,
    )
    assert {s["name"]: s["value"] for s in receiver.scores()} == {"train_loss": 2.1, "val_loss": 2.3}


def test_decisions_are_events_with_their_payload(receiver: LangfuseReceiver, settings: LangfuseSettings) -> None:
    payloads = {"structured": {"fine_tune": True, "gaps": {"exact_match_rate": 0.1}}, "toolcall": {"fine_tune": False, "gaps": {}}}
    ref = record_decisions(settings, payloads, at=T0)
    events = {e.name: e for e in receiver.events()}
    assert set(events) == {"decision:structured", "decision:toolcall"}
    (root,) = [s for s in receiver.spans(ref.trace_id) if s.parent_span_id is None]
    assert {e.parent_span_id for e in events.values()} == {root.span_id}
    assert events["decision:structured"].json_attribute("langfuse.observation.output") == payloads["structured"]


def test_repeated_recordings_in_one_process_each_arrive(receiver: LangfuseReceiver, settings: LangfuseSettings) -> None:
    first = record_decisions(settings, {"structured": {"fine_tune": True}}, at=T0)
    second = record_decisions(settings, {"structured": {"fine_tune": False}}, at=T0 + 1)
    assert first.trace_id != second.trace_id
    assert sorted(receiver.trace_ids()) == sorted([first.trace_id, second.trace_id])


def test_secrets_never_reach_langfuse(receiver: LangfuseReceiver, settings: LangfuseSettings) -> None:
    leaky_row = RowTrace(
        "test-0000",
        [{"role": "user", "content": f"key {CANARY}"}],
        f"echo {CANARY}",
        "gold",
        T0,
        1.0,
        {"json_valid": True},
        error=f"401 for api-key {CANARY}",
        metadata={"headers": {"api-key": CANARY}},
    )
    run = eval_run(model={"name": "azure", "api_key": CANARY, "langfuse": SECRET}, pytest_args=["evals", f"--api-key={CANARY}"])
    record_eval_run(settings, run, [leaky_row], secrets=[CANARY])
    record_decisions(settings, {"structured": {"note": f"{CANARY} / {SECRET}"}}, at=T0, secrets=[CANARY])
    basic_credential = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
    bodies = [r.body for r in receiver.requests()]
    assert len(bodies) >= 3
    for forbidden in (CANARY, SECRET, basic_credential):
        assert not any(forbidden.encode() in body for body in bodies)
        assert not any(forbidden in repr(span.attributes) for span in receiver.spans())
    assert any(REDACTED in span.attributes.get("langfuse.observation.input", "") for span in receiver.spans())


def test_rejected_spans_fail_loudly(lone_receiver: LangfuseReceiver) -> None:
    lone_receiver.fail_ingestion(500, scores=False)
    settings = LangfuseSettings(PUBLIC, SECRET, lone_receiver.url, request_timeout_s=2.0)
    with pytest.raises(TracingError, match=r"did not take 3 of 3 spans \(POST /api/public/otel/v1/traces answered HTTP 500\)"):
        record_decisions(settings, {"structured": {}, "toolcall": {}}, at=T0)


def test_rejected_scores_fail_loudly(lone_receiver: LangfuseReceiver) -> None:
    lone_receiver.fail_ingestion(400, traces=False)
    settings = LangfuseSettings(PUBLIC, SECRET, lone_receiver.url, request_timeout_s=2.0)
    with pytest.raises(TracingError, match=r"did not take 6 of 6 scores \(POST /api/public/scores answered HTTP 400\)"):
        record_eval_run(settings, eval_run(), rows())


def test_server_error_on_everything_fails_within_the_flush_bound(lone_receiver: LangfuseReceiver) -> None:
    """Scores retry on 500 with backoff; the flush bound still ends the wait, and says what was seen.

    Whether the SDK gives up before the bound or the bound cuts it short depends on the machine's load:
    either way the error names the HTTP 500s and comes within the bound's reach.
    """
    lone_receiver.fail_ingestion(500)
    settings = LangfuseSettings(PUBLIC, SECRET, lone_receiver.url, request_timeout_s=2.0, flush_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(TracingError, match=r"(0\.5 s flush bound|did not take).*HTTP 500"):
        record_eval_run(settings, eval_run(), rows())
    assert time.monotonic() - started < 3


def test_hung_langfuse_hits_the_flush_bound(lone_receiver: LangfuseReceiver) -> None:
    lone_receiver.delay_ingestion(30)
    settings = LangfuseSettings(PUBLIC, SECRET, lone_receiver.url, request_timeout_s=30.0, flush_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(TracingError, match="did not take the data within the 0.5 s flush bound"):
        record_decisions(settings, {"structured": {}}, at=T0)
    assert time.monotonic() - started < 3
    lone_receiver.clear()


def test_wrong_key_at_recording_time_fails_loudly(lone_receiver: LangfuseReceiver) -> None:
    settings = LangfuseSettings(PUBLIC, "sk-not-accepted", lone_receiver.url, request_timeout_s=2.0)
    with pytest.raises(TracingError, match="HTTP 401"):
        record_decisions(settings, {"structured": {}}, at=T0)


def test_an_open_foreign_client_for_the_same_key_is_an_error(settings: LangfuseSettings) -> None:
    foreign = Langfuse(public_key=PUBLIC, secret_key="sk-someone-else", base_url=settings.host, tracing_enabled=False)
    try:
        with pytest.raises(TracingError, match="another Langfuse client"):
            record_decisions(settings, {"structured": {}}, at=T0)
    finally:
        foreign.shutdown()
    record_decisions(settings, {"structured": {}}, at=T0)


def test_row_record_maps_onto_a_row_trace() -> None:
    row = Row("test-0003", 3, "structured", "Weather in Oslo?", '{"name": "weather", "arguments": {}}')
    answer = Answer(text='{"name": "w"}', latency_s=0.25, usage={"prompt_tokens": 9}, finish_reason="stop")
    record = make_row_record(row, answer, get_track("structured").score(answer.text, row.completion))
    trace = row_trace_from_record(row, record, started_at=T0)
    assert (trace.row_id, trace.messages, trace.gold, trace.output) == (
        "test-0003",
        build_messages(row.prompt),
        row.completion,
        '{"name": "w"}',
    )
    assert (trace.started_at, trace.latency_s, trace.usage, trace.error) == (T0, 0.25, {"prompt_tokens": 9}, None)
    assert trace.checks == record.flags and trace.checks["json_valid"] is True
    # the metadata stays plain JSON: the failure kind as its string value, not the Enum
    assert trace.metadata["failure"] == record.failure and type(trace.metadata["failure"]) is str
    assert trace.metadata["finish_reason"] == "stop"
    assert trace.metadata["passed"] is False and "cached" in trace.metadata


def test_a_disabled_sdk_is_an_error_not_an_empty_trace(settings: LangfuseSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with pytest.raises(TracingError, match="not recording"):
        record_decisions(settings, {"structured": {}}, at=T0)


def test_seeded_global_random_does_not_reuse_trace_ids(receiver: LangfuseReceiver, settings: LangfuseSettings) -> None:
    # training seeds the global `random`; two runs with the same seed must still get two traces
    import random

    ids = []
    for _ in range(2):
        random.seed(7)
        ids.append(record_decisions(settings, {"toolcall": {"fine_tune": 1}}, at=time.time()).trace_id)
    assert ids[0] != ids[1]


def raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as caught:
        return caught


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),  # httpx's own wrapper
        httpcore.ConnectError("[Errno 111] Connection refused"),  # the transport's error, handed on unwrapped
        ConnectionRefusedError(111, "Connection refused"),  # a bare socket error
        raised_from(RuntimeError("request failed"), httpcore.ConnectError("[Errno 111] Connection refused")),  # wrapped by the SDK
    ],
    ids=["httpx", "httpcore", "oserror", "wrapped"],
)
def test_a_refused_connection_reads_as_unreachable_however_the_sdk_raises_it(exc: Exception) -> None:
    assert describe_api_failure(exc, "http://127.0.0.1:9").startswith("cannot reach Langfuse at http://127.0.0.1:9 (")


def test_a_timeout_anywhere_in_the_chain_reads_as_no_answer_in_time() -> None:
    exc = raised_from(RuntimeError("request failed"), httpcore.ReadTimeout("timed out"))
    assert describe_api_failure(exc, "http://h") == "Langfuse at http://h did not answer in time (ReadTimeout)"
