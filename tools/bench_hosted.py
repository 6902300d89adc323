"""Benchmark hosted evaluation: one process with --max-connections against serial and against pytest-xdist.

    .venv/bin/python tools/bench_hosted.py --rows 200 --hold 0.5 --connections 16 --workers 16 --out bench_hosted.json
    .venv/bin/python tools/bench_hosted.py --only-connections   # start-up and wind-down of the one-process runs only

The command lives in slm_swap/cli/bench_hosted.py (also `python -m slm_swap.cli.bench_hosted`).
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a clone without installing
sys.path.insert(0, str(REPO / "tests"))  # the project's own test fixtures: the fault server and make_project

from slm_swap.cli.bench_hosted import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
