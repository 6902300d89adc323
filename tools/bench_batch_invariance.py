"""Benchmark the static engine's default and batch-invariant modes: rows/s batched and alone, and text flips.

    # CPU, embedded checkpoint (fetch it first: python tools/fetch_model.py smollm2-135m-instruct)
    python tools/bench_batch_invariance.py --device cpu --rows 8 --new-tokens 16

Rows are --rows rows of the track's test split, chosen with a fixed seed; each mode generates them in one
batch, then one at a time. Prints a markdown table (slm_swap.bench.invariance).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.bench.invariance import bench_mode, markdown_table
from slm_swap.data.rows import load_rows
from slm_swap.layout import Layout, split_path

REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to generate (default: cpu)")
    parser.add_argument("--model", type=Path, default=REPO / "slm_swap" / "models" / "smollm2-135m-instruct", help="checkpoint folder")
    parser.add_argument("--track", default="toolcall", help="which track's test rows (default: toolcall)")
    parser.add_argument("--rows", type=int, default=8, help="rows, generated as one batch and one at a time (default: 8)")
    parser.add_argument("--new-tokens", type=int, default=16, help="most new tokens per row (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="which rows (default: 0)")
    return parser


def main(args: argparse.Namespace) -> int:
    rows = load_rows(split_path(Layout(REPO).dataset_dir, args.track, "test"), args.track)
    chosen = random.Random(args.seed).sample(rows, min(args.rows, len(rows)))
    results = [bench_mode(args.model, chosen, args.new_tokens, mode, args.device) for mode in (False, True)]
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
