"""The latency the router's validator adds per request, over every row of the committed test splits.

    python tools/bench_validation.py                 # prints a JSON summary: median, p99 and max microseconds
    python tools/bench_validation.py --repeats 50 --out validation_bench.json

The command lives in slm_swap/cli/bench_validation.py (also `python -m slm_swap.cli.bench_validation`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.bench_validation import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
