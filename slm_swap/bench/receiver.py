"""How fast the local Langfuse receiver with a dump folder takes an agent run's trace, and what it writes.

    .venv/bin/python -m slm_swap.bench.receiver --tasks 600 --steps 10

Records one synthetic agent run (`--tasks` tasks of `--steps` steps over `--turns` turns; every step but a turn's
last acts, so it has an `execution` child) with the project's own `record_eval_run` through the real Langfuse SDK,
into `python -m slm_swap.tracing.receiver.server --dump-dir` started in a process of its own, as
`tools/local_langfuse.py` starts it. Figures: seconds until `record_eval_run` returned (Langfuse took every span
and score, or its flush bound ran out), seconds until the dump folder's `index.json` counted every span, the bytes
the receiver process wrote (`wchar` of /proc/<pid>/io, read once the dump was complete) and the dump's size.
`--receiver-tree` runs another checkout's receiver (e.g. a `git worktree` of an older commit), so one script
measures the tree before and after a change.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from slm_swap.tracing.client import LangfuseSettings, TracingError
from slm_swap.tracing.runs import EvalRunTrace, record_eval_run
from slm_swap.tracks.agent.episodes.trajectory import StepRecord, Trajectory, TurnRecord
from slm_swap.tracks.agent.run.trace import TaskTrace

KEYS = ("pk-lf-bench", "sk-lf-bench")
OBSERVATION = "Observation: " + "the tool returned a listing of files and their sizes; " * 8
REPLY = "I will call the tool with the arguments the user gave. " * 4


@dataclass(frozen=True)
class ReceiverFigures:
    tasks: int
    steps: int
    spans: int
    scores: int
    record_s: float  # until record_eval_run returned
    dump_complete_s: float | None  # until index.json counted every span; None: it never did
    spans_in_dump: int  # as index.json counted them last
    bytes_written: int | None  # the receiver process's wchar
    dump_bytes: int
    error: str | None  # record_eval_run's TracingError, if any


def synthetic_tasks(tasks: int, steps: int, turns: int, at: float) -> list[TaskTrace]:
    """Tasks shaped like a gold agent run: `steps` steps a task over `turns` turns, every turn ending in an answer."""
    records = []
    for t in range(tasks):
        turn_records = []
        for turn in range(turns):
            count = steps // turns + (1 if turn < steps % turns else 0)
            step_records = []
            for s in range(count):
                acts = s < count - 1
                step_records.append(
                    StepRecord(
                        step=s,
                        text=REPLY,
                        action="calls" if acts else None,
                        calls=[{"name": "ls", "arguments": {"path": f"/task{t}/{s}"}}] if acts else [],
                        results=["ok"] if acts else [],
                        observation=OBSERVATION if acts else None,
                        usage={"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
                        started_at=at + t + s * 0.01,
                        generation_s=0.004,
                        execution_s=0.002 if acts else 0.0,
                    )
                )
            turn_records.append(TurnRecord(turn, f"Please list the files of task {t}, turn {turn}.", step_records, "answer"))
        trajectory = Trajectory(f"multi_turn_base_{t}", "multi_turn_base", "toolcall", [], turn_records, "complete")
        records.append(TaskTrace(trajectory, True, None, None, None, ""))
    return records


def synthetic_run(tasks: int, at: float) -> EvalRunTrace:
    return EvalRunTrace(
        track="agent",
        model_name="gold",
        model={"name": "gold"},
        dataset_path="agent_tasks_test.jsonl",
        dataset_sha256="0" * 64,
        metric_path="agent_gold.json",
        predictions_path="agent_gold.predictions.jsonl",
        pytest_args=["evals", "-k", "agent"],
        started_at=at,
        ended_at=at + tasks + 1,
        rates={"task_success_rate": 1.0, "turn_success_rate": 1.0},
        summary={"n": tasks},
    )


def count_spans(tasks: list[TaskTrace]) -> int:
    steps = [s for task in tasks for turn in task.trajectory.turns for s in turn.steps]
    turns = sum(len(task.trajectory.turns) for task in tasks)
    return 1 + len(tasks) + turns + len(steps) + sum(1 for s in steps if s.action is not None)


def start_receiver(tree: Path, dump_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "slm_swap.tracing.receiver.server", "--port", "0", "--dump-dir", str(dump_dir)]
    command += ["--public-key", KEYS[0], "--secret-key", KEYS[1]]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = dump_dir / "receiver.json"
    deadline = time.monotonic() + 60
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the receiver in {tree} did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["url"]


def indexed_spans(dump_dir: Path) -> int:
    try:
        return sum(t["spans"] for t in json.loads((dump_dir / "index.json").read_text())["traces"])
    except (OSError, ValueError, KeyError):
        return 0


def written_bytes(pid: int) -> int | None:
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith("wchar:")), None)


def measure(tasks: int, steps: int, turns: int, flush_timeout_s: float, dump_dir: Path, tree: Path) -> ReceiverFigures:
    at = time.time() - tasks - 10
    records = synthetic_tasks(tasks, steps, turns, at)
    spans = count_spans(records)
    process, url = start_receiver(tree, dump_dir)
    try:
        settings = LangfuseSettings(KEYS[0], KEYS[1], url, flush_timeout_s=flush_timeout_s)
        started, error = time.monotonic(), None
        try:
            record_eval_run(settings, synthetic_run(tasks, at), records)
        except TracingError as exc:
            error = str(exc)
        record_s = time.monotonic() - started
        complete_s, dumped, changed = None, 0, time.monotonic()
        # a failed recording stops sending (the flush bound raised mid-run): wait only until the dump stops growing
        while time.monotonic() - changed < (5.0 if error else 600.0):
            if (now := indexed_spans(dump_dir)) != dumped:
                dumped, changed = now, time.monotonic()
            if dumped >= spans:
                complete_s = time.monotonic() - started
                break
            time.sleep(0.05)
        wrote = written_bytes(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    size = sum(p.stat().st_size for p in dump_dir.glob("*") if p.is_file())
    complete = None if complete_s is None else round(complete_s, 2)
    return ReceiverFigures(tasks, steps * tasks, spans, tasks + 2, round(record_s, 2), complete, dumped, wrote, size, error)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m slm_swap.bench.receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=600, help="tasks in the run")
    parser.add_argument("--steps", type=int, default=10, help="steps a task")
    parser.add_argument("--turns", type=int, default=2, help="user turns a task (its steps split between them)")
    parser.add_argument("--flush-timeout", type=float, default=30.0, help="the flush bound in seconds (the project's: 30)")
    parser.add_argument("--dump-dir", type=Path, default=None, help="the receiver's dump folder (default: a fresh temporary one)")
    parser.add_argument("--receiver-tree", type=Path, default=Path(__file__).resolve().parents[2], help="checkout whose receiver runs")
    return parser


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="receiver-bench-") as scratch:
        dump_dir = args.dump_dir or Path(scratch)
        figures = measure(args.tasks, args.steps, args.turns, args.flush_timeout, dump_dir, args.receiver_tree.resolve())
    print(json.dumps(asdict(figures), indent=2))
    return 1 if figures.error else 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
