"""Benchmark SLM generation: batched against one row at a time, on the committed test split's prompts.

    # CPU, embedded checkpoint (fetch it first: python tools/fetch_model.py smollm2-135m-instruct)
    python tools/bench_generate.py --device cpu --limit 48 --single-rows 16 --out bench_cpu.json

    # CUDA, random-weight model of Phi-4-mini's architecture in NF4, built on the GPU
    python tools/bench_generate.py --device cuda --random-phi4 --tokenizer slm_swap/models/smollm2-135m-instruct --single-rows 8

The command lives in slm_swap/cli/bench_generate.py (also `python -m slm_swap.cli.bench_generate`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.bench_generate import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
