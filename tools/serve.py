"""Serve the SLM of one track on 127.0.0.1 as an OpenAI-compatible endpoint, through `transformers serve`.

    python tools/serve.py --track structured                        # serves until Ctrl-C
    python tools/serve.py --track toolcall --port 8011 --base-model slm_swap/models/smollm2-135m-instruct
    python tools/serve.py --track structured --parity-rows 5        # serve, compare with evaluation, stop
    python tools/serve.py --track toolcall --routed --port 8000      # SLM first, the hosted deployment on rejection

The command lives in slm_swap/cli/serve.py (also `python -m slm_swap.cli.serve`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.serve import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
