"""Outside the agent track's slice nothing asks which track it holds: the track protocol answers instead.

Issue 31 counted 48 branches on the agent track's name in 19 files outside its slice; each became a member of
`slm_swap.tracks.protocol.Track` or a field of a track's definition. This test reads the code as text and fails
on any comparison with the agent track's name (`== AGENT.name`, `!= "agent"`, `.startswith("agent_")`, ...)
outside `slm_swap/tracks/agent/`, naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLICE = REPO / "slm_swap" / "tracks" / "agent"
AGENT_NAME = r"(?:AGENT\.name|AGENT_TRACK|[\"']agent[\"'])"
BRANCH = re.compile(rf"(?:==|!=|\bis\b|\bin\b)\s*{AGENT_NAME}|{AGENT_NAME}\s*(?:==|!=|\bin\b)|startswith\(\s*(?:f?[\"']agent|{AGENT_NAME})")


def code_files() -> list[Path]:
    files = [*(REPO / "slm_swap").rglob("*.py"), *(REPO / "tools").glob("*.py"), *(REPO / "evals").glob("*.py"), REPO / "conftest.py"]
    return sorted(path for path in files if SLICE not in path.parents)


def branches(text: str) -> list[tuple[int, str]]:
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if BRANCH.search(line.split("#")[0])]


@pytest.mark.parametrize(
    "line",
    [
        "if track == AGENT.name:",  # the common form
        'row = "task" if decision.track == AGENT.name else "row"',  # inside an expression
        'if settings.track != "agent":',  # the name written out
        "if AGENT.name in self.models:",  # membership
        'prefix_ok = track.startswith("agent_")',  # a training set's prefix
        "if track == AGENT_TRACK:",  # layout's constant
    ],
)
def test_the_branch_pattern_sees_a_branch(line: str) -> None:
    assert branches(line), line


def test_the_branch_pattern_passes_a_track_that_is_only_named() -> None:
    assert not branches('TRACK = AGENT.name\nout_dir = split_path(root, AGENT.name, "test")\n# if track == AGENT.name (a comment)')


def test_no_code_outside_the_agent_slice_branches_on_the_agent_track() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line}" for path in code_files() for number, line in branches(path.read_text(encoding="utf-8"))
    ]
    assert not found, "branches on the agent track outside slm_swap/tracks/agent/:\n" + "\n".join(found)
