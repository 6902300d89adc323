"""Measure the agent sandbox's cost per episode: gold over the agent track's test split, and the worker's start time.

    python tools/bench_sandbox.py --arm codeact                 # 200 test tasks, 16 episodes at once, 20 starts
    python tools/bench_sandbox.py --arm toolcall --starts 0     # gold only

To compare with an older tree, run the same two files from a worktree of it with the same interpreter:

    git worktree add /tmp/old-3667c78 3667c78
    cp slm_swap/bench/sandbox_cost.py /tmp/old-3667c78/slm_swap/bench/ && cp tools/bench_sandbox.py /tmp/old-3667c78/tools/
    cd /tmp/old-3667c78 && PYTHONPATH=/tmp/old-3667c78 /work/main/.venv/bin/python tools/bench_sandbox.py --arm codeact

Prints tasks scored and passed (the tasks whose ground truth cannot be scored are left out and named), wall
time, episodes, seconds per episode (wall time over episodes, `--max-active` of them overlapping), steps,
sandbox restarts, and the median, min and max of `--starts` worker starts (constructing `EpisodeSandbox` until
its worker's first reply), then one JSON line of the same. Exit 1 when a scored task fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slm_swap.bench.sandbox_cost import load_tasks, run_gold, time_worker_starts
from slm_swap.cli import REPO
from slm_swap.layout import Layout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", choices=("codeact", "toolcall"), default="codeact", help="action format (default: codeact)")
    parser.add_argument("--split-file", type=Path, default=Layout(REPO).dataset_dir / "agent" / "test.jsonl", help="the tasks to run")
    parser.add_argument("--max-active", type=int, default=16, help="episodes (sandbox workers) open at once (default: 16)")
    parser.add_argument("--max-steps-per-turn", type=int, default=10)
    parser.add_argument("--starts", type=int, default=20, help="worker starts to time, one at a time (default: 20; 0: none)")
    return parser


def main(args: argparse.Namespace) -> int:
    tasks = load_tasks(args.split_file)
    run = run_gold(tasks, args.arm, args.max_active, args.max_steps_per_turn)
    print(f"{args.arm}: {run.tasks} tasks, {len(run.excluded)} excluded: {json.dumps(run.excluded)}")
    print(f"tasks scored {run.scored}, passed {run.passed}")
    print(f"wall {run.wall_seconds:.1f} s, {run.scored} episodes, {run.seconds_per_episode:.3f} s per episode")
    print(f"steps {run.steps}, sandbox restarts {run.sandbox_restarts}, isolation {json.dumps(run.isolation)}")
    for failure in run.failed:
        print(f"  FAILED {failure}")
    summary = {
        "arm": args.arm,
        "tasks": run.tasks,
        "scored": run.scored,
        "passed": run.passed,
        "wall_s": round(run.wall_seconds, 2),
        "episodes": run.scored,
        "s_per_episode": round(run.seconds_per_episode, 4),
        "steps": run.steps,
        "sandbox_restarts": run.sandbox_restarts,
    }
    if args.starts > 0:
        starts = time_worker_starts(tasks, args.arm, args.starts)
        print(
            f"worker start: median {starts.median:.3f} s, min {min(starts.seconds):.3f} s, "
            f"max {max(starts.seconds):.3f} s over {len(starts.seconds)} starts"
        )
        summary |= {"start_median_s": round(starts.median, 4), "start_min_s": round(min(starts.seconds), 4), "starts": len(starts.seconds)}
    print(json.dumps(summary))
    return 1 if run.failed else 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
