"""Merge a track's fine-tuned adapter into its unquantised base, for serving with `transformers serve`.

    python tools/export_model.py --track structured
    python tools/export_model.py --track toolcall --base-model slm_swap/models/smollm2-135m-instruct --force

Reads slm_swap/04_ft/adapter_<track>/ (or --adapter) and the base (--base-model, else
SLM_MODEL_PATH, else evaluation's default), and writes
slm_swap/models/<base folder>-<track>-merged/: 16-bit weights, the base's tokenizer and
chat template, and slm_swap_manifest.json naming the base and the adapter's file hashes.
An up-to-date merge is kept; a merge of an older adapter is replaced only with --force.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from slm_swap.cli import REPO
from slm_swap.harness.factory import slm_model_path
from slm_swap.layout import Layout, adapter_dir, merged_model_dir
from slm_swap.serving.export import ExportError, export_merged
from slm_swap.tracks.rows.definitions import TRACK_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--track", required=True, choices=TRACK_NAMES, help="whose adapter to merge")
    parser.add_argument("--base-model", type=Path, help="base checkpoint folder (default: SLM_MODEL_PATH, else evaluation's default)")
    parser.add_argument("--adapter", type=Path, help="adapter folder (default slm_swap/04_ft/adapter_<track>)")
    parser.add_argument("--ft-dir", type=Path, default=Layout(REPO).ft_dir, help="where adapters live")
    parser.add_argument("--models-dir", type=Path, default=Layout(REPO).models_dir, help="where the merged folder goes")
    parser.add_argument("--out", type=Path, help="merged folder (default <models-dir>/<base folder>-<track>-merged)")
    parser.add_argument("--force", action="store_true", help="merge again even over an existing merge")
    return parser


def main(args: argparse.Namespace) -> int:
    base = args.base_model or Path(slm_model_path(os.environ))
    adapter = args.adapter or adapter_dir(args.ft_dir, args.track)
    out = args.out or merged_model_dir(args.models_dir, base, args.track)
    try:
        result = export_merged(base, adapter, args.track, out, force=args.force)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    verb = "already up to date" if result.reused else "wrote"
    print(f"{verb}: {result.path} ({result.manifest['dtype']}, base {base}, adapter {adapter})")
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
