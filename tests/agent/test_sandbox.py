"""Bad actions end their step with the right failure kind, inside the limits, and the episode goes on.

Each case runs in a fresh sandbox of task multi_turn_base_0 (a file system and a Twitter API): a good
step, the bad one, then a good step that must see the first step's state, even after a kill.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.episodes import sandbox as sandbox_module
from slm_swap.tracks.agent.episodes.sandbox import EpisodeSandbox, SandboxLimits

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=4.0, memory_bytes=256 * 1024 * 1024)


@pytest.fixture(scope="module")
def task():
    return next(t for t in load_multi_turn(categories=("multi_turn_base",)).tasks if t.id == "multi_turn_base_0")


def open_sandbox(task, arm: str) -> EpisodeSandbox:
    return EpisodeSandbox(task.involved_classes, task.initial_config, task.long_context, arm, LIMITS)


def step(sandbox: EpisodeSandbox, offered: list[str], **request) -> dict:
    sandbox.submit({"offered": offered, **request})
    return sandbox.collect()


CODE_CASES = [
    # an endless loop: the CPU-time limit (or smolagents' operation cap) ends it
    ("while True:\n    pass", AgentFailure.SANDBOX_ERROR, ""),
    # the CPU-time signal is no Exception: the code cannot catch it
    ("try:\n    while True:\n        pass\nexcept BaseException:\n    pass", AgentFailure.SANDBOX_ERROR, ""),
    # unbounded allocation: RLIMIT_AS turns it into a MemoryError
    ("x = [0] * (10 ** 10)", AgentFailure.SANDBOX_ERROR, "memory limit"),
    ("x = 'a' * (2 ** 40)", AgentFailure.SANDBOX_ERROR, "memory limit"),
    # a big-int computation that stays inside C: SIGXCPU, or the wall clock and a kill
    ("y = 10 ** (10 ** 9)", AgentFailure.SANDBOX_ERROR, ""),
    # waiting is not CPU: the wall-clock limit kills the process, the next step runs in a new one
    ("import time\ntime.sleep(60)", AgentFailure.SANDBOX_ERROR, "wall-clock"),
    ("import os\nos.listdir('/')", AgentFailure.SANDBOX_ERROR, "Import of os is not allowed"),
    ("from subprocess import run", AgentFailure.SANDBOX_ERROR, "Import from subprocess is not allowed"),
    ("open('/etc/passwd').read()", AgentFailure.SANDBOX_ERROR, "'open'"),
    ("().__class__.__bases__[0].__subclasses__()", AgentFailure.SANDBOX_ERROR, "dunder"),
    ("def f(n):\n    return f(n + 1)\nf(0)", AgentFailure.SANDBOX_ERROR, "recursion"),
    ("raise ValueError('boom')", AgentFailure.CODE_ERROR, "boom"),
    ("1 / 0", AgentFailure.CODE_ERROR, "ZeroDivisionError"),
    ("def f(:\n    pass", AgentFailure.CODE_SYNTAX_ERROR, "line 1"),
    ("send_money(to='mallory')", AgentFailure.UNKNOWN_TOOL, "send_money"),
    # an environment method that is not offered this turn, caught by the code: still unknown_tool
    ("try:\n    rm(file_name='final_report.pdf')\nexcept Exception:\n    pass", AgentFailure.UNKNOWN_TOOL, "'rm' is not one of the tools"),
    # arguments that are not JSON values, or that the signature does not take
    ("mkdir(dir_name={'a', 'b'})", AgentFailure.BAD_ARGUMENTS, "JSON values"),
    ("mkdir(dir_name='x', folder='y')", AgentFailure.BAD_ARGUMENTS, "unexpected keyword"),
    # the environment itself raising
    ("cd(folder=1)", AgentFailure.TOOL_ERROR, "cd raised AttributeError"),
]


@pytest.mark.parametrize(("code", "kind", "detail"), CODE_CASES, ids=[c[0].split("\n")[-1][:30] for c in CODE_CASES])
def test_bad_code_ends_the_step_with_its_kind_and_the_episode_goes_on(task, code: str, kind: AgentFailure, detail: str) -> None:
    offered = [doc["name"] for doc in task.functions if doc["name"] != "rm"]
    sandbox = open_sandbox(task, "codeact")
    try:
        assert step(sandbox, offered, op="code", code="cd(folder='document')")["failure"] is None
        started = time.monotonic()
        outcome = step(sandbox, offered, op="code", code=code)
        # bounded by the limits, restart included, with room for a loaded CI machine (the sleep asks for 60 s)
        assert time.monotonic() - started < LIMITS.wall_seconds + 20
        assert (outcome["failure"], detail in outcome["detail"]) == (kind.value, True), outcome["detail"]
        after = step(sandbox, offered, op="code", code="pwd()")
        assert (after["failure"], after["returned"]) == (None, '{"current_working_directory": "/workspace/document"}')
    finally:
        sandbox.close()


def test_a_step_cut_by_the_cpu_limit_still_records_the_calls_it_ran(task) -> None:
    offered = [doc["name"] for doc in task.functions]
    sandbox = open_sandbox(task, "codeact")
    try:
        outcome = step(sandbox, offered, op="code", code="cd(folder='document')\nwhile True:\n    pass")
        assert (outcome["failure"], [c["name"] for c in outcome["calls"]]) == (AgentFailure.SANDBOX_ERROR.value, ["cd"])
        assert step(sandbox, offered, op="code", code="pwd()")["returned"] == '{"current_working_directory": "/workspace/document"}'
    finally:
        sandbox.close()


def test_a_step_counts_the_calls_it_ran_before_it_failed(task) -> None:
    offered = [doc["name"] for doc in task.functions]
    sandbox = open_sandbox(task, "codeact")
    try:
        outcome = step(sandbox, offered, op="code", code="cd(folder='document')\nprint(ls())\nmkdir(dir_name=('t',))")
        assert [c["name"] for c in outcome["calls"]] == ["cd", "ls"]
        assert outcome["printed"].startswith("{'current_directory_content': ['final_report.pdf'")
        assert outcome["failure"] == AgentFailure.BAD_ARGUMENTS.value
    finally:
        sandbox.close()


@pytest.mark.parametrize(
    ("calls", "kind", "ran"),
    [
        ([{"name": "cd", "arguments": {"folder": "document"}}, {"name": "ls", "arguments": {}}], None, ["cd", "ls"]),
        ([{"name": "cd", "arguments": {"folder": "document"}}, {"name": "nope", "arguments": {}}], AgentFailure.UNKNOWN_TOOL, ["cd"]),
        ([{"name": "mkdir", "arguments": {"folder": "x"}}, {"name": "ls", "arguments": {}}], AgentFailure.BAD_ARGUMENTS, []),
        ([{"name": "cd", "arguments": {"folder": 1}}], AgentFailure.TOOL_ERROR, ["cd"]),
    ],
    ids=["two-calls", "unknown-tool-stops-the-step", "unknown-parameter", "tool-raises"],
)
def test_toolcall_dispatch_by_name_with_json_arguments(task, calls: list, kind: AgentFailure | None, ran: list[str]) -> None:
    sandbox = open_sandbox(task, "toolcall")
    try:
        outcome = step(sandbox, [doc["name"] for doc in task.functions], op="calls", calls=calls)
        assert (outcome["failure"], [c["name"] for c in outcome["calls"]]) == (kind.value if kind else None, ran)
    finally:
        sandbox.close()


def test_the_worker_runs_without_the_parents_secrets_in_its_scratch_folder(task, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "canary-key-0451")
    sandbox = open_sandbox(task, "toolcall")
    pid, scratch = sandbox.process.pid, sandbox.scratch
    try:
        step(sandbox, ["ls"], op="calls", calls=[{"name": "ls", "arguments": {}}])
        assert b"canary-key-0451" not in Path(f"/proc/{pid}/environ").read_bytes()
        assert os.readlink(f"/proc/{pid}/cwd") == str(scratch / "home")
        assert sandbox.isolation["network"] == "none"  # the project's machines allow unprivileged user namespaces
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    finally:
        sandbox.close()
    assert not scratch.exists() and sandbox.process.poll() is not None


def test_the_worker_finds_packages_the_parent_found_only_through_its_path(task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an interpreter without its site-packages stands for a `pip install --target DIR` + PYTHONPATH install:
    # the worker gets none of the parent's environment, so it must be handed where the parent found bfcl_eval
    python = tmp_path / "python-without-site"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(sandbox_module.sys, "executable", str(python))
    sandbox = open_sandbox(task, "toolcall")
    try:
        outcome = step(sandbox, ["ls"], op="calls", calls=[{"name": "ls", "arguments": {}}])
        assert (outcome["failure"], [c["name"] for c in outcome["calls"]]) == (None, ["ls"])
    finally:
        sandbox.close()
