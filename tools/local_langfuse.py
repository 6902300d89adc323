"""Start the project's local Langfuse-compatible receiver in the background and point this shell at it:

    eval "$(python tools/local_langfuse.py)"     # sets LANGFUSE_* (and SLM_SWAP_RECEIVER_PID) in this shell
    kill "$SLM_SWAP_RECEIVER_PID"                 # stop it

The command lives in slm_swap/cli/local_langfuse.py (also `python -m slm_swap.cli.local_langfuse`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.local_langfuse import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
