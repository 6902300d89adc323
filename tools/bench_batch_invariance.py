"""Benchmark the static engine's default and batch-invariant modes: rows/s batched and alone, and text flips.

    # CPU, embedded checkpoint (fetch it first: python tools/fetch_model.py smollm2-135m-instruct)
    python tools/bench_batch_invariance.py --device cpu --rows 8 --new-tokens 16
    # GPU, random-weight Phi-4-mini (tokenizer from tools/phi4_tokenizer.py), a fixed 60 new tokens per row
    python tools/bench_batch_invariance.py --device cuda --random-phi4 --tokenizer DIR --rows 200 --new-tokens 60 \\
        --fixed-length --alone-rows 32

The command lives in slm_swap/cli/bench_batch_invariance.py (also `python -m slm_swap.cli.bench_batch_invariance`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.bench_batch_invariance import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
