"""README's follow-up commands, read from README itself and run as printed after a small offline demo.

The blocks run are the fenced `bash` blocks right after an HTML comment `<!-- readme-test: ... -->` in README.md:
a change to README's commands is a change to what this test runs, and a command that breaks fails it. The demo runs
at its smallest (toolcall only, 2 training rows, 8 new tokens) but keeps its 8 test rows, the rows the follow-ups
name (`--limit 8`); a copy of the repository stands in for the fresh clone. The Phase II demo takes 10+ minutes, so
its block runs against a prepared folder with the loop's file names instead: two test tasks, the gold policy's run
as the hosted side, and that same run copied as the SLM's (the block re-scores and compares runs; it runs no model).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import ensure_checkpoint

REPO = Path(__file__).resolve().parents[2]
AFTER_DEMO = "after the demo"
AFTER_PHASE2_DEMO = "after the Phase II demo"
NOISE = ("Failed to load CPU gemm_4bit_forward", "torch.jit.script_method", "is deprecated and will be removed in v6")


def readme_block(readme: str, marker: str) -> list[str]:
    """The command lines of the bash block after `<!-- readme-test: MARKER -->` (comments and blank lines dropped)."""
    found = re.search(rf"<!-- readme-test: {re.escape(marker)} -->\s*```bash\n(.*?)```", readme, re.DOTALL)
    if found is None:
        raise AssertionError(f"README.md has no bash block marked <!-- readme-test: {marker} -->")
    return [line for line in found.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def copy_clone(root: Path) -> Path:
    """The files a fresh clone has (tracked, and new ones not ignored), the environment, the embedded checkpoint."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    model = "smollm2-135m-instruct"
    source = ensure_checkpoint(model, REPO / "slm_swap" / "models" / model)
    (root / "slm_swap" / "models" / model).symlink_to(source, target_is_directory=True)
    return root


def clean_environ(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AZURE_", "SLM_MODEL_PATH", "VIRTUAL_ENV"))}
    path = [p for p in env["PATH"].split(os.pathsep) if ".venv" not in p]  # only README's activation puts it on PATH
    env.update(PYTHONPATH=str(root), OMP_NUM_THREADS="1", PATH=os.pathsep.join(path))  # the clone's code, not this checkout's
    return env


def run_block(root: Path, commands: list[str], environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """One bash session, as a user types them, stopped at the first command that fails, naming it. `pytest evals`
    exits 1 when rows fail (the demo's tiny models fail most): that is a result, not a broken command."""
    script = ['trap \'[ -n "${SLM_SWAP_RECEIVER_PID:-}" ] && kill "$SLM_SWAP_RECEIVER_PID" 2>/dev/null\' EXIT']
    for command in commands:
        allowed = "0 1" if command.startswith("pytest evals") else "0"
        script += [
            f"echo {shlex.quote('$ ' + command)}",
            command,  # its own line: a trailing comment would swallow anything after it
            "rc=$?",
            f'case " {allowed} " in *" $rc "*) ;; *) echo "README command failed (exit $rc): "{shlex.quote(command)} >&2; exit 1;; esac',
        ]
    env = {**clean_environ(root), **(environ or {})}
    return subprocess.run(["bash", "-c", "\n".join(script)], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_readme_marks_its_follow_up_blocks() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    after_demo = readme_block(readme, AFTER_DEMO)
    assert after_demo[0].startswith(". .venv/bin/activate") and "tools/local_langfuse.py" in after_demo[1]
    assert any("--limit 8" in line for line in after_demo)  # the demo's rows
    after_phase2 = readme_block(readme, AFTER_PHASE2_DEMO)  # run on its own, in a new shell: it says how to enter one
    assert after_phase2[0].startswith(". .venv/bin/activate") and "tools/local_langfuse.py" in after_phase2[1]
    assert any("--hosted-model gold" in line for line in after_phase2)


@pytest.mark.slow
def test_readme_follow_up_commands_run_as_printed_after_the_demo(tmp_path: Path) -> None:
    root = copy_clone(tmp_path / "clone")
    demo = [sys.executable, "tools/pipeline.py", "--demo", "--tracks", "toolcall", "--train-limit", "2", "--max-new-tokens", "8"]
    ran = subprocess.run(demo, cwd=root, env=clean_environ(root), capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    done = run_block(root, readme_block((REPO / "README.md").read_text(encoding="utf-8"), AFTER_DEMO))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    evals = root / "slm_swap" / "05_eval"
    for name in ("toolcall_replay.json", "decision_interval.json", "report.md", "toolcall_slm_debug.json"):
        assert (evals / name).is_file(), name
    assert "Traceback" not in output
    for noise in NOISE:  # third-party noise the project triggers is filtered at its source
        assert noise not in output + ran.stdout + ran.stderr, noise


def prepare_phase2_outputs(root: Path) -> None:
    """What the Phase II demo leaves for its follow-ups: the test task list, the gold hosted run, an SLM run."""
    evals = root / "slm_swap" / "05_eval"
    evals.mkdir(parents=True, exist_ok=True)
    tasks = (root / "slm_swap" / "02_dataset" / "agent" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    (evals / "agent_tasks_test.jsonl").write_text("\n".join(tasks) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider", "-k", "agent", "--model=gold", "--arm=toolcall"]
    command += ["--dataset", "slm_swap/05_eval/agent_tasks_test.jsonl"]
    ran = subprocess.run(command, cwd=root, env={**clean_environ(root), **langfuse_keys()}, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    for suffix in (".json", ".predictions.jsonl"):
        shutil.copy(evals / f"agent_gold_toolcall{suffix}", evals / f"agent_slm_toolcall{suffix}")


def langfuse_keys() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("LANGFUSE_")}


@pytest.mark.slow
def test_readme_follow_up_commands_run_as_printed_after_the_phase2_demo(tmp_path: Path, langfuse_env: object) -> None:
    root = copy_clone(tmp_path / "clone")
    prepare_phase2_outputs(root)
    commands = readme_block((REPO / "README.md").read_text(encoding="utf-8"), AFTER_PHASE2_DEMO)
    done = run_block(root, commands)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    evals = root / "slm_swap" / "05_eval"
    assert (evals / "agent_replay_toolcall.json").is_file() and (evals / "decision_agent_toolcall.json").is_file()
