"""Hostile actions through the real path: `pytest evals -k agent --model=azure --arm=codeact` against a local
OpenAI-compatible server that answers each task's first request with an attack, replay of a stored file whose
call name is code, the codeact arm on a machine without user namespaces, and a run killed with SIGKILL.

For every attack: no file appears outside the sandbox (also seconds after the run), no connection arrives,
the key appears in no output, file or request body, and the run ends with its metric file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import FaultServer

from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.splits import load_split_tasks

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-canary-containment-9876543210"
ESCAPE = "g = (x for x in [1, 2])\nnext(g)\ng.gi_frame.f_locals['authorized_imports'].append('*')\n"


def attacks(target: Path, port: int) -> list[str]:
    forged = json.dumps({"id": 2, "calls": [{"name": f"__import__('os').system('touch {target}-forged') or ls", "arguments": {}}]})
    return [
        f"import io\nio.open('{target}-write', 'w').write('escaped')",
        f"import subprocess\nsubprocess.run(['touch', '{target}-subprocess'])",
        f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3)\n    os.system('touch {target}-detached')",
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
        "import os\nfor fd in range(3, 12):\n    try:\n"
        f"        os.write(fd, {forged!r}.encode() + b'\\n')\n    except OSError:\n        pass",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)",
    ]


def selected_tasks(count: int) -> list:
    """Test-split tasks whose ids no other test task's id contains, so that `-k` selects exactly them."""
    tasks = load_split_tasks(REPO / "slm_swap" / "02_dataset" / "agent" / "test.jsonl", load_multi_turn())
    ids = [task.id for task in tasks]
    unique = [task for task in tasks if task.category == "multi_turn_base" and sum(task.id in other for other in ids) == 1]
    return unique[:count]


