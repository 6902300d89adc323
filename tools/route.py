"""Partial swaps, offline: per track, what share of traffic the SLM can serve behind the validator, with the hosted
model answering what the validator rejects, from the hosted and SLM runs already on disk.

    python tools/route.py                                   # both row tracks, delta 0.02
    python tools/route.py --tracks toolcall --delta 0.05
    python tools/route.py --toolcall-hosted H.json --toolcall-slm S.json --output /tmp/routes

The command lives in slm_swap/cli/route.py (also `python -m slm_swap.cli.route`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.route import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
