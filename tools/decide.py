"""Decide per track whether to fine-tune the SLM, from the hosted and SLM metric and predictions files.

    python tools/decide.py                      # both tracks, delta 0.02, the seed's point rule
    python tools/decide.py --tracks toolcall --delta 0.05
    python tools/decide.py --rule interval      # fine-tune only when the SLM is shown to trail
    eval "$(python tools/decide.py --quiet)"    # sets FINE_TUNE_STRUCTURED / FINE_TUNE_TOOLCALL
    python tools/decide.py --tracks agent --arm toolcall   # the agent track: agent_azure_toolcall.json vs agent_slm_toolcall.json

The command lives in slm_swap/cli/decide.py (also `python -m slm_swap.cli.decide`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.decide import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
