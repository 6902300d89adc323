"""The sandbox boundary holds when the interpreter does not, and the parent trusts nothing the worker says.

Two levels. First, hostile code with the whole of Python (what an escape from smolagents' interpreter gives)
runs inside the real `confine` boundary, exactly as a worker sets it up: it must not write outside /scratch,
start a process or a detached child, reach a socket on 127.0.0.1, signal its parent or read the parent's
secrets. Second, a worker that lies on the result pipe (a call whose name is code, a second reply, bytes that
are not a reply, a reply to another request) is killed and its step is a `sandbox_error`, and the episode goes on.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.episodes import sandbox as sandbox_module
from slm_swap.tracks.agent.episodes.environments import CallRefused, checked_call, render_call
from slm_swap.tracks.agent.episodes.isolation import boundary_gaps
from slm_swap.tracks.agent.episodes.protocol import WorkerGone, checked_step
from slm_swap.tracks.agent.episodes.sandbox import EpisodeSandbox, SandboxLimits

REPO = Path(__file__).resolve().parents[2]
LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=8.0, memory_bytes=256 * 1024 * 1024)

CONFINED = """
import json, os, sys, time
from pathlib import Path
from slm_swap.tracks.agent.episodes.confine import confine
isolation, _ = confine(Path(sys.argv[1]), sys.argv[2], [])
attempts = {}
def attempt(name, action):
    try:
        action()
        attempts[name] = "done"
    except BaseException as exc:
        attempts[name] = f"blocked: {type(exc).__name__}: {exc}"
exec(sys.stdin.read())
print(json.dumps({"isolation": isolation.to_json(), "attempts": attempts}), flush=True)
"""

HOSTILE = """
import socket, subprocess, signal
def write_outside():
    with open(TARGET + "-write", "w") as handle:
        handle.write("escaped")
attempt("write outside scratch", write_outside)
attempt("write to /tmp", lambda: open("/tmp/slm-swap-escaped", "w").write("x"))
attempt("io.open", lambda: __import__("io").open(TARGET + "-io", "w").write("x"))
attempt("subprocess", lambda: subprocess.run(["/bin/sh", "-c", "touch " + TARGET + "-subprocess"], check=True))
def detached_child():
    if os.fork() == 0:
        os.setsid()
        time.sleep(3)
        open(TARGET + "-detached", "w").write("late")
        os._exit(0)
