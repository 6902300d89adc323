"""One training run from request to published adapter: checks, tokens, model, TRL's trainer, files, trace.

Under `accelerate launch` every process runs this; each checks the same inputs and
trains its share of the micro-batches, and only the main process writes the adapter
folder and records the Langfuse trace.
"""

from __future__ import annotations

import importlib.util
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slm_swap.backends.checkpoints import checkpoint_identity, record_adapter_base, require_checkpoint
from slm_swap.data.rows import DatasetError
from slm_swap.files import write_json_atomic
from slm_swap.finetune.config import CONVERSATION_TRACKS, MANIFEST_NAME, BackendChoice, FinetuneRequest, choose_backend, describe_recipe
from slm_swap.finetune.conversations import prepare_conversations
from slm_swap.finetune.data import PreparedSplit, end_of_turn_id, prepare_split, stop_token_ids
from slm_swap.finetune.guard import FinetuneRefused, check_decision, check_output_free, discard, make_staging, publish
from slm_swap.finetune.hf import LoadedModel, load_hf_model, lora_target_modules
from slm_swap.finetune.manifest import RunContext, adapter_files, build_manifest, device_name
from slm_swap.finetune.resume import clear_checkpoints, fingerprint, last_checkpoint, prepare_checkpoints
from slm_swap.finetune.trainer import TrainResult
from slm_swap.finetune.trainer import train as train_with_trl
from slm_swap.finetune.unsloth_backend import import_unsloth, load_unsloth_model, unsloth_installed
from slm_swap.tracing.client import LangfuseSettings, TraceRef, TracingError, check_connection
from slm_swap.tracing.runs import TrainingRunTrace, record_training_run


class TraceFailedAfterTraining(RuntimeError):
    """The adapter was written, but Langfuse did not take the run's trace."""


@dataclass(frozen=True)
class FinetuneOutcome:
    adapter_dir: Path
    manifest: dict[str, Any]
    trace: TraceRef | None


def agree(accelerator: Any, check: Callable[[], None]) -> None:
    """Run `check` on the main process and raise its error on every process, so none waits alone at a collective."""
    problem: BaseException | None = None
    if accelerator.is_main_process:
        try:
            check()
        except Exception as exc:
            problem = exc
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [repr(problem) if problem else None]
        broadcast_object_list(box)
        if box[0] and problem is None:
            raise FinetuneRefused(f"the main process stopped the run: {box[0]}")
    if problem is not None:
        raise problem


def load_tokens(request: FinetuneRequest) -> tuple[Any, int, PreparedSplit, PreparedSplit]:
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer = AutoTokenizer.from_pretrained(request.model_path)
    if not tokenizer.chat_template:
        raise FinetuneRefused(f"{request.model_path}: the tokenizer has no chat template; the SLM is prompted through one")
    try:
        generation_eos = GenerationConfig.from_pretrained(request.model_path).eos_token_id
    except OSError:  # no generation_config.json: the tokenizer's eos alone ends replies
        generation_eos = None
    eot = end_of_turn_id(tokenizer, stop_token_ids(tokenizer, generation_eos))
    limit, seq_limit = request.knobs.limit_rows, request.knobs.seq_limit
    if request.track in CONVERSATION_TRACKS:
        train = prepare_conversations(request.train_path, tokenizer, seq_limit, limit)
        val = prepare_conversations(request.val_path, tokenizer, seq_limit, limit)
    else:
        train = prepare_split(request.train_path, request.track, tokenizer, eot, seq_limit, limit)
        val = prepare_split(request.val_path, request.track, tokenizer, eot, seq_limit, limit)
    return tokenizer, eot, train, val


def load_model(choice: BackendChoice, request: FinetuneRequest, device: torch.device) -> LoadedModel:
    targets = lora_target_modules(request.model_path)
    knobs = request.knobs
    checkpointing = knobs.gradient_checkpointing if knobs.gradient_checkpointing is not None else device.type == "cuda"
    if choice.name == "unsloth":
        return load_unsloth_model(request.model_path, device, targets, checkpointing, knobs.seed, knobs.seq_limit)
    return load_hf_model(request.model_path, device, targets, checkpointing, knobs.seed)


