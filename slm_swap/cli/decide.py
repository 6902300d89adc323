"""Decide per track whether to fine-tune the SLM, from the hosted and SLM metric and predictions files.

    python tools/decide.py                      # both tracks, delta 0.02, the seed's point rule
    python tools/decide.py --tracks toolcall --delta 0.05
    python tools/decide.py --rule interval      # fine-tune only when the SLM is shown to trail
    eval "$(python tools/decide.py --quiet)"    # sets FINE_TUNE_STRUCTURED / FINE_TUNE_TOOLCALL
    python tools/decide.py --tracks agent --arm toolcall   # the agent track: agent_azure_toolcall.json vs agent_slm_toolcall.json

Per track and core metric it compares the two runs row by row (matched by row id): the gap hosted - SLM
with its 95 % paired interval, the rows only one model passes, McNemar's exact p-value; then a verdict
(no_baseline, slm_trails, slm_matches, inconclusive with the rows that would resolve it). For the agent track the
rows are tasks: task_success_rate is paired by task, turn_success_rate by turn; valid_action_rate counts actions, so
it cannot be paired: it is reported beside the verdict and enters no rule. Every number comes from the predictions
files: a metric file whose rates or counts disagree with its predictions, or are not finite, is refused (exit 2).
Writes slm_swap/05_eval/decision.json, prints `FINE_TUNE_<TRACK>=0|1` lines (the agent track's name its arm:
`FINE_TUNE_AGENT_<ARM>`) and a table,
and logs one Langfuse event per track (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slm_swap.cli import REPO, add_run_files, checked_langfuse, run_files, secrets
from slm_swap.decision.rules import RULES
from slm_swap.decision.run import DecisionRequest, run_decision
from slm_swap.layout import Layout, decision_path
from slm_swap.options import DELTA
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracks.registry import track_names
from slm_swap.tracks.rows.definitions import TRACK_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delta", type=float, default=DELTA.default, help=f"{DELTA.help}: fine-tune beyond it (> 0; default {DELTA.default})"
    )
    parser.add_argument(
        "--tracks", nargs="+", choices=track_names(), default=list(TRACK_NAMES), help="tracks to decide (default: the row tracks)"
    )
    parser.add_argument("--arm", choices=AGENT_ARMS, default="codeact", help="the agent track's arm (its metric files name it)")
    parser.add_argument("--eval-dir", type=Path, default=Layout(REPO).eval_dir, help="folder of the metric files")
    parser.add_argument("--hosted-model", default="azure", help="model name in the hosted metric file names")
    parser.add_argument("--after-tag", default="ft", help="tag of post-fine-tune SLM metric files, reported as 'after' when present")
    parser.add_argument("--output", type=Path, default=None, help="decision file (default <eval-dir>/decision.json)")
    parser.add_argument("--quiet", action="store_true", help="print only the FINE_TUNE_<TRACK>= lines")
    parser.add_argument(
        "--rule",
        choices=RULES,
        default="point",
        help="point (default): fine-tune when a point gap exceeds delta; interval: only when the verdict is slm_trails",
    )
    parser.add_argument(
        "--fine-tune-when-inconclusive", action="store_true", help="with --rule interval: fine-tune an inconclusive track too"
    )
    add_run_files(parser, track_names())
    return parser


def main(args: argparse.Namespace) -> int:
    langfuse = checked_langfuse(args.delta)
    if langfuse is None:
        return 2
    pairs = run_files(args, args.arm)
    output = args.output or decision_path(args.eval_dir)
    request = DecisionRequest(
        pairs=pairs,
        delta=args.delta,
        output=output,
        quiet=args.quiet,
        rule=args.rule,
        fine_tune_when_inconclusive=args.fine_tune_when_inconclusive,
    )
    return run_decision(request, langfuse, secrets=secrets())


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
