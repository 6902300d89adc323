"""Write the train/val/test splits of both row tracks, and their manifest, under slm_swap/02_dataset; with the
bfcl source also the agent track's splits of BFCL's multi-turn tasks by scenario, with their own manifest,
under slm_swap/02_dataset/agent.

    python tools/prepare_data.py                                  # bfcl, from the installed bfcl-eval package
    python tools/prepare_data.py --source xlam --xlam-path xlam_function_calling_60k.json
    HF_TOKEN=hf_... python tools/prepare_data.py --source xlam     # download the gated file from the hub

The command lives in slm_swap/cli/prepare_data.py (also `python -m slm_swap.cli.prepare_data`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.prepare_data import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
