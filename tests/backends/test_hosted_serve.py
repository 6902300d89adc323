"""The hosted client end to end against a real `transformers serve` of the embedded checkpoint on 127.0.0.1."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.backends.hosted import HostedModel
from slm_swap.data.rows import Row
from slm_swap.prompts import build_prompt
from slm_swap.serving.process import ServeError, start_transformers_serve

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_NAME = "smollm2-135m-instruct"
KEY = "canary-key-serve-7d31"
TOOLS = [{"name": "get_weather", "description": "Current weather in a city", "parameters": {"city": {"type": "string"}}}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def embedded_checkpoint() -> Path:
    """The embedded SmolLM2 checkpoint, converted from its GGUF by the project's fetch step when missing."""
    return ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)


@pytest.fixture(scope="module")
def server(embedded_checkpoint, tmp_path_factory):
    # One CPU thread per request: CI shares two cores with other tests, and spinning OpenMP threads
    # on an oversubscribed CPU made four rows take minutes instead of seconds.
    process = start_transformers_serve(
        embedded_checkpoint, environ=os.environ, device="cpu", cpu_threads=1, log_path=tmp_path_factory.mktemp("serve") / "serve.log"
    )
    yield process
    process.stop()
    assert process.process.returncode is not None


def make_row(index: int, city: str) -> Row:
    prompt = build_prompt("structured", f"What is the weather in {city}?", TOOLS)
    return Row(f"serve-{index:04d}", index, "structured", prompt, "")


def make_model(server, **overrides) -> HostedModel:
    settings = dict(api_version="2024-02-15-preview", max_tokens=12, timeout_s=120.0, max_retries=1, base_wait_s=0.1)
    settings.update(overrides)
    return HostedModel(server.base_url, KEY, **settings)


def test_reply_from_a_real_server_is_greedy_and_counts_tokens(server):
    model = make_model(server)
    first, second = model.answer(make_row(0, "Paris")), model.answer(make_row(0, "Paris"))
    assert first.error is None, first.error
    assert isinstance(first.text, str) and first.text.strip()
    # Temperature 0 is greedy decoding: the same prompt gives the same text.
    assert second.text == first.text
    assert first.finish_reason in ("stop", "length")
    assert first.usage["prompt_tokens"] > 20 and 0 < first.usage["completion_tokens"] <= 12
    assert first.retries == {}
    model.close()


def test_pinned_server_accepts_its_own_model_id_and_refuses_another(server):
    assert make_model(server, model=server.model_id).answer(make_row(1, "Oslo")).error is None
    refused = make_model(server, model="some/other-model").answer(make_row(1, "Oslo"))
    assert (refused.text, refused.error_class, refused.retries) == (None, "client_error", {})
    assert "HTTP 400" in refused.error and "pinned" in refused.error


def test_four_rows_at_once_all_answered(server):
    model = make_model(server)
    rows = [make_row(index, city) for index, city in enumerate(["Lima", "Rome", "Kyiv", "Baku"])]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(model.answer, rows))
    assert [answer.error for answer in answers] == [None] * 4
    assert all(answer.text for answer in answers)


def test_serve_refuses_a_folder_without_a_checkpoint(tmp_path):
    with pytest.raises(ServeError, match="no checkpoint here"):
        start_transformers_serve(tmp_path, environ=os.environ)


def test_serve_that_dies_at_startup_reports_its_log(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "no-such-architecture"}', encoding="utf-8")
    log_path = tmp_path / "serve.log"
    with pytest.raises(ServeError, match="exited with code") as caught:
        start_transformers_serve(tmp_path, environ=os.environ, device="cpu", ready_timeout_s=120, log_path=log_path)
    assert log_path.read_text(encoding="utf-8").strip()[-200:] in str(caught.value)
