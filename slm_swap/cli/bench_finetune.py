"""Fine-tuning benchmarks: QLoRA throughput per backend, and task quality before and after an adapter.

    # throughput of one backend (one process per backend: Unsloth patches transformers for the whole process)
    python tools/bench_finetune.py throughput --backend unsloth --arch phi4-mini \
        --tokenizer slm_swap/models/smollm2-135m-instruct --track toolcall --steps 40 --out bench_unsloth.json
    python tools/bench_finetune.py throughput --backend hf --arch phi4-mini ... --steps 12
    # task quality of the base model and of base + adapter on the same rows (greedy, slm_swap.backends.local_slm)
    python tools/bench_finetune.py quality --model slm_swap/models/smollm2-135m-instruct \
        --adapter slm_swap/04_ft/adapter_toolcall --track toolcall --split test --limit 200

`--arch phi4-mini` builds a random-weight model of Phi-4-mini-instruct's architecture on the
GPU (speed does not depend on weight values) and trains it on the real rows of the split,
tokenized by `--tokenizer` (token ids above that tokenizer's vocabulary never occur; the row
lengths and the prompt/completion split are the real ones). `--arch PATH` uses a checkpoint.
Throughput counts every token of the padding-free micro-batches (there is no padding);
`steady` leaves out the first `--warmup-steps` steps (kernel compilation, autotuning).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slm_swap.bench.finetune import quality, throughput
from slm_swap.cli import REPO
from slm_swap.layout import Layout
from slm_swap.options import MAX_NEW_TOKENS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("throughput", help="tokens/s and peak memory of one backend")
    speed.add_argument("--backend", choices=("unsloth", "hf"), required=True)
    speed.add_argument("--arch", default="phi4-mini", help="phi4-mini (random weights) or a checkpoint folder")
    speed.add_argument("--tokenizer", type=Path, required=True, help="tokenizer folder that sets the row lengths")
    speed.add_argument("--steps", type=int, default=40, help="optimizer steps to time")
    speed.add_argument("--warmup-steps", type=int, default=5, help="steps left out of the steady rate")
    speed.add_argument("--batch-size", type=int, default=8)
    speed.add_argument("--max-batch-tokens", type=int, default=8192)
    speed.add_argument("--work-dir", type=Path, default=Path("/tmp/slm_swap_bench"))
    for p in (speed, sub.add_parser("quality", help="pass rates of the base model and base + adapter")):
        p.add_argument("--track", default="toolcall")
        p.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir)
        p.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    good = sub.choices["quality"]
    good.add_argument("--model", type=Path, required=True)
    good.add_argument("--adapter", type=Path, required=True)
    good.add_argument("--split", default="test")
    good.add_argument("--limit", type=int, default=None)
    good.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS.default, help=MAX_NEW_TOKENS.help)
    return parser


def main(args: argparse.Namespace) -> int:
    result = throughput(args) if args.command == "throughput" else quality(args)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