def report_over_length(split: PreparedSplit, say: Callable[[str], None]) -> None:
    if split.over_length:
        shown = ", ".join(f"{rid} ({n})" for rid, n in split.over_length[:5])
        more = f" and {len(split.over_length) - 5} more" if len(split.over_length) > 5 else ""
        say(
            f"{split.path}: dropped {len(split.over_length)} of {split.n_read} rows"
            f" longer than {split.max_seq_length} tokens: {shown}{more}"
        )


def require_inputs(request: FinetuneRequest) -> None:
    """The training splits, then the base checkpoint: a missing dataset is named as such, not as the model it would
    have trained (issue 30)."""
    for path in (request.train_path, request.val_path):
        if not path.is_file():
            how = (
                f"build it with `python tools/build_trajectories.py --arm {request.track.removeprefix('agent_')}`"
                if request.track in CONVERSATION_TRACKS
                else "prepare it with `python tools/prepare_data.py`"
            )
            raise DatasetError(f"{path}: dataset file not found; {how}, or pass --dataset-dir")
    require_checkpoint(request.model_path)


def run_finetune(request: FinetuneRequest, tracing: LangfuseSettings | None, say: Callable[[str], None] = print) -> FinetuneOutcome:
    from accelerate import PartialState

    started_at = time.time()
    request.knobs.check()
    missing = [name for name in ("trl", "datasets") if importlib.util.find_spec(name) is None]
    if missing:
        raise FinetuneRefused(f"fine-tuning needs {' and '.join(missing)}: pip install -e '.[train]'")
    gate = check_decision(request.decision_path, request.track, request.force)
    check_output_free(request.adapter_dir, request.overwrite)
    require_inputs(request)
    cuda = torch.cuda.is_available()
    accelerator = PartialState(cpu=not cuda)  # the processes; the trainer makes its own Accelerator over them
    main = accelerator.is_main_process
    say = say if main else (lambda _message: None)
    choice = choose_backend(request.backend, cuda=cuda, world_size=accelerator.num_processes, unsloth_installed=unsloth_installed())
    if choice.name == "unsloth":
        import_unsloth()  # before transformers is imported, so that Unsloth can patch it
    say(f"backend: {choice.name} ({choice.reason}); {accelerator.num_processes} process(es) on {device_name(accelerator.device)}")
    if tracing is not None:
        agree(accelerator, lambda: check_connection(tracing))
    tokenizer, eot, train, val = load_tokens(request)
    for split in (train, val):
        report_over_length(split, say)
    say(f"train: {len(train.rows)} rows, {train.n_tokens} tokens ({train.n_loss_tokens} with loss); val: {len(val.rows)} rows")
    base_identity = checkpoint_identity(request.model_path)
    run = fingerprint(request, base_identity, train.sha256, val.sha256, accelerator.num_processes, choice.name)
    agree(accelerator, lambda: prepare_checkpoints(request, run))  # the main process clears or checks the folder
    accelerator.wait_for_everyone()
    resume_from = last_checkpoint(request.checkpoints_dir) if request.resume else None
    if resume_from is not None:
        say(f"resuming from {resume_from}")
    loaded = load_model(choice, request, accelerator.device)
    result = train_with_trl(loaded.model, tokenizer, train, val, request.knobs, loaded.forward_keys, request.checkpoints_dir, resume_from)
    say(
        f"trained {len(result.steps)} steps in {result.train_time_s:.1f} s, {result.tokens_per_s:,.0f} tokens/s;"
        f" val loss {result.val_loss:.4f}"
    )
    manifest: dict[str, Any] = {}
    if main:
        context = RunContext(
            started_at=started_at,
            ended_at=time.time(),
            world_size=accelerator.num_processes,
            device=device_name(accelerator.device),
            base_model=base_identity,
            end_of_turn_token=tokenizer.convert_ids_to_tokens(eot),
            gate=gate,
        )
        manifest = build_manifest(request, choice, loaded.details, train, val, result, context)
        save_adapter(request, loaded.model, tokenizer, manifest)
        clear_checkpoints(request)
        say(f"adapter written to {request.adapter_dir}")
    accelerator.wait_for_everyone()
    trace = None
    if main and tracing is not None:
        trace = trace_run(tracing, request, choice, manifest, result, started_at)
        say(f"Langfuse trace: {trace.url}")
    return FinetuneOutcome(request.adapter_dir, manifest, trace)


