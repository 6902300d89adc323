"""Rebuild the Phi-4-mini-instruct tokenizer offline as a Hugging Face tokenizer folder.

    # the ranks: js-tiktoken's o200k_base table, out of its npm tarball
    npm pack js-tiktoken@1.0.21 && tar xzf js-tiktoken-1.0.21.tgz package/dist/ranks/o200k_base.js
    python tools/phi4_tokenizer.py --ranks package/dist/ranks/o200k_base.js --out DIR

The command lives in slm_swap/cli/phi4_tokenizer.py (also `python -m slm_swap.cli.phi4_tokenizer`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from slm_swap.cli.phi4_tokenizer import build_parser, main

if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
