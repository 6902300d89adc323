"""Partial swaps, offline: per track, what share of traffic the SLM can serve behind the validator, with the hosted
model answering what the validator rejects, from the hosted and SLM runs already on disk.

    python tools/route.py                                   # both row tracks, delta 0.02
    python tools/route.py --tracks toolcall --delta 0.05
    python tools/route.py --toolcall-hosted H.json --toolcall-slm S.json --output /tmp/routes

Per track it pairs the two runs' rows by id, with the decision's refusals (tools/decide.py: a metric file that
disagrees with its predictions, different tracks, splits, datasets or rows), validates each SLM answer against the
signatures its prompt offered (slm_swap/validation/), and writes route_<track>.json: the share the SLM serves, the
routed system's rates against hosted-only and SLM-only with 95 % intervals, the paired gap hosted-only - routed, the
validator's precision (accepted SLM answers that are exactly right), what rejections cost, each row's route, and a
verdict in words; for the base SLM and, when its runs are there, the SLM + adapter (`--after-tag`). One Langfuse
trace `route` (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST). Exit 2 on bad inputs, 3 when the trace was lost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slm_swap.cli import REPO, add_run_files, checked_langfuse, run_files, secrets
from slm_swap.layout import Layout
from slm_swap.options import DELTA
from slm_swap.routing.run import RouteRequest, run_routing
from slm_swap.tracks.rows.definitions import TRACK_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delta",
        type=float,
        default=DELTA.default,
        help=f"{DELTA.help}: the routed system against hosted-only (> 0; default {DELTA.default})",
    )
    parser.add_argument("--tracks", nargs="+", choices=TRACK_NAMES, default=list(TRACK_NAMES), help="tracks to route (default: both)")
    parser.add_argument("--eval-dir", type=Path, default=Layout(REPO).eval_dir, help="folder of the metric files")
    parser.add_argument(
        "--dataset-dir", type=Path, default=Layout(REPO).dataset_dir, help="the committed splits, when a run's path is gone"
    )
    parser.add_argument("--hosted-model", default="azure", help="model name in the hosted metric file names")
    parser.add_argument("--after-tag", default="ft", help="tag of the SLM + adapter's metric files, routed too when present")
    parser.add_argument("--output", type=Path, default=None, help="folder of the route_<track>.json files (default --eval-dir)")
    parser.add_argument("--quiet", action="store_true", help="print only the per-track lines")
    add_run_files(parser, TRACK_NAMES)
    return parser


def main(args: argparse.Namespace) -> int:
    langfuse = checked_langfuse(args.delta)
    if langfuse is None:
        return 2
    pairs = run_files(args, arm="")  # a row track's files name no arm
    request = RouteRequest(pairs, args.delta, args.output or args.eval_dir, args.dataset_dir, args.quiet)
    return run_routing(request, langfuse, secrets=secrets())


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
