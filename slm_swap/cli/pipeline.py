"""Run the whole pipeline: prepare -> evaluate hosted -> evaluate SLM -> decide -> fine-tune -> re-evaluate -> report.
After the decision, and again after re-evaluation, tools/route.py writes route_<track>.json (partial swaps).

    python tools/pipeline.py --demo                 # offline, embedded models, CPU: under 30 minutes
    python tools/pipeline.py --demo --force-finetune
    python tools/pipeline.py --limit 200 --max-connections 16   # real run: AZURE_*, LANGFUSE_*, SLM_MODEL_PATH set
    python tools/pipeline.py -n 4 --max-connections 4           # pytest-xdist too, when each row also costs CPU

Phase II, the agent track per arm: capture the teacher's trajectories on the training tasks -> verify and build
training records -> evaluate hosted and SLM -> decide -> fine-tune (assistant-only loss) -> re-evaluate -> report.

    python tools/pipeline.py --phase2 --demo        # offline: gold demonstrations as the teacher, SmolLM2 on CPU
    python tools/pipeline.py --phase2 --limit 50 --train-limit 100 --arms toolcall   # real run: the hosted teacher
    python tools/pipeline.py --phase2 --teacher gold     # the SLM before/after fine-tuning on gold demonstrations

Steps whose outputs are the ones they wrote, for the same inputs, are skipped unless --fresh; a step whose
output another run overwrote runs again and says why.
Writes slm_swap/05_eval/report.md and report.png (Phase II: report_phase2.md).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from slm_swap.backends.hosted import HostedSettingsError, hosted_settings_from_env, public_endpoint
from slm_swap.cli import REPO
from slm_swap.layout import Layout, phase2_report_path, report_path
from slm_swap.options import DELTA, MAX_CONNECTIONS, MAX_NEW_TOKENS, MAX_STEPS_PER_TURN
from slm_swap.pipeline import demo as demo_defaults
from slm_swap.pipeline.demo import DEMO_HOSTED, DEMO_MAX_NEW_TOKENS, DEMO_SLM, DEMO_TEST_ROWS, DEMO_TRAIN_ROWS, demo_environment
from slm_swap.pipeline.steps import Pipeline, PipelineConfig, StepFailed, tool_process
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracing.client import TracingError, settings_from_env
from slm_swap.tracks.agent.loop.phase2 import Phase2Config, Phase2Pipeline
from slm_swap.tracks.rows.definitions import TRACK_NAMES

# on a CPU, packed rows attend through a dense mask over the whole micro-batch: keep micro-batches to one row
# (on a CUDA GPU the demo trains with the fine-tuning defaults)
DEMO_CPU_FINETUNE_ARGS = ("--batch-size", "1", "--max-batch-tokens", "2048")
PHASE2_DEMO_CPU_FINETUNE_ARGS = ("--batch-size", "1")  # trajectories run to thousands of tokens: the batch cap follows --max-seq-len
DEMO_MAX_CONNECTIONS = 1  # the demo's hosted stand-in generates on one CPU thread: parallel requests would only queue


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="offline demo on the embedded checkpoints, no credentials needed")
    parser.add_argument("--tracks", nargs="+", choices=TRACK_NAMES, default=list(TRACK_NAMES))
    parser.add_argument("--limit", type=int, default=None, help=f"test rows per track (demo default {DEMO_TEST_ROWS}; else all)")
    parser.add_argument("--train-limit", type=int, default=None, help=f"training rows per track (demo default {DEMO_TRAIN_ROWS}; else all)")
    parser.add_argument("--delta", type=float, default=DELTA.default, help=f"{DELTA.help}: fine-tune beyond it (default {DELTA.default})")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=f"{MAX_NEW_TOKENS.help} (demo default {DEMO_MAX_NEW_TOKENS}; else {MAX_NEW_TOKENS.default})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help=f"{MAX_CONNECTIONS.described()} (default {MAX_CONNECTIONS.default}; demo {DEMO_MAX_CONNECTIONS}: one CPU stand-in)",
    )
    parser.add_argument(
        "-n", "--workers", type=int, default=1, help="pytest-xdist workers of the hosted evaluation (default 1: one process)"
    )
    parser.add_argument("--fresh", action="store_true", help="run every step even if its outputs exist")
    parser.add_argument("--force-finetune", action="store_true", help="fine-tune every track whatever the decision")
    parser.add_argument("--demo-hosted", default=DEMO_HOSTED, help="embedded checkpoint standing in for the hosted model")
    parser.add_argument("--demo-slm", default=DEMO_SLM, help="embedded checkpoint used as the SLM in the demo")
    phase2 = parser.add_argument_group("Phase II (--phase2): --limit counts test tasks, --train-limit tasks of each of train and val")
    phase2.add_argument("--phase2", action="store_true", help="the agent track's loop: teacher trajectories -> fine-tune -> report")
    phase2.add_argument("--arms", nargs="+", choices=AGENT_ARMS, default=list(AGENT_ARMS), help="action formats to run")
    phase2.add_argument(
        "--max-steps-per-turn",
        type=int,
        default=None,
        help=f"default {MAX_STEPS_PER_TURN.default} (demo {demo_defaults.PHASE2_DEMO_MAX_STEPS_PER_TURN})",
    )
    phase2.add_argument(
        "--teacher",
        choices=("azure", "gold"),
        default=None,
        help="who answers the training tasks and stands as the hosted side: the hosted model (default), or the gold "
        "policy (BFCL's ground-truth calls, not a model; the demo's, and the SLM's before/after on gold demonstrations)",
    )
    phase2.add_argument("--samples", type=int, default=0, help="the hosted teacher's extra sampled trajectories per task")
    phase2.add_argument("--max-seq-len", type=int, default=8192, help="longest training trajectory kept, in tokens")
    return parser


def cuda_available() -> bool:
    import torch  # here, not at the top: the other steps' processes need it, this one only for this question

    return torch.cuda.is_available()


def pipeline_config(args: argparse.Namespace, environ: dict[str, str], slm_path: Path, hosted_identity: dict[str, str]) -> PipelineConfig:
    """The steps' settings, the same for Phase I and Phase II; an option left unset takes its one default."""
    cpu_demo_args = PHASE2_DEMO_CPU_FINETUNE_ARGS if args.phase2 else DEMO_CPU_FINETUNE_ARGS
    return PipelineConfig(
        repo=REPO,
        slm_model_path=slm_path,
        hosted_identity=hosted_identity,
        tracks=tuple(args.tracks),
        limit=args.limit,
        train_limit=args.train_limit,
        delta=args.delta,
        max_connections=args.max_connections or MAX_CONNECTIONS.default,
        workers=args.workers,
        max_new_tokens=args.max_new_tokens or MAX_NEW_TOKENS.default,
        finetune_args=cpu_demo_args if args.demo and not args.cuda else (),
        fresh=args.fresh,
        force_finetune=args.force_finetune,
        environ=environ,
    )


