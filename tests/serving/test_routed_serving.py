"""The routed endpoint: SLM first, the validator on its reply against the request's tools, the hosted deployment on
rejection, one Langfuse trace with one span per request. First with scripted sides over real HTTP, then end to end:
`tools/serve.py --routed` serving the embedded SmolLM2, a local OpenAI-compatible server standing in for the hosted
deployment, and the harness's own OpenAI client as the caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fault_server import FaultServer

from slm_swap.backends.api import Answer
from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.backends.hosted import HostedModel
from slm_swap.formats.toolcall import format_tool_call
from slm_swap.prompts import build_messages, build_prompt
from slm_swap.serving.routed import RequestError, request_tools, route_request
from slm_swap.serving.routed_server import RoutedServer

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_NAME = "smollm2-135m-instruct"
TOOL = {
    "name": "get_weather",
    "description": "Weather now.",
    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
GOOD = format_tool_call("get_weather", {"city": "Paris"})


def body(prompt: str, **extra) -> dict:
    return {"messages": build_messages(prompt), "temperature": 0, **extra}


def scripted(text: str | None, asked: list):
    def ask(chat):
        asked.append(chat)
        return Answer(text=text, latency_s=0.01, finish_reason="stop", usage={"total_tokens": 3})

    return ask


PROMPT = build_prompt("toolcall", "Weather in Paris?", [TOOL])


def test_an_accepted_slm_reply_is_served_and_the_hosted_model_not_asked():
    slm_asked, hosted_asked = [], []
    reply = route_request("toolcall", body(PROMPT), scripted(GOOD, slm_asked), scripted("hosted", hosted_asked))
    assert (reply.route, reply.text, reply.validation.reason, hosted_asked) == ("slm", GOOD, "accepted", [])
    assert slm_asked == [build_messages(PROMPT)]


def test_a_rejected_slm_reply_goes_to_the_hosted_model_with_the_same_messages():
    slm_asked, hosted_asked = [], []
    reply = route_request("toolcall", body(PROMPT), scripted("Sunny.", slm_asked), scripted(GOOD, hosted_asked))
    assert (reply.route, reply.text) == ("hosted", GOOD)
    assert reply.validation.reason == 'no_tool_call: no complete <tool_call name="...">...</tool_call> element'
    assert hosted_asked == slm_asked == [build_messages(PROMPT)]


def test_the_requests_own_tools_are_validated_against_when_it_sends_them():
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}]
    chat, offered = request_tools("toolcall", body("What time is it?", tools=tools))
    assert (chat, offered) == (build_messages("What time is it?"), [tools[0]["function"]])
    reply = route_request("toolcall", body("What time is it?", tools=tools), scripted(GOOD, []), scripted("hosted", []))
    assert reply.validation.reason == "unknown_function: 'get_weather' is not an offered function (get_time)"


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"messages": []}, "'messages' must be a non-empty list of messages with string content"),
        (
            body("Hello there"),
            "no tools to validate against: the request sends no 'tools' and its last message is not a toolcall prompt "
            "(the prompt is not the toolcall track's template)",
        ),
    ],
    ids=["no messages", "no tools anywhere"],
)
def test_a_request_that_cannot_be_validated_is_refused(request_body, message):
    with pytest.raises(RequestError) as raised:
        route_request("toolcall", request_body, scripted(GOOD, []), scripted(GOOD, []))
    assert str(raised.value) == message


def post(url: str, payload: object) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/chat/completions", json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_each_request_is_one_trace_with_one_span_carrying_route_and_reason(langfuse_env):
    from slm_swap.tracing.client import settings_from_env

    settings = settings_from_env(os.environ)
    replies = iter([GOOD, "Sunny."])
    with RoutedServer("toolcall", lambda chat: Answer(text=next(replies)), scripted(GOOD, []), settings) as server:
        first, second = post(server.base_url, body(PROMPT)), post(server.base_url, body(PROMPT))
        refused = post(server.base_url, body("Hello"))
    assert first[0] == second[0] == 200 and refused[0] == 400
    assert (first[1]["slm_swap"]["route"], second[1]["slm_swap"]["route"]) == ("slm", "hosted")
    assert first[1]["choices"][0]["message"] == {"role": "assistant", "content": GOOD}
    spans = [s for s in langfuse_env.spans() if s.name == "routed request"]
    assert len(spans) == 2 and len({s.trace_id for s in spans}) == 2 and server.traced == [s.trace_id for s in spans]
    routes = sorted(
        (s.json_attribute("langfuse.observation.metadata.route"), s.json_attribute("langfuse.observation.metadata.reason")) for s in spans
    )
    assert routes == [("hosted", 'no_tool_call: no complete <tool_call name="...">...</tool_call> element'), ("slm", "accepted")]


def read_until(process: subprocess.Popen, prefix: str) -> str:
    for line in process.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the server exited before printing {prefix!r}: {process.stderr.read()[-3000:]}")


@pytest.mark.slow
def test_serve_routed_end_to_end_with_smollm2_and_a_hosted_stand_in(tmp_path, langfuse_env, monkeypatch):
    base = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    with FaultServer(answers={PROMPT: GOOD}, max_seconds=600) as hosted:
        monkeypatch.setenv("AZURE_ENDPOINT", hosted.endpoint)
        monkeypatch.setenv("AZURE_API_KEY", "canary-key-91ab")
        cmd = [sys.executable, "tools/serve.py", "--track", "toolcall", "--routed", "--port", "0", "--device", "cpu"]
        cmd += ["--base-model", str(base), "--ft-dir", str(tmp_path / "ft"), "--max-tokens", "16"]
        process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = read_until(process, "routed endpoint: ").split()[2]
            caller = HostedModel(url, "unused", max_tokens=16, max_retries=0, timeout_s=300)
            answer = caller.answer_messages(build_messages(PROMPT))
            status, raw = post(url, body(PROMPT))
            asked = [request.prompt for request in hosted.requests]
        finally:
            process.terminate()
            process.wait(timeout=60)
    # the 135M model answers the prompt in prose: rejected, so the stand-in's gold reply is what the caller gets
    assert answer.text == GOOD, answer.error
    assert status == 200 and raw["slm_swap"]["route"] == "hosted" and raw["slm_swap"]["reason"] != "accepted"
    assert asked == [PROMPT, PROMPT]
    spans = [s for s in langfuse_env.spans() if s.name == "routed request"]
    assert [s.json_attribute("langfuse.observation.metadata.route") for s in spans] == ["hosted", "hosted"]
    assert all(s.json_attribute("langfuse.observation.metadata.slm_output") for s in spans)  # the SLM did answer first
    assert "canary-key-91ab" not in json.dumps([s.to_json() for s in spans])
