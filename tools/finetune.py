"""QLoRA fine-tuning of the SLM on one track, when the decision step marked it.

    SLM_MODEL_PATH=slm_swap/models/phi-4-mini python tools/finetune.py --track toolcall
    python tools/finetune.py --track structured --model slm_swap/models/smollm2-135m-instruct --force --limit-rows 50
    accelerate launch --config_file accelerate_config/phi4_4gpu.yaml tools/finetune.py --track toolcall

The command lives in slm_swap/cli/finetune.py (also `python -m slm_swap.cli.finetune`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.finetune import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
