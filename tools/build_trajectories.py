"""Build the agent track's training records from trajectories: verified, shortest per task, no test scenario.

    python tools/build_trajectories.py --arm codeact --inputs slm_swap/05_eval/agent_azure_codeact.trajectories.jsonl
    python tools/build_trajectories.py --arm toolcall --gold       # offline: gold demonstrations as the teacher
    python tools/build_trajectories.py --arm toolcall --gold --limit-tasks 8

The command lives in slm_swap/cli/build_trajectories.py (also `python -m slm_swap.cli.build_trajectories`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.build_trajectories import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
