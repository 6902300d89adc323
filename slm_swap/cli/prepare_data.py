"""Write the train/val/test splits of both row tracks, and their manifest, under slm_swap/02_dataset; with the
bfcl source also the agent track's splits of BFCL's multi-turn tasks by scenario, with their own manifest,
under slm_swap/02_dataset/agent.

    python tools/prepare_data.py                                  # bfcl, from the installed bfcl-eval package
    python tools/prepare_data.py --source xlam --xlam-path xlam_function_calling_60k.json
    HF_TOKEN=hf_... python tools/prepare_data.py --source xlam     # download the gated file from the hub

bfcl-eval is installed without its dependencies: `pip install --no-deps bfcl-eval==2026.3.23`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from slm_swap.cli import REPO
from slm_swap.data.bfcl import load_bfcl
from slm_swap.data.rows import DatasetError
from slm_swap.data.sources import SourceData
from slm_swap.data.splits import DEFAULT_SEED, SplitSizes, prepare_dataset
from slm_swap.data.xlam import download_xlam, load_xlam
from slm_swap.layout import Layout, split_path
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.splits import prepare_multi_turn_splits
from slm_swap.tracks.agent.definition import AGENT

DEFAULT_OUT_DIR = Layout(REPO).dataset_dir
DEFAULT_SIZES = SplitSizes()


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("bfcl", "xlam"), default="bfcl", help="where the examples come from (default: bfcl)")
    parser.add_argument("--bfcl-data", type=Path, help="bfcl data folder (default: data/ of the installed bfcl-eval package)")
    parser.add_argument("--xlam-path", type=Path, help="local xlam_function_calling_60k.json (default: download with HF_TOKEN)")
    parser.add_argument(
        "--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="folder for the split folders and manifest (default: slm_swap/02_dataset)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"split seed (default: {DEFAULT_SEED})")
    parser.add_argument("--test-size", type=positive_int, default=DEFAULT_SIZES.test, help=f"test rows (default: {DEFAULT_SIZES.test})")
    parser.add_argument("--val-size", type=positive_int, default=DEFAULT_SIZES.val, help=f"validation rows (default: {DEFAULT_SIZES.val})")
    parser.add_argument(
        "--train-size", type=positive_int, default=DEFAULT_SIZES.train, help=f"most training rows (default: {DEFAULT_SIZES.train})"
    )
    return parser


def load_source(args: argparse.Namespace, hf_token: str | None) -> SourceData:
    if args.source == "bfcl":
        return load_bfcl(args.bfcl_data)
    return load_xlam(args.xlam_path if args.xlam_path is not None else download_xlam(hf_token))


def prepare_agent_splits(args: argparse.Namespace) -> dict:
    """The multi-turn tasks of the same bfcl data folder, split by scenario with the same seed (sizes count scenarios)."""
    out_dir = split_path(args.out_dir, AGENT.name, "test").parent
    return prepare_multi_turn_splits(load_multi_turn(args.bfcl_data), out_dir, args.seed)


def main(args: argparse.Namespace) -> int:
    try:
        data = load_source(args, os.environ.get("HF_TOKEN") or None)
        sizes = SplitSizes(test=args.test_size, val=args.val_size, train=args.train_size)
        manifest = prepare_dataset(data, args.out_dir, args.seed, sizes)
        agent = prepare_agent_splits(args) if args.source == "bfcl" else None
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{split} {n}" for split, n in manifest["counts"].items())
    dropped = ", ".join(f"{reason}: {n}" for reason, n in manifest["dropped"].items()) or "none"
    print(f"{manifest['source']}: {manifest['rows_read']} rows read, {manifest['usable']} usable; {counts}; dropped: {dropped}")
    if agent is not None:
        counts = ", ".join(f"{split} {n} ({agent['scenarios'][split]} scenarios)" for split, n in agent["counts"].items())
        print(f"{agent['source']}: {agent['rows_read']} tasks read, {agent['usable']} usable; {counts}")
    print(f"wrote {args.out_dir}")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
