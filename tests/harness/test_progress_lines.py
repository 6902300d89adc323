"""Progress lines of long steps: tokens within an SLM batch, agent steps, hosted rows at any connection count; on a
terminal often, elsewhere (a log, CI) the first line, each SLM batch and the last, and the frequent kinds at most
once every QUIET_INTERVAL_S."""

from __future__ import annotations

import io

import pytest

from slm_swap.harness import progress as progress_module
from slm_swap.harness.progress import AgentProgress, RowProgress


class Terminal(io.StringIO):
    """What the user's terminal receives: a stream that says it is one."""

    def isatty(self) -> bool:
        return True


def test_tokens_within_a_batch_are_reported(pytestconfig: pytest.Config) -> None:
    stream = Terminal()
    progress = RowProgress(pytestconfig, "slm toolcall", stream=stream)
    progress(0, 200)
    progress.tokens(0, 200, 8, 64, 128)
    progress.tokens(0, 200, 8, 65, 128)  # within TOKEN_INTERVAL_S of the last line: not written
    progress(8, 200)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "slm toolcall: generating 200 rows"
    assert lines[1] == "slm toolcall: batch of 8 rows (rows 1-8 of 200): 64/128 tokens, 0 s"
    assert lines[2].startswith("slm toolcall: 8/200 rows generated") and len(lines) == 3


def test_agent_steps_are_reported(pytestconfig: pytest.Config) -> None:
    stream = Terminal()
    progress = AgentProgress(pytestconfig, "slm agent toolcall", stream=stream)
    progress.step(1, 10, 0, 10)
    progress.step(2, 10, 0, 10)  # within a second: not written
    progress.step(9, 0, 10, 10)  # the last: always
    assert stream.getvalue().splitlines() == [
        "slm agent toolcall: step 1, 10 episodes open, 0/10 tasks done, 0 s",
        "slm agent toolcall: step 9, 0 episodes open, 10/10 tasks done, 0 s",
    ]


def test_off_a_terminal_frequent_lines_wait_for_the_quiet_interval(pytestconfig: pytest.Config, monkeypatch) -> None:
    clock = iter([0.0, 1.0, 2.0, 5.0, 31.0, 40.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()  # a log file or CI: no terminal
    hosted = RowProgress(pytestconfig, "azure toolcall", verb="answered", min_interval_s=1.0, stream=stream)
    for done in (0, 1, 2, 3, 4, 5):  # at 0, 1, 2, 5, 31 and 40 s
        hosted(done, 5)
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == [
        "azure toolcall: asking for 5 rows",
        "azure toolcall: 1/5 rows answered",  # the clock starts at 1 s: the first answer
        "azure toolcall: 4/5 rows answered",  # 30 s later
        "azure toolcall: 5/5 rows answered",  # the last line always
    ]
