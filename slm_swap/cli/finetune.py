"""QLoRA fine-tuning of the SLM on one track, when the decision step marked it.

    SLM_MODEL_PATH=slm_swap/models/phi-4-mini python tools/finetune.py --track toolcall
    python tools/finetune.py --track structured --model slm_swap/models/smollm2-135m-instruct --force --limit-rows 50
    accelerate launch --config_file accelerate_config/phi4_4gpu.yaml tools/finetune.py --track toolcall

Reads slm_swap/02_dataset/<track>/{train,val}.jsonl and writes the adapter, its tokenizer
and training_manifest.json to slm_swap/04_ft/adapter_<track>/. Fixed recipe: 4-bit NF4
base, LoRA r=64 alpha=16 dropout=0.1, lr 2e-4, one epoch, rows up to 2048 tokens
(longer rows are dropped and reported), loss on completion tokens only.
Backend: Unsloth on a CUDA GPU when installed, else (and with several processes, or
--backend hf) transformers + bitsandbytes + PEFT. One Langfuse trace per run
(LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST), required.
Exit status: 0 trained, 2 refused or bad input, 1 the adapter was written but the trace failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path

from slm_swap.backends.checkpoints import CheckpointError
from slm_swap.cli import REPO
from slm_swap.data.rows import DatasetError
from slm_swap.finetune.config import BACKENDS, DEFAULT_MODEL_PATH, TRAINING_TRACKS, FinetuneRequest, Knobs
from slm_swap.finetune.guard import FinetuneRefused
from slm_swap.finetune.hf import ModelLoadError
from slm_swap.finetune.run import TraceFailedAfterTraining, run_finetune
from slm_swap.layout import Layout, decision_path
from slm_swap.noise import silence_third_party_noise
from slm_swap.tracing.client import TracingError, settings_from_env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--track",
        required=True,
        choices=TRAINING_TRACKS,
        help="which track's splits to train on; agent_<arm>: the trajectories tools/build_trajectories.py wrote",
    )
    parser.add_argument(
        "--model", type=Path, default=None, help=f"base checkpoint folder (default: $SLM_MODEL_PATH, else {DEFAULT_MODEL_PATH})"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: Unsloth on one CUDA GPU when installed, else hf")
    parser.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir, help="root of the prepared splits")
    parser.add_argument("--out-dir", type=Path, default=Layout(REPO).ft_dir, help="where adapter_<track>/ goes")
    parser.add_argument("--decision", type=Path, default=decision_path(Layout(REPO).eval_dir), help="decision file from tools/decide.py")
    parser.add_argument("--force", action="store_true", help="train even if the decision does not mark this track")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing adapter folder once the new one is complete")
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run from its last --save-steps checkpoint (same data and settings)"
    )
    for knob in dataclasses.fields(Knobs):
        flag = "--" + knob.name.replace("_", "-")
        if "bool" in str(knob.type):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=knob.default, help=knob.metadata["help"])
        else:
            kind = float if "float" in str(knob.type) else int
            parser.add_argument(flag, type=kind, default=knob.default, help=f"{knob.metadata['help']} (default {knob.default})")
    return parser


# NVLink multicast can put a shared host's GPUs out of service; every process keeps it off,
# also under `accelerate launch`, which starts this script once per GPU before NCCL is set up.
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def main(args: argparse.Namespace) -> int:
    silence_third_party_noise()
    for name, value in MULTICAST_OFF.items():
        os.environ[name] = value
    # The model is always a local folder: never wait on the model hub for it.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model_path = args.model or Path(os.environ.get("SLM_MODEL_PATH") or Layout(REPO).default_slm_path)
    knobs = Knobs(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Knobs)})
    request = FinetuneRequest(
        track=args.track,
        model_path=model_path,
        dataset_dir=args.dataset_dir,
        out_dir=args.out_dir,
        decision_path=args.decision,
        backend=args.backend,
        force=args.force,
        overwrite=args.overwrite,
        resume=args.resume,
        knobs=knobs,
    )
    try:
        tracing = settings_from_env(os.environ)
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's own log lines; stdout holds only the adapter path
            outcome = run_finetune(request, tracing, say=lambda message: print(message, file=sys.stderr))
    except TraceFailedAfterTraining as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (FinetuneRefused, ModelLoadError, DatasetError, CheckpointError, TracingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if outcome.manifest:
        print(outcome.adapter_dir)
    return 0


def run() -> None:  # the console script `slm-swap-<name>`: main's status is the exit status
    sys.exit(main(build_parser().parse_args()))


if __name__ == "__main__":
    run()