attempt("detached setsid child", detached_child)
attempt("socket to 127.0.0.1", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2))
attempt("kill the parent", lambda: os.kill(PARENT, signal.SIGKILL))
attempt("kill every process", lambda: os.kill(-1, signal.SIGKILL))
attempt("read the parent's environment", lambda: open(f"/proc/{PARENT}/environ").read())
attempt("read /etc/passwd", lambda: open("/etc/passwd").read())
attempt("write into the package", lambda: open(PACKAGE + "/escaped.py", "w").write("x"))
attempt("write in scratch", lambda: open("/scratch/fine", "w").write("x"))
"""


def test_code_with_all_of_python_stays_inside_the_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_KEY", "sk-canary-containment-0451")
    target = tmp_path / "outside"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    mountpoint = tmp_path / "root"
    mountpoint.mkdir()
    prelude = f"TARGET = {str(target)!r}\nPORT = {port}\nPARENT = {os.getpid()}\nPACKAGE = {str(REPO / 'slm_swap')!r}\n"
    done = subprocess.run(
        [sys.executable, "-c", CONFINED, str(REPO), str(mountpoint)],
        input=prelude + textwrap.dedent(HOSTILE),
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.defpath, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert boundary_gaps(report["isolation"]) == [] and report["isolation"]["seccomp"] is True
    attempts = report["attempts"]
    assert attempts.pop("write in scratch") == "done"  # the one writable place
    assert all(outcome.startswith("blocked") for outcome in attempts.values()), attempts
    time.sleep(4)  # past the detached child's delay
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert not Path("/tmp/slm-swap-escaped").exists() and not (REPO / "slm_swap" / "escaped.py").exists()
    assert "sk-canary-containment-0451" not in done.stdout + done.stderr


FORGED_CALL = {"name": "__import__('os').system('touch /tmp/forged') or ls", "arguments": {}}

GATE_CASES = [
    # a name that is Python code, offered or not
    (FORGED_CALL, "is not one of the task's tools"),
    # a plain name the step did not offer
    ({"name": "rm", "arguments": {}}, "is not one of the task's tools"),
    # a parameter name that would be written into the call string
    ({"name": "ls", "arguments": {"a=__import__('os'),b": 1}}, "keyed by parameter names"),
    # values that are not JSON: a float infinity, a set smuggled as a list is fine, a nested non-string key is not possible in JSON
    ({"name": "ls", "arguments": {"a": float("inf")}}, "JSON values"),
    # extra keys on the call
    ({"name": "ls", "arguments": {}, "code": "x"}, "exactly name and arguments"),
    # a keyword is an identifier but not a name
    ({"name": "import", "arguments": {}}, "is not one of the task's tools"),
]


@pytest.mark.parametrize(("raw", "message"), GATE_CASES, ids=["code-name", "not-offered", "code-key", "infinity", "extra-key", "keyword"])
def test_the_call_gate_refuses_what_could_run_as_code(raw: dict, message: str) -> None:
    with pytest.raises(CallRefused) as refused:
        checked_call(raw, {"ls", "cd", "import"})
    assert refused.value.kind is AgentFailure.BAD_ACTION and message in str(refused.value)


def test_a_call_that_did_not_pass_the_gate_is_never_rendered_for_the_checker() -> None:
    from slm_swap.tracks.agent.episodes.environments import RecordedCall

    with pytest.raises(ValueError, match="refusing to render"):
        render_call(RecordedCall(FORGED_CALL["name"], {}))
    assert render_call(RecordedCall("cd", {"folder": "a'b"})) == 'cd(folder="a\'b")'


def test_a_step_reply_that_names_code_is_a_protocol_violation() -> None:
    reply = {"id": 3, "calls": [FORGED_CALL], "results": ["ok"], "printed": "", "returned": None, "failure": None, "detail": ""}
    with pytest.raises(WorkerGone, match="forged call"):
        checked_step(reply, {"ls"})
    with pytest.raises(WorkerGone, match="unknown failure kind"):
        checked_step({**reply, "calls": [], "results": [], "failure": "state_mismatch"}, {"ls"})


# A stand-in for a worker that escaped its interpreter: it starts as a worker does and answers steps as told.
LYING_WORKER = r"""
import json, os, sys
from slm_swap.tracks.agent.episodes.confine import confine
isolation, _ = confine(__import__("pathlib").Path(os.environ["REPO"]), sys.argv[-1], [])
out = os.fdopen(os.dup(1), "w")
mode = os.environ["LIE"]
for line in sys.stdin:
    request = json.loads(line)
    rid = request["id"]
    if request["op"] == "start":
        out.write(json.dumps({"id": rid, "ok": True, "isolation": isolation.to_json()}) + "\n")
    elif request["op"] == "replay":
        out.write(json.dumps({"id": rid, "ok": True}) + "\n")
    else:
        honest = {"id": rid, "calls": [], "results": [], "printed": "", "returned": None, "failure": None, "detail": ""}
        if mode == "forged-call":
            out.write(json.dumps({**honest, "calls": [{"name": "__import__('os').system('touch /tmp/x') or ls", "arguments": {}}]}) + "\n")
        elif mode == "two-replies":
            out.write(json.dumps(honest) + "\n" + json.dumps(honest) + "\n")
        elif mode == "not-json":
            out.write("Traceback (most recent call last): pwned\n")
        elif mode == "other-id":
            out.write(json.dumps({**honest, "id": rid + 1}) + "\n")
        elif mode == "huge":
            out.write(json.dumps({**honest, "printed": "x" * (40 * 1024 * 1024)}) + "\n")
    out.flush()
"""


@pytest.mark.parametrize("lie", ["forged-call", "two-replies", "not-json", "other-id", "huge"])
def test_a_worker_that_lies_is_killed_and_its_step_is_a_sandbox_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lie: str) -> None:
    script = tmp_path / "lying_worker.py"
    script.write_text(LYING_WORKER)
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nREPO="{REPO}" LIE="{lie}" exec "{sys.executable}" "{script}" "$@"\n')
    python.chmod(0o755)
    monkeypatch.setattr(sandbox_module.sys, "executable", str(python))
    task = next(t for t in load_multi_turn(categories=("multi_turn_base",)).tasks if t.id == "multi_turn_base_0")
    sandbox = EpisodeSandbox(task.involved_classes, task.initial_config, False, "codeact", LIMITS, tmp_path / "scratch")
    try:
        outcomes = []
        for _ in range(2):  # the first lie, then the restarted worker's
            sandbox.submit({"op": "code", "code": "ls()", "offered": ["ls"]})
            outcomes.append(sandbox.collect())
        for outcome in outcomes:
            assert (outcome["failure"], outcome["calls"]) == (AgentFailure.SANDBOX_ERROR.value, []), outcome
            assert "protocol" in outcome["detail"]
        assert sandbox.restarts >= 2 and sandbox.executed == []
    finally:
        sandbox.close()
    assert not Path("/tmp/x").exists()
    assert not list((tmp_path / "scratch").iterdir())  # closed: its folder is gone


def test_a_killed_runs_worker_folders_are_removed_by_the_next_sandbox(tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    stale = root / f"{dead.stdout.strip()}-0-deadbeef"
    (stale / "root").mkdir(parents=True)
    (stale / "worker.stderr").write_text("left by a run killed with SIGKILL")
    alive = root / f"{os.getppid()}-0-cafe"  # a live process's folder (pytest's parent) is left alone
    alive.mkdir()
    sandbox_module._swept.discard(root)
    task = next(t for t in load_multi_turn(categories=("multi_turn_base",)).tasks if t.id == "multi_turn_base_0")
    sandbox = EpisodeSandbox(task.involved_classes, task.initial_config, False, "toolcall", LIMITS, root)
    sandbox.close()
    assert sorted(p.name for p in root.iterdir()) == [alive.name]
