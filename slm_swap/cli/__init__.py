"""The commands: one module per command, each with `build_parser()`, `main(args) -> int` and `run()`.

`python -m slm_swap.cli.<name>`, the console script `slm-swap-<name>` and the shim `python tools/<name>.py`
run the same `main`. A command parses its flags and hands plain values to the package that does the work;
the pipeline runs each step as `python -m slm_swap.cli.<step>` in a process of its own.

Below, what `decide` and `route` share: each track's hosted and SLM runs on disk, overridable per track, and the
checks both make before reading them (a positive delta, a Langfuse that takes data).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from slm_swap.tracing.client import LangfuseSettings, TracingError, check_connection, settings_from_env
from slm_swap.tracks.registry import get_track

REPO = Path(__file__).resolve().parents[2]  # the clone: the artefact folders' root when no path is given


def add_run_files(parser: argparse.ArgumentParser, tracks: Sequence[str]) -> None:
    """`--<track>-hosted FILE` and `--<track>-slm FILE`: a run other than the one the file names point to."""
    for track in tracks:
        parser.add_argument(f"--{track}-hosted", type=Path, default=None, help=f"hosted metric file for {track}")
        parser.add_argument(f"--{track}-slm", type=Path, default=None, help=f"SLM metric file for {track}")


def run_files(args: argparse.Namespace, arm: str) -> dict[str, tuple[Path, Path, Path]]:
    """Per track of `args.tracks`: the hosted, SLM and SLM-after-fine-tuning metric files (`Track.decision_runs`),
    the first two as given on the command line when they are."""
    files = {}
    for track in args.tracks:
        hosted, slm, after = get_track(track).decision_runs(args.eval_dir, args.hosted_model, args.after_tag, arm)
        files[track] = (getattr(args, f"{track}_hosted") or hosted, getattr(args, f"{track}_slm") or slm, after)
    return files


def checked_langfuse(delta: float) -> LangfuseSettings | None:
    """The Langfuse to trace to, once delta is positive and Langfuse takes the keys; None after an `error:` line."""
    if delta <= 0:
        print("error: --delta must be > 0", file=sys.stderr)
        return None
    try:
        langfuse = settings_from_env(os.environ)
        check_connection(langfuse)
    except TracingError as exc:
        print(f"error: Langfuse: {exc}", file=sys.stderr)
        return None
    return langfuse


def secrets() -> list[str]:
    """Values a trace must never carry."""
    return [key for key in [os.environ.get("AZURE_API_KEY")] if key]
