"""Start the project's local Langfuse-compatible receiver in the background and point this shell at it:

    eval "$(python tools/local_langfuse.py)"     # sets LANGFUSE_* (and SLM_SWAP_RECEIVER_PID) in this shell
    kill "$SLM_SWAP_RECEIVER_PID"                 # stop it

For the commands run by hand after the offline demo (README, "After the demo"): they need a Langfuse, as every
real run does, and the demo's own receiver stopped with the demo. What it receives is written to
slm_swap/05_eval/langfuse-local/ (`--dump-dir`). Real runs need a Langfuse project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slm_swap.cli import REPO
from slm_swap.layout import Layout
from slm_swap.tracing.receiver.background import PID_VARIABLE, ReceiverStartError, shell_exports, start_background


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    parser.add_argument(
        "--dump-dir", type=Path, default=Layout(REPO).eval_dir / "langfuse-local", help="folder for the JSON files of what arrived"
    )
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        receiver = start_background(args.dump_dir, port=args.port)
    except ReceiverStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(shell_exports(receiver)))
    print(
        f"local Langfuse-compatible receiver at {receiver.url} (pid {receiver.pid}; stop it with `kill ${PID_VARIABLE}`); "
        f"what it receives goes to {receiver.dump_dir}/",
        file=sys.stderr,
    )
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
