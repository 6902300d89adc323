"""Fine-tuning benchmarks: QLoRA throughput per backend, and task quality before and after an adapter.

    # throughput of one backend (one process per backend: Unsloth patches transformers for the whole process)
    python tools/bench_finetune.py throughput --backend unsloth --arch phi4-mini \
        --tokenizer slm_swap/models/smollm2-135m-instruct --track toolcall --steps 40 --out bench_unsloth.json
    python tools/bench_finetune.py throughput --backend hf --arch phi4-mini ... --steps 12
    # task quality of the base model and of base + adapter on the same rows (greedy, slm_swap.backends.local_slm)
    python tools/bench_finetune.py quality --model slm_swap/models/smollm2-135m-instruct \
        --adapter slm_swap/04_ft/adapter_toolcall --track toolcall --split test --limit 200

The command lives in slm_swap/cli/bench_finetune.py (also `python -m slm_swap.cli.bench_finetune`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.bench_finetune import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
