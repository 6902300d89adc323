"""Write slm_swap/05_eval/report.md and report.png from the metric files, predictions and decision.

    python tools/report.py
    python tools/report.py --eval-dir slm_swap/05_eval --ft-dir slm_swap/04_ft --step-times steps.json
    python tools/report.py --agent-only --agent-decision codeact slm_swap/05_eval/decision_agent_codeact.json \
        --out slm_swap/05_eval/report_phase2.md          # the Phase II loop's report: the agent track per arm

The command lives in slm_swap/cli/report.py (also `python -m slm_swap.cli.report`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.report import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
