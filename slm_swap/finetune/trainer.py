"""Training through TRL's `SFTTrainer`, with the project's exact mask and padding-free micro-batches.

What the trainer is handed, and why:

- The splits as `datasets.Dataset`s of `input_ids` and `labels` (`data.to_dataset`): -100 over the prompt, the
  completion and its end-of-turn token as they are. TRL sees a processed dataset with labels and leaves them
  alone, so the loss mask is the one `tests/finetune/test_finetune_data.py` checks token by token.
  `SFTConfig.max_length` is None because TRL would cut long rows; the recipe drops them instead
  (`data.prepare_split`, at `RECIPE.max_seq_length`), listed in the manifest.
- The project's collator (`data.PaddingFreeCollator`) and micro-batch plan (`data.TokenBudgetBatches`): rows laid
  end to end with positions restarting per row, at most `batch_size` rows and `max_batch_tokens` tokens a
  micro-batch. TRL's own padding-free collator takes no token budget and refuses a custom collator beside it;
  this one also hands Unsloth `packed_seq_lengths`. On SDPA and CPU, transformers reads the row boundaries from
  the position ids and builds the block-diagonal mask (the packing test shows no row's logits change).
- The optimizer: bitsandbytes' 8-bit AdamW on CUDA (the QLoRA recipe's), torch AdamW on CPU; linear schedule
  with warm-up; the Trainer passes the number of loss tokens of a whole optimizer step to the loss, so a step
  weighs every completion token alike whatever the micro-batch, accumulation or process count.
- The loss: TRL's fused LM head (per-token log-probabilities in tiles, Triton) where Triton is there; elsewhere
  the Trainer's plain `model(**batch).loss`, over the same labels and the same loss-token weighting.
- On CPU, evaluation keeps bitsandbytes' 4-bit layers in train mode (they hold no dropout): an eval-mode forward
  would repack them into a layout with no backward, and training continues after `--eval-steps` evaluations
  (see `finetune/hf.py`).

`training_log`, a `TrainerCallback`, collects every step's loss and learning rate, every validation loss, the
training time without evaluations and the peak GPU memory: the manifest, the Langfuse trace and the report read
them from it. Checkpoints (`--save-steps`) are the Trainer's own, so `--resume` restores the adapter, optimizer,
schedule, RNG states and data position.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slm_swap.finetune.config import RECIPE, Knobs
from slm_swap.finetune.data import PaddingFreeCollator, PreparedSplit, TokenBudgetBatches, to_dataset
from slm_swap.finetune.resume import checkpoint_step


@dataclass(frozen=True)
class StepLog:
    step: int
    train_loss: float
    learning_rate: float
    elapsed_s: float  # training time so far, evaluations left out
    tokens_seen: int = 0  # tokens trained so far this session, all processes


@dataclass
class TrainResult:
    steps: list[StepLog] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)  # {"step", "val_loss"}, the last one after training
    total_steps: int = 0
    resumed_from_step: int | None = None
    train_tokens: int = 0  # all processes; this session's steps only when resumed
    train_time_s: float = 0.0  # this session's steps, evaluations left out
    peak_memory_bytes: list[int] = field(default_factory=list)  # one per process; empty on CPU
    optimizer: str = ""

    @property
    def val_loss(self) -> float | None:
        return self.evals[-1]["val_loss"] if self.evals else None

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_time_s if self.train_time_s > 0 else 0.0


def training_log(result: TrainResult) -> Any:
    """A `TrainerCallback` that fills `result` (built here: transformers loads only after Unsloth has patched it)."""
    from transformers import TrainerCallback

    class TrainingLog(TrainerCallback):
        """Steps, validation losses and timing, as the Trainer reports them."""

        def __init__(self) -> None:
            self.step_started: float | None = None
            self.initial_tokens = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.initial_tokens = state.num_input_tokens_seen
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.step_started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.step_started is not None:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                result.train_time_s += time.perf_counter() - self.step_started
                self.step_started = None
            result.train_tokens = state.num_input_tokens_seen - self.initial_tokens

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
            logs = logs or {}
            if "loss" in logs:
                learning_rate = float(logs.get("learning_rate", 0.0))
                loss, elapsed = round(float(logs["loss"]), 6), round(result.train_time_s, 3)
                result.steps.append(StepLog(state.global_step, loss, learning_rate, elapsed, result.train_tokens))
            if "eval_loss" in logs:
                result.evals.append({"step": state.global_step, "val_loss": round(float(logs["eval_loss"]), 6)})

    return TrainingLog()


# Below this many optimizer steps there is no warm-up: the scheduler rounds the ratio's share up to one whole step, and a
# 2-step run (the demo's) would spend half its steps at learning rate 0
MIN_STEPS_FOR_WARMUP = 20


def warmup_ratio(knobs: Knobs, optimizer_steps: int | None) -> float:
    return 0.0 if optimizer_steps is not None and optimizer_steps < MIN_STEPS_FOR_WARMUP else knobs.warmup_ratio


def optimizer_steps(lengths: list[int], knobs: Knobs) -> int:
    """Optimizer steps of the run: its micro-batches (planned as the trainer will) over gradient accumulation, per epoch."""
    micro_batches = len(TokenBudgetBatches(lengths, knobs.batch_size, knobs.max_batch_tokens, seed=knobs.seed))
    return -(-micro_batches // knobs.grad_accum) * RECIPE.num_epochs


def sft_config(knobs: Knobs, output_dir: Path, cuda: bool, steps: int | None = None) -> Any:
    """The fixed recipe and the knobs as TRL's `SFTConfig`; `steps`: the run's optimizer steps, when known."""
    from trl import SFTConfig

    names = {f.name for f in dataclasses.fields(SFTConfig)}
    ratio = warmup_ratio(knobs, steps)
    # transformers 5 folds the warm-up ratio into `warmup_steps` (a float below 1 is a ratio); 4.x has `warmup_ratio`
    warmup = {"warmup_ratio": ratio} if "warmup_ratio" in names else {"warmup_steps": ratio}
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=RECIPE.num_epochs,
        learning_rate=RECIPE.learning_rate,
        lr_scheduler_type=RECIPE.lr_scheduler,
        weight_decay=RECIPE.weight_decay,
        max_grad_norm=knobs.max_grad_norm,
        per_device_train_batch_size=knobs.batch_size,
        per_device_eval_batch_size=knobs.batch_size,
        gradient_accumulation_steps=knobs.grad_accum,
        seed=knobs.seed,
        data_seed=knobs.seed,
        optim="adamw_bnb_8bit" if cuda else "adamw_torch",
        bf16=cuda,
        use_cpu=not cuda,
        gradient_checkpointing=False,  # the backends turn it on themselves, each its own way
        max_length=None,  # rows over RECIPE.max_seq_length were dropped, never cut (module docstring)
        packing=False,
        padding_free=False,  # the project's collator packs; TRL's would refuse it
        completion_only_loss=RECIPE.completion_only_loss,  # the labels already say so; recorded for readers
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
        include_num_input_tokens_seen="all",  # padding-free batches hold no padding
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="steps" if knobs.save_steps else "no",
        save_steps=knobs.save_steps or 500,
        save_total_limit=2,
        eval_strategy="steps" if knobs.eval_steps else "no",
        eval_steps=knobs.eval_steps,
        report_to="none",
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
        **warmup,
    )


def make_trainer(
    model: Any, tokenizer: Any, train: PreparedSplit, val: PreparedSplit, knobs: Knobs, keys: tuple[str, ...], output_dir: Path
) -> Any:
    """An `SFTTrainer` over the prepared splits (imported here: Unsloth must patch TRL before it loads)."""
    from torch.utils.data import DataLoader
    from transformers import Trainer
    from trl import SFTTrainer

    cuda = torch.cuda.is_available()
    # TRL's loss runs the LM head in tiles through Triton kernels (no full logits); without Triton (CPU builds of
    # torch) the trainer falls back to the model's own cross-entropy
    fused_head = cuda and importlib.util.find_spec("triton") is not None
    lengths = [len(row) for row in train.rows]

    class ProjectSFTTrainer(SFTTrainer):
        def get_train_dataloader(self) -> DataLoader:
            batches = TokenBudgetBatches(lengths, knobs.batch_size, knobs.max_batch_tokens, seed=knobs.seed)
            loader = DataLoader(self.train_dataset, batch_sampler=batches, collate_fn=self.data_collator, num_workers=0, pin_memory=cuda)
            return self.accelerator.prepare(loader)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            # PEFT reloads the adapter in float32; TRL had cast QLoRA adapters to bf16 when the trainer was built.
            # Without this, a resumed run would train its remaining steps in another precision than an
            # uninterrupted one (tests/finetune/test_finetune_cli.py compares the two adapters).
            target = model if model is not None else self.model
            dtypes = {name: p.dtype for name, p in target.named_parameters() if p.requires_grad}
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            for name, param in target.named_parameters():
                if name in dtypes and param.dtype != dtypes[name]:
                    param.data = param.data.to(dtypes[name])

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            if fused_head:
                return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            # the model's own loss over the same labels, weighted by the step's loss tokens as TRL's would be
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

        def prediction_step(self, model: Any, inputs: Any, prediction_loss_only: bool, ignore_keys: Any = None) -> Any:
            if not cuda:
                keep_4bit_layers_trainable(model)
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    return ProjectSFTTrainer(
        model=model,
        args=sft_config(knobs, output_dir, cuda, optimizer_steps(lengths, knobs)),
        train_dataset=to_dataset(train.rows),
        eval_dataset=to_dataset(val.rows),
        processing_class=tokenizer,
        data_collator=PaddingFreeCollator(keys),
    )


def keep_4bit_layers_trainable(model: Any) -> None:
    """Put bitsandbytes' 4-bit layers back in train mode after `model.eval()` (they hold no dropout)."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.train()


def train(
    model: Any,
    tokenizer: Any,
    train_split: PreparedSplit,
    val_split: PreparedSplit,
    knobs: Knobs,
    keys: tuple[str, ...],
    output_dir: Path,
    resume_from: Path | None = None,
) -> TrainResult:
    """One epoch through the trainer, then the validation loss; `resume_from` continues from a checkpoint."""
    result = TrainResult(optimizer="bitsandbytes AdamW8bit" if torch.cuda.is_available() else "torch AdamW")
    trainer = make_trainer(model, tokenizer, train_split, val_split, knobs, keys, output_dir)
    trainer.add_callback(training_log(result))
    if resume_from is not None:
        result.resumed_from_step = checkpoint_step(resume_from)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    result.total_steps = trainer.state.global_step
    if not result.evals or result.evals[-1]["step"] != result.total_steps:
        trainer.evaluate()  # the validation loss at the end, logged through the callback
    if torch.cuda.is_available():
        peak = torch.tensor([torch.cuda.max_memory_allocated()], device=trainer.accelerator.device)
        result.peak_memory_bytes = [int(v) for v in trainer.accelerator.gather(peak).tolist()]
    return result
