"""`pytest evals --model=X` runs the row tracks; the agent track runs only when the command selects it (issue 30).

Before, a plain `pytest evals --model=slm` (README's step 3) ran the agent track first, hundreds of episodes on a
CPU, and wrote no row-track metric file for a quarter of an hour. Collected from the repository's own `evals/` and
committed splits, as a user's command collects them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def collected(*args: str) -> list[str]:
    """The case ids a collection lists, then its summary line."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line] + [done.stdout.splitlines()[-1]]


def test_a_plain_run_collects_the_row_tracks_and_no_agent_task():
    lines = collected("evals", "--model=slm")
    cases, summary = lines[:-1], lines[-1]
    assert cases and not [line for line in cases if "test_agent" in line]
    assert {line.split("::")[0] for line in cases} == {"evals/test_structured.py", "evals/test_toolcall.py"}
    assert "(1 deselected)" in summary  # the agent track's one stand-in case, its tasks never loaded


def test_k_agent_collects_the_agent_tasks_only():
    cases = collected("evals", "--model=slm", "-k", "agent")[:-1]
    assert len(cases) == 200 and all(line.startswith("evals/test_agent.py::test_agent[multi_turn_") for line in cases)


def test_naming_the_agent_file_selects_it_too():
    cases = collected("evals/test_agent.py", "--model=gold")[:-1]
    assert len(cases) == 200 and all(line.startswith("evals/test_agent.py::test_agent[multi_turn_") for line in cases)
