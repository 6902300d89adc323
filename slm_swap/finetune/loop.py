"""The training loop both backends share: padding-free micro-batches, token-weighted loss, DDP through accelerate.

Each optimizer step averages the loss over every completion token of its micro-batches
on every process: a micro-batch's mean loss is weighted by its share of the step's
loss tokens (summed across processes before the step), and multiplied by the number
of processes because DDP averages gradients. So the step equals one large batch,
whatever the batch size, accumulation or process count.

Throughput counts real tokens only; padding-free batches contain no others.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from slm_swap.finetune.config import RECIPE, Knobs
from slm_swap.finetune.data import TokenizedRow, collate_padding_free, count_loss_tokens, plan_micro_batches


@dataclass(frozen=True)
class StepLog:
    step: int
    train_loss: float
    learning_rate: float
    tokens: int  # all processes
    loss_tokens: int
    elapsed_s: float


@dataclass
class LoopResult:
    steps: list[StepLog] = field(default_factory=list)
    val_loss: float | None = None
    val_loss_tokens: int = 0
    train_tokens: int = 0
    train_loss_tokens: int = 0
    train_rows: int = 0
    rows_left_out: int = 0  # rows whose micro-batches did not divide evenly among the processes
    train_time_s: float = 0.0
    peak_memory_bytes: list[int] = field(default_factory=list)  # one per process; empty on CPU
    optimizer: str = ""

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_time_s if self.train_time_s > 0 else 0.0


def shard_micro_batches(batches: list[list[int]], rank: int, world: int) -> tuple[list[list[int]], int]:
    """This process's micro-batches; every process gets as many (DDP steps in lockstep), the remainder is left out."""
    usable = len(batches) - len(batches) % world
    if usable == 0:
        raise ValueError(f"{len(batches)} micro-batches cannot feed {world} processes; use more rows or a smaller --batch-size")
    left_out = sum(len(b) for b in batches[usable:])
    return batches[rank:usable:world], left_out


def make_optimizer(params: list[torch.nn.Parameter], device: torch.device) -> tuple[torch.optim.Optimizer, str]:
    if device.type == "cuda":
        import bitsandbytes as bnb

        # 8-bit Adam states: a quarter of the memory of fp32 ones, the QLoRA recipe's choice.
        return bnb.optim.AdamW8bit(params, lr=RECIPE.learning_rate, weight_decay=0.0), "bitsandbytes AdamW8bit"
    return torch.optim.AdamW(params, lr=RECIPE.learning_rate, weight_decay=0.0), "torch AdamW"


def linear_schedule(total_steps: int, warmup_ratio: float) -> tuple[int, Any]:
    warmup = math.ceil(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return warmup, factor


def to_device(batch: dict[str, torch.Tensor], keys: tuple[str, ...], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if k in keys}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reduce_sum(accelerator: Any, value: float | int, device: torch.device) -> float:
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    return float(accelerator.reduce(tensor, reduction="sum").item()) if accelerator.num_processes > 1 else float(value)


def evaluate_loss(model: Any, rows: tuple[TokenizedRow, ...], knobs: Knobs, keys: tuple[str, ...], accelerator: Any) -> tuple[float, int]:
    """Token-weighted mean loss over the completion tokens of `rows` (all processes together)."""
    device = accelerator.device
    batches = plan_micro_batches([len(r) for r in rows], knobs.batch_size, knobs.max_batch_tokens, seed=None)
    mine = batches[accelerator.process_index :: accelerator.num_processes]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for indices in mine:
            batch = collate_padding_free(rows[i] for i in indices)
            n = count_loss_tokens(batch)
            with accelerator.autocast():
                out = model(**to_device(batch, keys, device))
            total += float(out.loss.float()) * n
            count += n
    model.train()
    total, count = reduce_sum(accelerator, total, device), int(reduce_sum(accelerator, count, device))
    return total / count, count


def train(
    model: Any,
    train_rows: tuple[TokenizedRow, ...],
    val_rows: tuple[TokenizedRow, ...],
    knobs: Knobs,
    keys: tuple[str, ...],
    accelerator: Any,
) -> LoopResult:
    device = accelerator.device
    world, rank = accelerator.num_processes, accelerator.process_index
    batches = plan_micro_batches([len(r) for r in train_rows], knobs.batch_size, knobs.max_batch_tokens, seed=knobs.seed)
    mine, left_out = shard_micro_batches(batches, rank, world)
    windows = [mine[i : i + knobs.grad_accum] for i in range(0, len(mine), knobs.grad_accum)]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, optimizer_name = make_optimizer(params, device)
    warmup, factor = linear_schedule(len(windows), knobs.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model, optimizer = accelerator.prepare(model, optimizer)
    result = LoopResult(optimizer=optimizer_name, rows_left_out=left_out, train_rows=sum(len(b) for b in batches) - left_out)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    bar = tqdm(total=len(windows), desc="fine-tuning", unit="step", disable=not accelerator.is_main_process)
    synchronize(device)
    started = time.perf_counter()
    for step, window in enumerate(windows, start=1):
        collated = [collate_padding_free(train_rows[i] for i in indices) for indices in window]
        counts = [count_loss_tokens(b) for b in collated]
        step_loss_tokens = reduce_sum(accelerator, sum(counts), device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        for j, (batch, n) in enumerate(zip(collated, counts)):
            last = j == len(collated) - 1
            with nullcontext() if last else accelerator.no_sync(model):
                with accelerator.autocast():
                    out = model(**to_device(batch, keys, device))
                accelerator.backward(out.loss * (n * world / step_loss_tokens))
            loss_sum += out.loss.detach().float() * n
        accelerator.clip_grad_norm_(params, knobs.max_grad_norm)
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = reduce_sum(accelerator, sum(int(b["input_ids"].numel()) for b in collated), device)
        step_loss = reduce_sum(accelerator, float(loss_sum), device) / step_loss_tokens
        elapsed = time.perf_counter() - started
        result.steps.append(StepLog(step, round(step_loss, 6), learning_rate, int(tokens), int(step_loss_tokens), round(elapsed, 3)))
        result.train_tokens += int(tokens)
        result.train_loss_tokens += int(step_loss_tokens)
        bar.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{result.train_tokens / max(elapsed, 1e-9):,.0f}")
        bar.update(1)
    synchronize(device)
    result.train_time_s = time.perf_counter() - started
    bar.close()
    if device.type == "cuda":
        peak = torch.tensor([torch.cuda.max_memory_allocated(device)], device=device)
        result.peak_memory_bytes = [int(v) for v in accelerator.gather(peak).tolist()]
    result.val_loss, result.val_loss_tokens = evaluate_loss(accelerator.unwrap_model(model), val_rows, knobs, keys, accelerator)
    return result
