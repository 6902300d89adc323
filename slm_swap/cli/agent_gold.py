"""Run the gold policy over BFCL's multi-turn tasks through the episode runner, the sandbox and BFCL's checker.

    python tools/agent_gold.py                                  # all 800 tasks, both arms
    python tools/agent_gold.py --arms toolcall --every 10       # tasks 0, 10, 20, ... of each category
    python tools/agent_gold.py --categories multi_turn_base --max-active 32

Prints, per arm, the tasks excluded with their reason (ground truth that cannot be reached or that BFCL's
checker rejects), the metrics over the rest, every failing task, and the wall time. Exit 1 when a scored
task fails: the runner, the sandbox, the dispatch and the checker disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from slm_swap.options import MAX_ACTIVE, MAX_STEPS_PER_TURN
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracks.agent.data.bfcl_multi_turn import MULTI_TURN_CATEGORIES, load_multi_turn
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, run_episodes
from slm_swap.tracks.agent.episodes.gold import gold_policy
from slm_swap.tracks.agent.episodes.scoring import agent_metrics, ground_truth_rejection, score_trajectory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=AGENT_ARMS, default=list(AGENT_ARMS), help="action formats to run")
    parser.add_argument("--categories", nargs="+", choices=MULTI_TURN_CATEGORIES, default=list(MULTI_TURN_CATEGORIES))
    parser.add_argument("--every", type=int, default=1, help="only tasks whose number is a multiple of this")
    parser.add_argument("--max-active", type=int, default=MAX_ACTIVE.default, help=MAX_ACTIVE.help)
    parser.add_argument("--max-steps-per-turn", type=int, default=MAX_STEPS_PER_TURN.default, help=MAX_STEPS_PER_TURN.help)
    return parser


def main(args: argparse.Namespace) -> int:
    data = load_multi_turn(categories=tuple(args.categories))
    tasks = [t for t in data.tasks if int(t.id.rpartition("_")[2]) % args.every == 0]
    excluded = {t.id: reason for t in tasks if (reason := ground_truth_rejection(t))}
    scored = [t for t in tasks if t.id not in excluded]
    print(f"{len(tasks)} tasks, {len(excluded)} excluded: {json.dumps(excluded, indent=2)}")
    failed = 0
    for arm in args.arms:
        settings = EpisodeSettings(arm, args.max_steps_per_turn, args.max_active)
        started = time.monotonic()
        trajectories = run_episodes(scored, gold_policy(arm, settings.max_steps_per_turn), settings)
        results = [score_trajectory(task, trajectory) for task, trajectory in zip(scored, trajectories)]
        print(f"{arm}: {time.monotonic() - started:.1f} s, {json.dumps(agent_metrics(results))}")
        for result in (r for r in results if not r.passed):
            failed += 1
            where = f"turn {result.first_failing_turn} step {result.first_failing_step}"
            print(f"  {result.task_id}: {result.failure} in {where}: {result.detail}")
    return 1 if failed else 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
