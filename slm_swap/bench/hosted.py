"""Hosted evaluation wall time: whole `pytest evals --model=azure` runs, timed as subprocesses.

`tools/bench_hosted.py` builds the project and the endpoint; this module names the runs (`Case`),
times one (`time_run`), reads what its metric file says (`Outcome`) and writes the markdown figures
with the issue's targets beside them (`report_lines`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRACK = "toolcall"
# the targets: at least this speed-up with a hold; at most this slow-down without one
MIN_SPEEDUP_WITH_HOLD = 12.0
MAX_SLOWDOWN_WITHOUT_HOLD = 1.5


@dataclass(frozen=True)
class Case:
    """One timed run: a label, the pytest options it adds, the endpoint's hold and its share of 429s."""

    label: str
    hold_s: float
    args: tuple[str, ...]
    rate_limit: float = 0.0

    @property
    def serial(self) -> bool:
        return self.args == ("--max-connections", "1")


def cases(hold_s: float, connections: int, workers: int, rate_limit: float) -> list[Case]:
    """Serial, one process with `connections`, and xdist with `workers`, at `hold_s` then 0 s; then the 429 run."""
    runs = []
    for hold in (hold_s, 0.0):
        runs += [
            Case("serial", hold, ("--max-connections", "1")),
            Case(f"--max-connections {connections}", hold, ("--max-connections", str(connections))),
            Case(f"-n {workers} --max-connections 1", hold, ("-n", str(workers), "--max-connections", "1")),
        ]
    label = f"--max-connections {connections}, {rate_limit:.0%} 429s"
    runs.append(Case(label, hold_s, ("--max-connections", str(connections)), rate_limit))
    return runs


def eval_command(case: Case) -> list[str]:
    return [sys.executable, "-m", "pytest", "evals", "-k", TRACK, "--model=azure", "--no-cache", "-q", "--tb=short", *case.args]


@dataclass
class Outcome:
    """What one run took and what its metric file and the endpoint say."""

    case: Case
    wall_s: float
    returncode: int
    rows: int
    answered: int  # rows with an answer (no error)
    passed: int
    requests: int
    injected_429: int
    retries: dict[str, int] = field(default_factory=dict)
    concurrency: dict[str, int] | None = None
    # start-up and wind-down, from the endpoint's log: process start to its first request, its last reply to exit
    first_request_s: float | None = None
    exit_after_last_reply_s: float | None = None

    def lost(self, expected: int) -> int:
        return expected - self.answered


def time_run(case: Case, project: Path, environ: Mapping[str, str], log: Path, timeout_s: float) -> tuple[float, int, float]:
    """Run the case's pytest command in `project`; (wall seconds, exit status, `time.monotonic()` at its start, the
    fault server's clock). Its output goes to `log`."""
    with log.open("w", encoding="utf-8") as out:
        started = time.monotonic()
        status = subprocess.run(
            eval_command(case), cwd=project, env=dict(environ), stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s
        ).returncode
        return time.monotonic() - started, status, started


def read_outcome(case: Case, wall_s: float, status: int, metric: Path, requests: int, injected_429: int) -> Outcome:
    doc: dict[str, Any] = json.loads(metric.read_text(encoding="utf-8")) if metric.exists() else {}
    return Outcome(
        case=case,
        wall_s=wall_s,
        returncode=status,
        rows=doc.get("n", 0),
        answered=doc.get("n", 0) - doc.get("errors", 0),
        passed=doc.get("passed", 0),
        requests=requests,
        injected_429=injected_429,
        retries=doc.get("retries", {}),
        concurrency=doc.get("model_description", {}).get("concurrency"),
    )


def _serial_wall(outcomes: Sequence[Outcome], hold_s: float) -> float | None:
    return next((o.wall_s for o in outcomes if o.case.serial and o.case.hold_s == hold_s and not o.case.rate_limit), None)


def _speedup(outcome: Outcome, outcomes: Sequence[Outcome]) -> str:
    serial = _serial_wall(outcomes, outcome.case.hold_s)
    return f"{serial / outcome.wall_s:.1f}x" if serial else "-"


def timing_table(outcomes: Sequence[Outcome], expected: int) -> list[str]:
    lines = [
        "| hold per reply | run | wall s | speed-up over serial | first request s | exit after last reply s | rows answered "
        "| passed | requests | exit |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        if o.case.rate_limit:
            continue
        lines.append(
            f"| {o.case.hold_s:g} s | `{' '.join(o.case.args)}` | {o.wall_s:.1f} | {_speedup(o, outcomes)} | "
            f"{_seconds(o.first_request_s)} | {_seconds(o.exit_after_last_reply_s)} | "
            f"{o.answered}/{expected} | {o.passed} | {o.requests} | {o.returncode} |"
        )
    return lines


def rate_limit_lines(outcome: Outcome, expected: int) -> list[str]:
    c = outcome.concurrency or {}
    return [
        "| run | hold | wall s | rows lost | injected 429s | retries | connections start | minimum | final | most in flight |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| `{' '.join(outcome.case.args)}`, {outcome.case.rate_limit:.0%} 429s | {outcome.case.hold_s:g} s | {outcome.wall_s:.1f} | "
        f"{outcome.lost(expected)} | {outcome.injected_429} | {outcome.retries} | {c.get('start', '-')} | {c.get('minimum', '-')} | "
        f"{c.get('final', '-')} | {c.get('max_in_flight', '-')} |",
    ]


def target_lines(outcomes: Sequence[Outcome], expected: int, connections: int) -> list[str]:
    """Each of the issue's targets with the figure that meets it or not."""
    lines = []
    parallel = [o for o in outcomes if o.case.args == ("--max-connections", str(connections)) and not o.case.rate_limit]
    for o in parallel:
        serial = _serial_wall(outcomes, o.case.hold_s)
        if not serial:
            continue
        ratio = serial / o.wall_s
        if o.case.hold_s > 0:
            met = ratio >= MIN_SPEEDUP_WITH_HOLD
            lines.append(f"- hold {o.case.hold_s:g} s: {ratio:.1f}x faster than serial (target >= {MIN_SPEEDUP_WITH_HOLD:g}x): {_met(met)}")
        else:
            slowdown = o.wall_s / serial
            met = slowdown <= MAX_SLOWDOWN_WITHOUT_HOLD
            lines.append(f"- hold 0 s: {slowdown:.2f}x serial's wall time (target <= {MAX_SLOWDOWN_WITHOUT_HOLD:g}x): {_met(met)}")
    for o in outcomes:
        if o.case.rate_limit:
            c = o.concurrency or {}
            lost_ok = o.lost(expected) == 0
            lower = bool(c) and c["minimum"] < c["start"]
            lines.append(f"- {o.case.rate_limit:.0%} 429s: {o.lost(expected)} rows lost (target 0): {_met(lost_ok)}")
            minimum, start = c.get("minimum", "-"), c.get("start", "-")
            lines.append(f"- {o.case.rate_limit:.0%} 429s: connections minimum {minimum} below start {start}: {_met(lower)}")
    return lines


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report_lines(outcomes: Sequence[Outcome], expected: int, connections: int) -> list[str]:
    lines = [*timing_table(outcomes, expected), ""]
    for o in outcomes:
        if o.case.rate_limit:
            lines += [*rate_limit_lines(o, expected), ""]
    return [*lines, "Targets:", *target_lines(outcomes, expected, connections)]
