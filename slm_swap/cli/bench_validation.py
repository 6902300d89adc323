"""The latency the router's validator adds per request, over every row of the committed test splits.

    python tools/bench_validation.py                 # prints a JSON summary: median, p99 and max microseconds
    python tools/bench_validation.py --repeats 50 --out validation_bench.json

Per track: each row's gold completion (accepted) and a prose reply (rejected), each validated `--repeats` times
against the signatures its prompt offers (slm_swap/bench/validation.py says what is timed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slm_swap.bench.validation import bench_validation
from slm_swap.cli import REPO
from slm_swap.files import write_json_atomic
from slm_swap.layout import Layout


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir, help="the committed splits")
    parser.add_argument("--repeats", type=int, default=20, help="validations per row and reply (default 20)")
    parser.add_argument("--out", type=Path, default=None, help="also write the summary here")
    return parser


def main(args: argparse.Namespace) -> int:
    result = bench_validation(args.dataset_dir, args.repeats)
    if args.out is not None:
        write_json_atomic(args.out, result)
    print(json.dumps(result, indent=1))
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
