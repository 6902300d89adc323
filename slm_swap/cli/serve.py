"""Serve the SLM of one track on 127.0.0.1 as an OpenAI-compatible endpoint, through `transformers serve`.

    python tools/serve.py --track structured                        # serves until Ctrl-C
    python tools/serve.py --track toolcall --port 8011 --base-model slm_swap/models/smollm2-135m-instruct
    python tools/serve.py --track structured --parity-rows 5        # serve, compare with evaluation, stop
    python tools/serve.py --track toolcall --routed --port 8000      # SLM first, the hosted deployment on rejection

The base is --base-model, else SLM_MODEL_PATH, else evaluation's default. When the track
has an adapter (slm_swap/04_ft/adapter_<track>/) the server loads the merged checkpoint
that `python tools/export_model.py --track <track>` writes; else it loads the base. The
weights are unquantised (float32 on CPU, bfloat16 on CUDA, as `--model=slm
--quantization none` runs them); callers send temperature 0 and max_tokens (evaluation's
cap, printed below) with every request, as the Mastra client in slm_swap/mastra does.
The vLLM command that serves the same adapter on GPUs is printed too (vLLM is not installed).

--routed puts the routed endpoint on --port (slm_swap/serving/routed.py): each request goes to the served SLM (on a
free port) first, its reply is validated against the request's tools (slm_swap/validation/), and a rejected one is
asked again of the hosted deployment (AZURE_ENDPOINT, AZURE_API_KEY, AZURE_API_VERSION, AZURE_MODEL); one Langfuse
trace per request with the route and the validator's reason (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST).

--parity-rows N asks the server and `LocalSLM` (quantization none, batch-invariant) the first N rows of the
split, writes slm_swap/05_eval/serve_parity_<track>.json and exits 0 only when every text
matches. Needs the `serve` extra: pip install -e '.[serve]'.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from slm_swap.cli import REPO
from slm_swap.data.rows import load_rows
from slm_swap.harness.factory import slm_model_path
from slm_swap.layout import Layout, serve_parity_path, split_path
from slm_swap.options import MAX_NEW_TOKENS
from slm_swap.serving.launch import ServingError, plan_serving, resolve_device, shell_line, vllm_command
from slm_swap.serving.process import ServeError, start_transformers_serve
from slm_swap.serving.session import print_plan, routed_sides, run_parity, serve_routed
from slm_swap.tracks.rows.definitions import TRACK_NAMES

DEFAULT_PORT = 8000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--track", required=True, choices=TRACK_NAMES, help="which track's SLM to serve")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default 8000, or a free one with --parity-rows; 0 picks a free one)")
    parser.add_argument("--base-model", type=Path, help="base checkpoint folder (default: SLM_MODEL_PATH, else evaluation's default)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    parser.add_argument(
        "--max-tokens", type=int, default=MAX_NEW_TOKENS.default, help="output cap requests must send (default: evaluation's)"
    )
    parser.add_argument("--ft-dir", type=Path, default=Layout(REPO).ft_dir, help="where adapters live")
    parser.add_argument("--models-dir", type=Path, default=Layout(REPO).models_dir, help="where merged checkpoints live")
    parser.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for the server to load the model")
    parser.add_argument("--parity-rows", type=int, default=0, help="compare N rows with LocalSLM (quantization none), then stop")
    parser.add_argument("--split", default="test", help="split the parity rows come from (default test)")
    parser.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir, help="root of the prepared splits")
    parser.add_argument("--routed", action="store_true", help="serve the routed endpoint on --port: SLM first, hosted on rejection")
    parser.add_argument("--parity-out", type=Path, help="parity report path (default slm_swap/05_eval/serve_parity_<track>.json)")
    return parser


def main(args: argparse.Namespace) -> int:
    base = args.base_model or Path(slm_model_path(os.environ))
    sides = None
    if args.routed:
        from slm_swap.backends.hosted import HostedSettingsError
        from slm_swap.tracing.client import TracingError

        try:
            sides = routed_sides(os.environ, args.max_tokens)
        except (HostedSettingsError, TracingError) as exc:
            print(f"error: --routed: {exc}", file=sys.stderr)
            return 2
    # None asks for a free port: a parity check must not collide with a server already running.
    if args.port is not None:
        port = args.port or None
    else:
        port = None if args.parity_rows > 0 else DEFAULT_PORT
    # SIGTERM unwinds like Ctrl-C, so the server is stopped with us instead of left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        plan = plan_serving(args.track, base, args.ft_dir, args.models_dir, resolve_device(args.device), args.max_tokens)
        vllm = shell_line(vllm_command(args.track, base, args.ft_dir, port or DEFAULT_PORT))
        server = start_transformers_serve(
            plan.checkpoint,
            None if sides else port,
            environ=os.environ,
            device=plan.device,
            dtype=plan.dtype,
            ready_timeout_s=args.ready_timeout,
        )
    except (ServingError, ServeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with server:
        print_plan(plan, server, vllm)
        if args.parity_rows > 0:
            rows = load_rows(split_path(args.dataset_dir, plan.track, args.split), plan.track)[: args.parity_rows]
            out = args.parity_out or serve_parity_path(Layout(REPO).eval_dir, plan.track)
            return run_parity(plan, server, rows, args.ready_timeout, out)
        if sides is not None:
            return serve_routed(plan, server, sides, port, args.ready_timeout)
        try:
            return server.process.wait()
        except KeyboardInterrupt:
            return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
