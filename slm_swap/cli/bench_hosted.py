"""Benchmark hosted evaluation: one process with --max-connections against serial and against pytest-xdist.

    .venv/bin/python tools/bench_hosted.py --rows 200 --hold 0.5 --connections 16 --workers 16 --out bench_hosted.json
    .venv/bin/python tools/bench_hosted.py --only-connections   # start-up and wind-down of the one-process runs only

Builds a temporary project with the real conftest, evals and plugin and `--rows` toolcall rows, and
serves every prompt its gold answer from a local OpenAI-compatible endpoint that holds each reply
`--hold` seconds. Both come from the project's own test fixtures, `tests/harness_support.py`
(`make_project`) and `tests/fault_server.py` (`FaultServer`): `tools/bench_hosted.py` puts the repo's `tests/`
folder on sys.path to import them. Langfuse goes to a local `LangfuseReceiver` started here.

An untimed warm-up run first writes Python's bytecode caches, as any earlier run on a user's machine would
have. Each run is a whole `python -m pytest evals -k toolcall --model=azure --no-cache -q ...` subprocess,
timed from start to exit (and, from the endpoint's log, from start to the first request and from the last reply
to exit: the run's start-up and wind-down), with a fresh endpoint: serial (`--max-connections 1`),
`--max-connections N` and `-n W --max-connections 1`, at `--hold` and at 0 s; then
`--max-connections N` at `--hold` with `--rate-limit` of the requests answered 429 with
`retry-after-ms` (at most 3 per row), reporting rows lost and the connections' start, minimum and final
from the metric file. Prints markdown tables and the issue's targets, met or not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from fault_server import FaultServer
from harness_support import make_project

from slm_swap.bench.hosted import TRACK, Case, Outcome, cases, read_outcome, report_lines, time_run
from slm_swap.cli import REPO
from slm_swap.tracing.receiver.server import LangfuseReceiver

KEY = "bench-key-not-a-secret"
RUN_TIMEOUT_S = 900.0


class ProjectFolder:
    """What `make_project` asks of pytest's `Pytester`, on a plain folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def makeini(self, source: str) -> None:
        (self.path / "tox.ini").write_text(source, encoding="utf-8")

    def makeconftest(self, source: str) -> None:
        (self.path / "conftest.py").write_text(source, encoding="utf-8")

    def mkdir(self, name: str) -> Path:
        path = self.path / name
        path.mkdir()
        return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200, help="toolcall rows (default: 200)")
    parser.add_argument("--hold", type=float, default=0.5, help="seconds the endpoint holds each reply (default: 0.5); 0 s runs too")
    parser.add_argument("--connections", type=int, default=16, help="--max-connections of the one-process runs (default: 16)")
    parser.add_argument("--workers", type=int, default=16, help="pytest-xdist workers of the -n runs (default: 16)")
    parser.add_argument("--rate-limit", type=float, default=0.2, help="share of requests answered 429 in the last run (default: 0.2)")
    parser.add_argument("--retry-after-ms", type=int, default=50, help="retry-after-ms of each injected 429 (default: 50)")
    parser.add_argument(
        "--only-connections",
        action="store_true",
        help="only the one-process --max-connections runs, at --hold and at 0 s: start-up and wind-down, quickly",
    )
    parser.add_argument("--out", type=Path, help="write every run's figures as JSON here")
    return parser


def fault_server(case: Case, answers: dict[str, str], retry_after_ms: int) -> FaultServer:
    """A fresh endpoint for one run: every reply held `hold_s`, and the case's share of 429s."""
    rates = {}
    if case.rate_limit:
        rates["rate_limit"] = case.rate_limit
    if case.hold_s > 0:
        rates["stall"] = round(1.0 - case.rate_limit, 9)  # every reply that is not a 429 is held
    return FaultServer(
        answers=answers,
        rates=rates,
        stall_s=case.hold_s,
        retry_after_ms=retry_after_ms,
        max_faults_per_prompt=3 if case.rate_limit else None,
        seed=11,
        max_requests=100_000,
        max_seconds=RUN_TIMEOUT_S + 60,
    ).start()


def environment(project: Path, endpoint: str, receiver: LangfuseReceiver) -> dict[str, str]:
    public, secret = f"pk-lf-{secrets.token_hex(6)}", f"sk-lf-{secrets.token_hex(6)}"
    receiver.accept_key(public, secret)
    # PYTHONDONTWRITEBYTECODE is dropped: a user's Python caches bytecode (and pytest its rewritten modules),
    # and without the caches every run compiles openai, langfuse and hypothesis anew (about 1.5 s more a run here)
    dropped = ("AZURE_API_VERSION", "AZURE_MODEL", "PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")
    environ = {key: value for key, value in os.environ.items() if key not in dropped}
    environ.update(
        AZURE_ENDPOINT=endpoint,
        AZURE_API_KEY=KEY,
        LANGFUSE_PUBLIC_KEY=public,
        LANGFUSE_SECRET_KEY=secret,
        LANGFUSE_HOST=receiver.url,
        PYTHONPATH=f"{REPO}:{project}",  # xdist workers are fresh interpreters
    )
    return environ


def run_case(case: Case, project: Path, answers: dict[str, str], args: argparse.Namespace, receiver: LangfuseReceiver) -> Outcome:
    server = fault_server(case, answers, args.retry_after_ms)
    try:
        receiver.clear()
        log = project / f"run-{len(list(project.glob('run-*.log'))):02d}.log"
        wall, status, started = time_run(case, project, environment(project, server.endpoint, receiver), log, RUN_TIMEOUT_S)
        injected = sum(n for label, n in server.fault_counts().items() if label.startswith("rate_limit"))
        recorded = server.requests
    finally:
        server.stop()
    metric = project / "slm_swap" / "05_eval" / f"{TRACK}_azure.json"
    outcome = read_outcome(case, wall, status, metric, len(recorded), injected)
    if recorded:  # the server's clock is this process's time.monotonic(), as time_run's start is
        outcome.first_request_s = min(r.received_at for r in recorded) - started
        outcome.exit_after_last_reply_s = started + wall - max(r.replied_at or r.received_at for r in recorded)
    metric.unlink(missing_ok=True)
    print(f"hold {case.hold_s:g} s, {case.label}: {wall:.1f} s, exit {status}, {outcome.answered}/{args.rows} rows answered", flush=True)
    if status != 0:
        print(log.read_text(encoding="utf-8")[-3000:], file=sys.stderr)
    return outcome


def main(args: argparse.Namespace) -> int:
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; load {os.getloadavg()}", flush=True)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="bench-hosted-") as tmp, LangfuseReceiver() as receiver:
        project = Path(tmp)
        rows = make_project(ProjectFolder(project), n=args.rows)[TRACK]
        answers = {row["prompt"]: row["completion"] for row in rows}
        warm_up = Case("warm-up (not timed: writes the bytecode caches)", 0.0, ("--max-connections", "1"))
        run_case(warm_up, project, answers, args, receiver)
        for case in cases(args.hold, args.connections, args.workers, args.rate_limit):
            if not args.only_connections or (case.args == ("--max-connections", str(args.connections)) and not case.rate_limit):
                outcomes.append(run_case(case, project, answers, args, receiver))
    print(f"load after {os.getloadavg()}\n")
    print("\n".join(report_lines(outcomes, args.rows, args.connections)))
    if args.out:
        args.out.write_text(json.dumps([asdict(o) for o in outcomes], indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return 0 if all(o.returncode == 0 and o.lost(args.rows) == 0 for o in outcomes) else 1


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
