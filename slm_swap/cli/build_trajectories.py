"""Build the agent track's training records from trajectories: verified, shortest per task, no test scenario.

    python tools/build_trajectories.py --arm codeact --inputs slm_swap/05_eval/agent_azure_codeact.trajectories.jsonl
    python tools/build_trajectories.py --arm toolcall --gold       # offline: gold demonstrations as the teacher
    python tools/build_trajectories.py --arm toolcall --gold --limit-tasks 8

Reads trajectories JSONL files (a hosted teacher's `pytest evals -k agent --model=azure --capture` output) and,
with --gold, also writes and reads gold demonstrations of the train and val tasks (BFCL's ground-truth calls,
labelled as such: no model). Keeps what BFCL's checker accepted, the shortest per task, drops duplicates and
every task outside the train and val scenarios, and writes slm_swap/02_dataset/agent_<arm>/{train,val}.jsonl,
rejected.jsonl and manifest.json (input sha256, counts, reasons). Fine-tune on them with
`python tools/finetune.py --track agent_<arm>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slm_swap.cli import REPO
from slm_swap.data.rows import DatasetError
from slm_swap.layout import Layout
from slm_swap.options import MAX_STEPS_PER_TURN
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.splits import load_split_tasks
from slm_swap.tracks.agent.data.trajectories import write_trajectories
from slm_swap.tracks.agent.data.trajectory_build import TRAINING_SPLITS, build_training_records, training_set_name
from slm_swap.tracks.agent.episodes.demonstrations import gold_demonstrations
from slm_swap.tracks.agent.episodes.episode import EpisodeSettings
from slm_swap.tracks.agent.episodes.recheck import recheck_records

GOLD_FILE = "gold_demonstrations.jsonl"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", required=True, choices=AGENT_ARMS, help="action format of the trajectories to keep")
    parser.add_argument("--inputs", nargs="*", type=Path, default=[], help="trajectories JSONL files")
    parser.add_argument("--gold", action="store_true", help="add gold demonstrations of the train and val tasks (offline teacher)")
    parser.add_argument("--limit-tasks", type=int, default=None, help="with --gold: the first N tasks of each of train and val")
    parser.add_argument("--max-steps-per-turn", type=int, default=MAX_STEPS_PER_TURN.default, help=MAX_STEPS_PER_TURN.help)
    parser.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir)
    parser.add_argument("--out-dir", type=Path, default=None, help="default <dataset-dir>/agent_<arm>/")
    return parser


def main(args: argparse.Namespace) -> int:
    out_dir = args.out_dir or args.dataset_dir / training_set_name(args.arm)
    agent_dir = args.dataset_dir / "agent"
    inputs = list(args.inputs)
    settings = EpisodeSettings(args.arm, args.max_steps_per_turn)
    try:
        data = load_multi_turn()
        tasks_by_id = {task.id: task for task in data.tasks}
        if args.gold:
            tasks = [task for split in TRAINING_SPLITS for task in load_split_tasks(agent_dir / f"{split}.jsonl", data)[: args.limit_tasks]]
            records = gold_demonstrations(tasks, settings)
            out_dir.mkdir(parents=True, exist_ok=True)
            write_trajectories(out_dir / GOLD_FILE, records)
            inputs.append(out_dir / GOLD_FILE)
            print(f"gold demonstrations: {len(records)} of {len(tasks)} train and val tasks -> {out_dir / GOLD_FILE}")
        if not inputs:
            print("error: give --inputs FILE ... or --gold", file=sys.stderr)
            return 2
        manifest = build_training_records(
            inputs, agent_dir, out_dir, args.arm, lambda records: recheck_records(records, tasks_by_id, settings)
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{manifest['records_read']} trajectories read; kept {json.dumps(manifest['counts'])}; left out {json.dumps(manifest['dropped'])}"
    )
    print(f"wrote {out_dir}/{{train,val}}.jsonl, rejected.jsonl, manifest.json")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