def save_adapter(request: FinetuneRequest, model: Any, tokenizer: Any, manifest: dict[str, Any]) -> None:
    """Publish the adapter folder (weights, tokenizer, base record, manifest) whole, through a staging folder."""
    staging = make_staging(request.adapter_dir)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        record_adapter_base(staging, request.model_path)
        manifest["files"] = adapter_files(staging)
        write_json_atomic(staging / MANIFEST_NAME, manifest)
        publish(staging, request.adapter_dir, request.overwrite)
    finally:
        discard(staging)  # nothing left after a successful publish


def trace_run(
    tracing: LangfuseSettings,
    request: FinetuneRequest,
    choice: BackendChoice,
    manifest: dict[str, Any],
    result: TrainResult,
    started_at: float,
) -> TraceRef:
    """Record the run in Langfuse and note its trace in the published manifest."""
    # OpenTelemetry draws trace ids from the global `random`, which Unsloth seeds with the run's
    # seed: without fresh entropy every run with the same seed would write into one trace.
    random.seed()
    try:
        trace = record_training_run(tracing, training_trace(request, choice, manifest, result, started_at))
    except TracingError as exc:
        raise TraceFailedAfterTraining(f"the adapter in {request.adapter_dir} was written, but its Langfuse trace failed: {exc}") from exc
    manifest["trace"] = {"id": trace.trace_id, "url": trace.url}
    write_json_atomic(request.adapter_dir / MANIFEST_NAME, manifest)
    return trace


def training_trace(
    request: FinetuneRequest, choice: BackendChoice, manifest: dict[str, Any], result: TrainResult, started_at: float
) -> TrainingRunTrace:
    training = manifest["training"]
    return TrainingRunTrace(
        track=request.track,
        base_model=manifest["base_model"]["identity"],
        backend=choice.name,
        settings=describe_recipe(request.knobs) | {"backend_reason": choice.reason, "gate": manifest["gate"]},
        train_path=str(request.train_path),
        val_path=str(request.val_path),
        dataset_sha256={"train": manifest["datasets"]["train"]["sha256"], "val": manifest["datasets"]["val"]["sha256"]},
        adapter_path=str(request.adapter_dir),
        started_at=started_at,
        ended_at=manifest["run"]["ended_at"],
        loss_curve=[{"step": s.step, "train_loss": s.train_loss, "learning_rate": s.learning_rate} for s in result.steps],
        final_losses={"train_loss": training["final_train_loss"], "val_loss": manifest["validation"]["loss"]},
        details={
            "manifest_path": str(request.adapter_dir / MANIFEST_NAME),
            "tokens_per_s": training["tokens_per_s"],
            "train_time_s": training["train_time_s"],
            "wall_time_s": manifest["run"]["wall_time_s"],
            "peak_gpu_memory_bytes": training["peak_gpu_memory_bytes"],
            "rows": {"train": manifest["datasets"]["train"]["rows_used"], "val": manifest["datasets"]["val"]["rows_used"]},
            "rows_over_length": {
                "train": manifest["datasets"]["train"]["rows_over_length"],
                "val": manifest["datasets"]["val"]["rows_over_length"],
            },
            "world_size": manifest["run"]["world_size"],
            "validation_loss_curve": manifest["validation"]["curve"],
            "optimizer_steps": training["optimizer_steps"],
            "resumed_from_step": training["resumed_from_step"],
            "trainer": manifest["trainer"],
        },
    )