def evals(out: Path, selection: str, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    command = [*prefix, sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-k", selection, f"--out-dir={out}", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def hosted_at(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hosted model's endpoint and key for the runs this test starts: the fault server, the canary key."""
    monkeypatch.setenv("AZURE_ENDPOINT", server.endpoint)
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    monkeypatch.delenv("AZURE_API_VERSION", raising=False)
    monkeypatch.delenv("AZURE_MODEL", raising=False)


def no_key_anywhere(out: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert KEY not in done.stdout + done.stderr
    for path in out.rglob("*"):
        assert path.is_dir() or KEY.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_attacks_from_a_hosted_reply_run_nothing_outside_the_sandbox(tmp_path: Path, monkeypatch, langfuse_env) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    codes = attacks(outside / "pwned", listener.getsockname()[1])
    tasks = selected_tasks(len(codes))
    answers = {task.turns[0]: f"```python\n{ESCAPE}{code}\n```" for task, code in zip(tasks, codes, strict=True)}
    out = tmp_path / "out"
    with FaultServer(answers=answers, max_seconds=300) as server:
        hosted_at(server, monkeypatch)
        selection = "agent and (" + " or ".join(task.id for task in tasks) + ")"
        done = evals(out, selection, "--model=azure", "--arm=codeact", "--max-steps-per-turn=2", "--max-connections=4")
        bodies = [json.dumps(request.body) for request in server.requests]
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads((out / "agent_azure_codeact.json").read_text(encoding="utf-8"))
    assert document["n"] == len(tasks) and document["sandbox"]["episodes"] == len(tasks)
    assert document["sandbox"]["namespaces"] == ["user", "pid", "mount", "network", "ipc", "uts"]
    assert document["sandbox"]["seccomp"] is True and document["sandbox"]["network"] == "none"
    records = [json.loads(line) for line in (out / "agent_azure_codeact.predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in records:
        first = record["trajectory"]["turns"][0]["steps"][0]
        assert first["failure"] == "sandbox_error" and first["calls"] == [], first
    time.sleep(5)  # past the detached child's delay
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert list(outside.iterdir()) == []
    assert not any(KEY in body for body in bodies)
    no_key_anywhere(out, done)
    assert not list((out / "sandbox").iterdir())  # every worker's folder removed


@pytest.fixture(scope="module")
def gold_predictions(tmp_path_factory: pytest.TempPathFactory, langfuse_receiver) -> Path:
    out = tmp_path_factory.mktemp("gold")
    public, secret = "pk-lf-containment", "sk-lf-containment"
    langfuse_receiver.accept_key(public, secret)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"LANGFUSE_PUBLIC_KEY": public, "LANGFUSE_SECRET_KEY": secret, "LANGFUSE_HOST": langfuse_receiver.url}.items():
            patch.setenv(name, value)
        done = evals(out, "agent and base_113", "--model=gold", "--arm=toolcall")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "agent_gold_toolcall.predictions.jsonl"


@pytest.mark.slow
def test_replaying_a_stored_call_whose_name_is_code_runs_nothing_and_fails_the_task(
    gold_predictions: Path, tmp_path: Path, langfuse_env
) -> None:
    marker = tmp_path / "replayed-code-ran"
    record = json.loads(gold_predictions.read_text(encoding="utf-8").splitlines()[0])
    step = next(s for turn in record["trajectory"]["turns"] for s in turn["steps"] if s["calls"])
    original = step["calls"][0]["name"]
    step["calls"][0]["name"] = f"__import__('os').system('touch {marker}') or {original}"
    edited = tmp_path / "edited.predictions.jsonl"
    edited.write_text(json.dumps(record) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    done = evals(out, "agent and base_113", "--model=replay", f"--predictions={edited}", "--arm=toolcall")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert not marker.exists()
    document = json.loads((out / "agent_replay_toolcall.json").read_text(encoding="utf-8"))
    assert document["failures"] == {"bad_action": 1}
    assert "is not one of the task's tools" in done.stdout


UNSHARE = shutil.which("unshare")


@pytest.mark.slow
@pytest.mark.skipif(UNSHARE is None, reason="util-linux unshare is needed to take user namespaces away from a run")
def test_the_codeact_arm_refuses_to_run_without_the_boundary_unless_told_it_may(tmp_path: Path, langfuse_env) -> None:
    # a user namespace whose limit of nested user namespaces is 0: the sandbox's unshare fails as on a kernel without them
    prefix = (UNSHARE, "--user", "--map-root-user", "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh")
    refused = evals(tmp_path / "refused", "agent and base_113", "--model=gold", "--arm=codeact", prefix=prefix)
    assert refused.returncode == 4, refused.stdout[-3000:] + refused.stderr[-3000:]
    lines = [line for line in (refused.stdout + refused.stderr).splitlines() if "sandbox boundary" in line]
    assert len(lines) == 1 and lines[0].startswith("error: the codeact arm runs model-written code only inside the sandbox boundary")
    assert "user namespace" in lines[0] and "--unsafe-local-executor" in lines[0]
    assert not (tmp_path / "refused" / "agent_gold_codeact.json").exists()
    allowed = evals(tmp_path / "allowed", "agent and base_113", "--model=gold", "--arm=codeact", "--unsafe-local-executor", prefix=prefix)
    assert allowed.returncode == 0, allowed.stdout[-3000:] + allowed.stderr[-3000:]
    sandbox = json.loads((tmp_path / "allowed" / "agent_gold_codeact.json").read_text(encoding="utf-8"))["sandbox"]
    assert sandbox["namespaces"] == [] and sandbox["network"] == "host" and sandbox["missing"]
    assert "MISSING user namespace" in allowed.stdout


def worker_processes(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"slm_swap.tracks.agent.episodes.worker" in command and str(folder).encode() in command:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_no_worker_and_its_folders_go_at_the_next_start(tmp_path: Path, monkeypatch, langfuse_env) -> None:
    tasks = selected_tasks(2)
    selection = "agent and (" + " or ".join(task.id for task in tasks) + ")"
    out = tmp_path / "out"
    temporary = set(Path("/tmp").iterdir())
    with FaultServer(per_prompt={tasks[0].turns[0]: ["stall"]}, stall_s=120, max_seconds=300) as server:
        hosted_at(server, monkeypatch)
        command = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-k", selection, f"--out-dir={out}"]
        command += ["--model=azure", "--arm=codeact", "--max-steps-per-turn=2", "--request-timeout=200", "--row-budget=300"]
        run = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(worker_processes(out / "sandbox")) < 2:
            time.sleep(0.2)
        assert len(worker_processes(out / "sandbox")) >= 2, "the run never opened its sandboxes"
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and worker_processes(out / "sandbox"):
            time.sleep(0.2)
        assert worker_processes(out / "sandbox") == []  # every worker died with the run
        left = [folder.name for folder in (out / "sandbox").iterdir()]
        assert left and all(name.startswith(f"{run.pid}-") for name in left)
    with FaultServer(max_seconds=300) as server:
        monkeypatch.setenv("AZURE_ENDPOINT", server.endpoint)
        done = evals(out, selection, "--model=azure", "--arm=codeact", "--max-steps-per-turn=2", "--resume")
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "agent_azure_codeact.json").exists()
    assert list((out / "sandbox").iterdir()) == []
    assert {p for p in set(Path("/tmp").iterdir()) - temporary if p.name.startswith("slm-agent-")} == set()


@pytest.mark.slow
def test_resuming_from_a_journal_whose_reply_calls_code_runs_nothing(tmp_path: Path, monkeypatch, langfuse_env) -> None:
    task = selected_tasks(1)[0]
    call = task.ground_truth[0][0]
    answers = {task.turns[0]: f'<tool_call name="{call.name}">{json.dumps(call.arguments)}</tool_call>'}
    out = tmp_path / "out"
    marker = tmp_path / "journal-code-ran"
    with FaultServer(answers=answers, max_seconds=300) as server:
        hosted_at(server, monkeypatch)
        first = evals(out, f"agent and {task.id}", "--model=azure", "--arm=toolcall", "--max-steps-per-turn=2")
        assert first.returncode in (0, 1), first.stdout[-3000:] + first.stderr[-3000:]
        journal = next((out / "cache").glob("*agent*.jsonl"))
        lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
        edited = [line["answer"] for line in lines if line["answer"]["text"].startswith("<tool_call")]
        assert edited, lines
        for answer in edited:
            answer["text"] = f"<tool_call name=\"__import__('os').system('touch {marker}') or {call.name}\">{{}}</tool_call>"
        journal.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        resumed = evals(out, f"agent and {task.id}", "--model=azure", "--arm=toolcall", "--max-steps-per-turn=2", "--resume")
        assert resumed.returncode == 1, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert len(server.requests_for(task.turns[0])) == 1  # the edited reply came from the journal, not the model
    assert not marker.exists()
    record = json.loads((out / "agent_azure_toolcall.predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    step = record["trajectory"]["turns"][0]["steps"][0]
    assert (step["failure"], step["calls"]) == ("unknown_tool", []) and "not one of the tools offered" in step["detail"]
