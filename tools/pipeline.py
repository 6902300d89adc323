"""Run the whole pipeline: prepare -> evaluate hosted -> evaluate SLM -> decide -> fine-tune -> re-evaluate -> report.
After the decision, and again after re-evaluation, tools/route.py writes route_<track>.json (partial swaps).

    python tools/pipeline.py --demo                 # offline, embedded models, CPU: under 30 minutes
    python tools/pipeline.py --demo --force-finetune
    python tools/pipeline.py --limit 200 --max-connections 16   # real run: AZURE_*, LANGFUSE_*, SLM_MODEL_PATH set
    python tools/pipeline.py -n 4 --max-connections 4           # pytest-xdist too, when each row also costs CPU


    python tools/pipeline.py --phase2 --demo        # offline: gold demonstrations as the teacher, SmolLM2 on CPU
    python tools/pipeline.py --phase2 --limit 50 --train-limit 100 --arms toolcall   # real run: the hosted teacher
    python tools/pipeline.py --phase2 --teacher gold     # the SLM before/after fine-tuning on gold demonstrations

The command lives in slm_swap/cli/pipeline.py (also `python -m slm_swap.cli.pipeline`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.pipeline import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
