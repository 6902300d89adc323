"""Rebuild the Phi-4-mini-instruct tokenizer offline as a Hugging Face tokenizer folder.

    # the ranks: js-tiktoken's o200k_base table, out of its npm tarball
    npm pack js-tiktoken@1.0.21 && tar xzf js-tiktoken-1.0.21.tgz package/dist/ranks/o200k_base.js
    python tools/phi4_tokenizer.py --ranks package/dist/ranks/o200k_base.js --out DIR

--ranks also takes tiktoken's o200k_base.tiktoken; either file is checked against the SHA-256
tiktoken pins for o200k_base and refused if it differs. Writes DIR/tokenizer.json,
tokenizer_config.json, chat_template.jinja, special_tokens_map.json and generation_config.json;
load them with `transformers.AutoTokenizer.from_pretrained(DIR)`, e.g. as
`tools/bench_generate.py --random-phi4 --tokenizer DIR`. How: slm_swap/bench/phi4_tokenizer.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slm_swap.bench.phi4_tokenizer import RanksError, load_ranks, write_folder


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ranks", type=Path, required=True, help="js-tiktoken ranks/o200k_base.js (or .cjs), or o200k_base.tiktoken")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the Hugging Face tokenizer files")
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        ranks = load_ranks(args.ranks)
        written = write_folder(ranks, args.out)
    except (RanksError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
