"""Run the gold policy over BFCL's multi-turn tasks through the episode runner, the sandbox and BFCL's checker.

    python tools/agent_gold.py                                  # all 800 tasks, both arms
    python tools/agent_gold.py --arms toolcall --every 10       # tasks 0, 10, 20, ... of each category
    python tools/agent_gold.py --categories multi_turn_base --max-active 32

The command lives in slm_swap/cli/agent_gold.py (also `python -m slm_swap.cli.agent_gold`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.agent_gold import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
