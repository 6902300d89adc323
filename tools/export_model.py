"""Merge a track's fine-tuned adapter into its unquantised base, for serving with `transformers serve`.

    python tools/export_model.py --track structured
    python tools/export_model.py --track toolcall --base-model slm_swap/models/smollm2-135m-instruct --force

The command lives in slm_swap/cli/export_model.py (also `python -m slm_swap.cli.export_model`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.export_model import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
