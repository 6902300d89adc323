"""Benchmark SLM generation: batched against one row at a time, on the committed test split's prompts.

    # CPU, embedded checkpoint (fetch it first: python tools/fetch_model.py smollm2-135m-instruct)
    python tools/bench_generate.py --device cpu --limit 48 --single-rows 16 --out bench_cpu.json

    # CUDA, random-weight model of Phi-4-mini's architecture in NF4, built on the GPU
    python tools/bench_generate.py --device cuda --random-phi4 --tokenizer slm_swap/models/smollm2-135m-instruct --single-rows 8

The batched runs use --engine (default static: slm_swap/engine/static.py); the static and padded
engines generate exactly --new-tokens tokens per row (min_new_tokens = max_new_tokens);
continuous batching has no minimum, so there --new-tokens is the most per row. One-at-a-time runs
are always plain `generate` calls of one row.
The batch size comes from free accelerator memory unless --batch-size is given. Prints a
markdown table; --out also writes the full numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from slm_swap.backends.checkpoints import CheckpointError
from slm_swap.backends.local_slm import ENGINES, LocalSLM
from slm_swap.bench.generation import bench_track, build_random_phi4_mini, markdown_table, summarize
from slm_swap.bench.machine import machine, versions
from slm_swap.cli import REPO
from slm_swap.data.rows import DatasetError, load_rows
from slm_swap.layout import Layout, split_path
from slm_swap.tracks.rows.definitions import TRACK_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to generate (default: cpu)")
    parser.add_argument(
        "--model-path",
        type=Path,
        default=Layout(REPO).models_dir / "smollm2-135m-instruct",
        help="checkpoint folder (default: the embedded SmolLM2)",
    )
    parser.add_argument("--random-phi4", action="store_true", help="build a random-weight Phi-4-mini (CUDA only) instead of --model-path")
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder for --random-phi4 (default: --model-path)")
    parser.add_argument("--work-dir", type=Path, help="where --random-phi4 saves its checkpoint (default: a temporary folder)")
    parser.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir, help="root of the prepared splits")
    parser.add_argument("--tracks", nargs="+", choices=TRACK_NAMES, default=list(TRACK_NAMES), help="tracks to run (default: both)")
    parser.add_argument("--limit", type=int, help="first N test rows per track (default: all)")
    parser.add_argument("--single-rows", type=int, default=8, help="rows per track generated one at a time (default: 8)")
    parser.add_argument("--new-tokens", type=int, default=60, help="tokens generated per row (default: 60)")
    parser.add_argument("--batch-size", type=int, help="fixed batch size (default: from free memory; 8 on CPU)")
    parser.add_argument("--engine", choices=ENGINES, default="static", help="engine of the batched runs (default: static)")
    parser.add_argument("--quantization", choices=("nf4", "none"), default="nf4", help="weights (default: nf4)")
    parser.add_argument("--out", type=Path, help="write the full results as JSON here")
    return parser


def main(args: argparse.Namespace) -> int:
    if args.random_phi4 and args.device != "cuda":
        print("error: --random-phi4 builds the model on the GPU; use it with --device cuda", file=sys.stderr)
        return 2
    try:
        rows = {track: load_rows(split_path(args.dataset_dir, track, "test"), track) for track in args.tracks}
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_phi4_", dir=args.work_dir) as scratch:
        model_path = args.model_path
        if args.random_phi4:
            model_path = build_random_phi4_mini(Path(scratch) / "phi4-mini-random", args.tokenizer or args.model_path)
        try:
            # One model for both tracks: generate_rows takes each track's rows in a call of its own.
            slm = LocalSLM(
                model_path,
                max_new_tokens=args.new_tokens,
                # Continuous batching has no minimum length; there rows may stop early, which new_tokens_per_s shows.
                min_new_tokens=args.new_tokens if args.engine != "continuous" else 0,
                batch_size=args.batch_size,
                quantization=args.quantization,
                device=args.device,
                engine=args.engine,
            )
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results = [bench_track(slm, rows[track][: args.limit], args.single_rows) for track in args.tracks]
        description = slm.describe()
        slm.close()
    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(args.device),
        "versions": versions(),
        "engine": args.engine,
        "model": "random-weight Phi-4-mini architecture" if args.random_phi4 else str(args.model_path),
        "slm": description,
        **summarize(results),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"{report['machine']}; {report['model']}; engine {args.engine}; {args.new_tokens} new tokens per row")
    print(markdown_table(results))
    print(
        f"all tracks: batched {report['batched_rows_per_s']:.2f} rows/s, one at a time {report['single_rows_per_s']:.3f} rows/s, "
        f"speedup {report['speedup']:.0f}x, flips {report['flips']}/{report['flip_rows_compared']}, "
        f"batched reruns identical: {report['all_batched_reruns_identical']}"
    )
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