def run_phase1(args: argparse.Namespace, environ: dict[str, str], slm_path: Path, hosted_identity: dict[str, str]) -> int:
    try:
        # each step runs `python -m slm_swap.cli.<name>` (or pytest) as a process of its own in `environ`:
        # what one step sets in its environment stays in that step
        Pipeline(pipeline_config(args, environ, slm_path, hosted_identity)).run()
    except StepFailed as exc:
        print(
            f"\nerror: pipeline stopped: {exc}\nEarlier outputs are kept; fix the cause and run again (finished steps are skipped).",
            file=sys.stderr,
        )
        return 1
    print(f"\nreport: {report_path(Layout(REPO).eval_dir)} and report.png")
    return 0


def run_phase2(args: argparse.Namespace, environ: dict[str, str], slm_path: Path, hosted_identity: dict[str, str]) -> int:
    config = Phase2Config(
        pipeline=pipeline_config(args, environ, slm_path, hosted_identity),
        langfuse=settings_from_env(environ),
        arms=tuple(args.arms),
        teacher=args.teacher or ("gold" if args.demo else "azure"),
        task_order="shortest" if args.demo else "first",
        max_steps_per_turn=args.max_steps_per_turn or MAX_STEPS_PER_TURN.default,
        samples=args.samples,
        max_seq_len=args.max_seq_len,
        trace_name="phase2:demo" if args.demo else "phase2",
    )
    try:
        Phase2Pipeline(config).run()
    except (StepFailed, TracingError) as exc:
        print(f"\nerror: Phase II loop stopped: {exc}\nEarlier outputs are kept; run again (finished steps are skipped).", file=sys.stderr)
        return 1
    if args.demo:
        print("\n" + "\n".join(demo_defaults.PHASE2_DEMO_CLAIMS))
    print(f"\nreport: {phase2_report_path(Layout(REPO).eval_dir)}")
    return 0


