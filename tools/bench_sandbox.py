"""Measure the agent sandbox's cost per episode: gold over the agent track's test split, and the worker's start time.

    python tools/bench_sandbox.py --arm codeact                 # 200 test tasks, 16 episodes at once, 20 starts
    python tools/bench_sandbox.py --arm toolcall --starts 0     # gold only


    git worktree add /tmp/old-3667c78 3667c78
    cp slm_swap/bench/sandbox_cost.py /tmp/old-3667c78/slm_swap/bench/ && cp tools/bench_sandbox.py /tmp/old-3667c78/tools/
    cd /tmp/old-3667c78 && PYTHONPATH=/tmp/old-3667c78 /work/main/.venv/bin/python tools/bench_sandbox.py --arm codeact

The command lives in slm_swap/cli/bench_sandbox.py (also `python -m slm_swap.cli.bench_sandbox`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.bench_sandbox import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
