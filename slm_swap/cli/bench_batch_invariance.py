"""Benchmark the static engine's default and batch-invariant modes: rows/s batched and alone, and text flips.

    # CPU, embedded checkpoint (fetch it first: python tools/fetch_model.py smollm2-135m-instruct)
    python tools/bench_batch_invariance.py --device cpu --rows 8 --new-tokens 16
    # GPU, random-weight Phi-4-mini (tokenizer from tools/phi4_tokenizer.py), a fixed 60 new tokens per row
    python tools/bench_batch_invariance.py --device cuda --random-phi4 --tokenizer DIR --rows 200 --new-tokens 60 \\
        --fixed-length --alone-rows 32

Rows are --rows rows of the track's test split, chosen with a fixed seed; each mode generates them in one
batch, then the first --alone-rows of them one at a time. Prints a markdown table (slm_swap.bench.invariance);
--out writes it as JSON with the machine and versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import tempfile
from pathlib import Path

from slm_swap.bench.generation import build_random_phi4_mini
from slm_swap.bench.invariance import BenchSettings, bench_mode, markdown_table
from slm_swap.bench.machine import machine, versions
from slm_swap.cli import REPO
from slm_swap.data.rows import load_rows
from slm_swap.layout import Layout, split_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to generate (default: cpu)")
    parser.add_argument("--model", type=Path, default=REPO / "slm_swap" / "models" / "smollm2-135m-instruct", help="checkpoint folder")
    parser.add_argument("--adapter", type=Path, help="a PEFT adapter folder applied on --model (default: none)")
    parser.add_argument("--random-phi4", action="store_true", help="build a random-weight Phi-4-mini (CUDA only) instead of --model")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for --random-phi4 (default: --model)")
    parser.add_argument("--quantization", choices=("nf4", "none"), default="nf4", help="weights (default: nf4)")
    parser.add_argument("--track", default="toolcall", help="which track's test rows (default: toolcall)")
    parser.add_argument("--rows", type=int, default=8, help="rows generated as one batch (default: 8)")
    parser.add_argument("--alone-rows", type=int, help="of those, how many also one at a time (default: all)")
    parser.add_argument("--new-tokens", type=int, default=16, help="most new tokens per row (default: 16)")
    parser.add_argument("--fixed-length", action="store_true", help="every row generates exactly --new-tokens tokens")
    parser.add_argument("--modes", nargs="+", choices=("default", "invariant"), default=["default", "invariant"], help="modes to run")
    parser.add_argument("--seed", type=int, default=0, help="which rows (default: 0)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    if args.random_phi4 and args.device != "cuda":
        print("error: --random-phi4 builds the model on the GPU; use it with --device cuda", file=sys.stderr)
        return 2
    rows = load_rows(split_path(Layout(REPO).dataset_dir, args.track, "test"), args.track)
    chosen = random.Random(args.seed).sample(rows, min(args.rows, len(rows)))
    with tempfile.TemporaryDirectory(prefix="bench_invariance_") as scratch:
        model = args.model
        if args.random_phi4:
            model = build_random_phi4_mini(Path(scratch) / "phi4-mini-random", args.tokenizer or args.model)
        settings = BenchSettings(
            model,
            args.new_tokens,
            args.device,
            args.quantization,
            args.adapter,
            args.new_tokens if args.fixed_length else 0,
            args.alone_rows,
        )
        results = [bench_mode(settings, chosen, mode == "invariant") for mode in args.modes]
    described = "random-weight Phi-4-mini architecture" if args.random_phi4 else str(args.model)
    print(f"{machine(args.device)}; {described}; {args.quantization}; adapter {args.adapter}; {args.new_tokens} new tokens")
    print(markdown_table(results))
    if args.out is not None:
        report = {
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine": machine(args.device),
            "versions": versions(),
            "results": [dataclasses.asdict(r) for r in results],
        }
        args.out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