def main_phase2_demo(args: argparse.Namespace, environ: dict[str, str]) -> int:
    args.cuda = cuda_available()
    args.limit = args.limit or demo_defaults.PHASE2_DEMO_TEST_TASKS
    args.train_limit = args.train_limit or demo_defaults.PHASE2_DEMO_TEACHER_TASKS
    args.max_new_tokens = args.max_new_tokens or demo_defaults.PHASE2_DEMO_MAX_NEW_TOKENS
    args.max_steps_per_turn = args.max_steps_per_turn or demo_defaults.PHASE2_DEMO_MAX_STEPS_PER_TURN
    print(
        f"offline Phase II demo: arms {', '.join(args.arms)}; the {args.train_limit} shortest train and val tasks each for the "
        f"teacher, the {args.limit} shortest test tasks; at most {args.max_steps_per_turn} steps per turn, {args.max_new_tokens} "
        f"new tokens per step. Teacher and 'hosted' side: the gold policy (labelled gold, not a model). SLM: {args.demo_slm} (4-bit).",
        flush=True,
    )
    fetch = tool_process("fetch_model", REPO, environ)
    with demo_environment(REPO, environ, lambda name: fetch([name]), slm_name=args.demo_slm, serve_hosted=False) as demo:
        return run_phase2(args, demo.environ, demo.slm_path, demo.hosted_identity)


def main(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    if args.phase2 and args.teacher == "gold" and args.samples:
        print("error: --samples draws extra trajectories from the hosted teacher; the gold policy has one answer", file=sys.stderr)
        return 2
    if args.phase2 and args.demo and args.teacher == "azure":
        print("error: the offline demo asks no hosted model: its teacher is the gold policy (drop --demo)", file=sys.stderr)
        return 2
    if args.phase2 and args.demo:
        return main_phase2_demo(args, environ)
    if args.demo:
        # on a CUDA GPU the stand-in batches concurrent requests and fine-tuning keeps its defaults
        args.cuda = cuda_available()
        args.limit = args.limit or DEMO_TEST_ROWS
        args.train_limit = args.train_limit or DEMO_TRAIN_ROWS
        args.max_new_tokens = args.max_new_tokens or DEMO_MAX_NEW_TOKENS
        args.max_connections = args.max_connections or DEMO_MAX_CONNECTIONS
        print(
            f"offline demo: {args.limit} test rows and {args.train_limit} training rows per track, "
            f"output cap {args.max_new_tokens} tokens; hosted stand-in {args.demo_hosted} (served by transformers serve), "
            f"SLM {args.demo_slm} (4-bit)."
        )
        print("It shows the pipeline working end to end on tiny models; it is no verdict on any real model.", flush=True)
        fetch = tool_process("fetch_model", REPO, environ)
        serve_args = ("--continuous-batching",) if args.cuda else ()
        with demo_environment(REPO, environ, lambda name: fetch([name]), args.demo_hosted, args.demo_slm, serve_args) as demo:
            return run_phase1(args, demo.environ, demo.slm_path, demo.hosted_identity)
    gold_teacher = args.phase2 and args.teacher == "gold"  # no hosted model is asked anything
    try:
        hosted = None if gold_teacher else hosted_settings_from_env(environ)
        settings_from_env(environ)
    except (HostedSettingsError, TracingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    slm_path = Path(environ.get("SLM_MODEL_PATH", Layout(REPO).default_slm_path))
    args.cuda = False  # the real run keeps the fine-tuning defaults
    identity = {"model": "gold"} if hosted is None else {"endpoint": public_endpoint(hosted.endpoint)}
    return (run_phase2 if args.phase2 else run_phase1)(args, environ, slm_path, identity)


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
