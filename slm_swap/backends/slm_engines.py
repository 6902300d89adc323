"""The local SLM's generation engines over encoded rows: "static" (slm_swap.engine), "padded" (`generate`
over left-padded batches) and "continuous" (transformers' `generate_batch`); each backs off to smaller
batches when one runs out of memory. The static engine keeps prompt prefixes between calls
(slm_swap.engine.prefix_cache) in PREFIX_SHARE of the memory it plans with, unless told otherwise.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

from slm_swap.backends.slm_memory import (
    CPU_BATCH_SIZE,
    MAX_BATCH_SIZE,
    MEMORY_SHARE,
    activation_bytes,
    available_ram,
    bytes_per_row,
    choose_batch_size,
    head_dim_of,
    is_out_of_memory,
    kv_bytes_per_token,
)
from slm_swap.data.rows import Row
from slm_swap.engine import decode_attention, fused_kernels
from slm_swap.engine.dequantize import dequantized_bytes, dequantized_weights
from slm_swap.engine.planning import BatchPlan, plan_batches
from slm_swap.engine.prefix_cache import PrefixCache
from slm_swap.engine.static import StaticGenerator

CONTINUOUS_BLOCK = 256  # tokens per KV cache block of the continuous engine
STATIC_PREFILL_TOKENS = 32768  # padded tokens per prefill pass of the static engine on CUDA
CPU_PREFILL_TOKENS = 2048
# The static engine keeps compute-dtype copies of the 4-bit weights for one generate_rows call when they take
# at most this share of free memory (GPU memory on CUDA, available RAM on a CPU; slm_swap.engine.dequantize).
# On a 2-core CPU bitsandbytes' one-row NF4 kernel took 42 of a 93 s SmolLM2 agent step batch (cProfile).
DEQUANTIZED_SHARE = 0.25
# Share of free memory (GPU memory on CUDA, available RAM on a CPU, at load) that kept prompt prefixes may take;
# batches are planned in what is left.
PREFIX_SHARE = 0.3


@dataclass(frozen=True)
class GeneratedRow:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


Progress = Callable[[int, int], None]  # (rows generated, rows in all)
# within a batch: (rows generated before it, rows in all, the batch's rows, tokens per row so far, the cap)
TokenProgress = Callable[[int, int, int, int, int], None]


class GenerationEngines:
    """LocalSLM's engines, mixed into it: they read the loaded model and settings below, and LocalSLM's
    `eos_ids` and `encode_many`.
    """

    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    quantization: str
    max_new_tokens: int
    min_new_tokens: int
    batch_size: int | None
    batch_cap: int | None  # set when a batch ran out of memory
    free_bytes: int | None
    batch_sizes: list[int]
    batch_timings: list[dict[str, Any]]
    dequantized_peak: int
    fused_kernels: list[str]
    _static: StaticGenerator | None
    progress: Progress | None
    token_progress: TokenProgress | None
    batch_invariant: bool
    prefix_reuse: bool
    prefix_cache_tokens: int | None  # None: PREFIX_SHARE of free memory

    def report_progress(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def tokens_reporter(self, done: int, total: int, batch: int) -> Callable[[int, int], None] | None:
        """The static engine's decode-step callback for one batch: tokens per row so far, against the cap."""
        report = self.token_progress
        if report is None:
            return None
        # the first token comes from the prefill, so decode step k has made k + 1 tokens of each row still running
        return lambda step, steps: report(done, total, batch, step + 1, steps + 1)

    def generate_static(self, todo: list[tuple[Row, list[int]]], requested: int | None) -> dict[str, GeneratedRow]:
        import torch

        if self._static is None:
            self._static = StaticGenerator(
                self.model,
                self.eos_ids(),
                self.tokenizer.pad_token_id,
                use_graphs=self.device.type == "cuda",
                prefill_tokens=self.prefill_tokens(),
                batch_invariant=self.batch_invariant,
                prefixes=PrefixCache(self.prefix_capacity()) if self.prefix_reuse else None,
            )
        with ExitStack() as stack:
            dequantized = 0
            if self.quantization == "nf4":
                size = dequantized_bytes(self.model, self.dtype)
                free = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else available_ram()
                if size <= DEQUANTIZED_SHARE * free:
                    dequantized = stack.enter_context(dequantized_weights(self.model, self.dtype))
                    self.dequantized_peak = max(self.dequantized_peak, dequantized)
            fused = stack.enter_context(fused_kernels.patched(self.model, self.dtype))
            self.fused_kernels = sorted(set(self.fused_kernels) | set(fused))
            return self.generate_static_batches(todo, requested, dequantized)

    def generate_static_batches(
        self, todo: list[tuple[Row, list[int]]], requested: int | None, dequantized: int
    ) -> dict[str, GeneratedRow]:
        import torch

        outputs: dict[str, GeneratedRow] = {}
        eos_ids = self.eos_ids()
        plans = self.plan_static([len(ids) for _, ids in todo], requested, dequantized)
        while plans:
            plan = plans.pop(0)
            batch = todo[plan.start : plan.end]
            prompts = [ids for _, ids in batch]
            started = time.perf_counter()
            self._static.on_step = self.tokens_reporter(len(outputs), len(todo), len(batch))
            try:
                generated = self._static.generate(prompts, self.max_new_tokens, self.min_new_tokens)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                kept = self._static.prefixes
                freed = kept is not None and kept.kept_tokens > 0
                if freed:
                    kept.clear()  # memory pressure: every kept prefix goes (its rows prefill again), then the batch halves
                if len(batch) == 1:
                    if not freed:
                        raise
                    self.release_memory()
                    plans.insert(0, plan)  # a row alone is tried once more without the kept prefixes
                    continue
                self.release_memory()
                self.batch_cap = len(batch) // 2
                # Plan again what is left, in batches of at most half the size that did not fit.
                left = todo[plan.start :]
                plans = [
                    BatchPlan(p.start + plan.start, p.end + plan.start)
                    for p in self.plan_static([len(ids) for _, ids in left], requested, dequantized)
                ]
                continue
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            latency = (time.perf_counter() - started) / len(batch)
            self.batch_sizes.append(len(batch))
            self.batch_timings.append(asdict(self._static.timings[-1]))
            for (row, ids), tokens in zip(batch, generated):
                outputs[row.id] = self.read_output(ids, tokens, eos_ids, latency)
            self.report_progress(len(outputs), len(todo))
        return outputs

    def plan_static(self, lengths: list[int], requested: int | None, dequantized: int) -> list[BatchPlan]:
        """Batches for the static engine: from free memory on CUDA, CPU_BATCH_SIZE rows on the CPU.

        `dequantized`: bytes of compute-dtype weight copies in use (they are read instead of the 4-bit weights).
        """
        text = self.model.config.get_text_config()
        slot_bytes = kv_bytes_per_token(text, self.dtype.itemsize)
        # A decode step reads every weight; NF4 weights are dequantised to the compute dtype and read again.
        params = sum(p.numel() * (2 if p.dtype.itemsize == 1 else 1) for p in self.model.parameters())
        step_bytes = params * (2 * self.dtype.itemsize if self.quantization == "nf4" and not dequantized else self.dtype.itemsize)
        max_rows = requested or (MAX_BATCH_SIZE if self.free_bytes is not None else CPU_BATCH_SIZE)
        max_rows = min(max_rows, self.batch_cap or max_rows)
        if self.free_bytes is None:
            memory = float("inf")
        else:
            # A prefill pass keeps only the last position's logits: its activations are what it needs.
            prefill = self.prefill_tokens() * activation_bytes(text, self.dtype.itemsize)
            kept = self.prefix_capacity() * slot_bytes if self.prefix_reuse else 0
            memory = max((self.free_bytes - dequantized - kept) * MEMORY_SHARE - prefill, slot_bytes * (lengths[0] + self.max_new_tokens))
        reads_padding = not decode_attention.available(self.device, head_dim_of(text))
        return plan_batches(lengths, self.max_new_tokens, slot_bytes, step_bytes, memory, max_rows, reads_padding)

    def prefix_capacity(self) -> int:
        """Tokens of prompt prefixes the static engine keeps between calls."""
        if self.prefix_cache_tokens is not None:
            return self.prefix_cache_tokens
        free = self.free_bytes if self.free_bytes is not None else available_ram()
        return int(PREFIX_SHARE * free) // kv_bytes_per_token(self.model.config.get_text_config(), self.dtype.itemsize)

    def prefill_tokens(self) -> int:
        """Padded tokens per prefill pass of the static engine."""
        return STATIC_PREFILL_TOKENS if self.device.type == "cuda" else CPU_PREFILL_TOKENS

    def generate_padded(self, todo: list[tuple[Row, list[int]]], batch_size: int | None) -> dict[str, GeneratedRow]:
        """The padded engine: `generate` over batches sized from free memory, halved when one runs out of it."""
        outputs: dict[str, GeneratedRow] = {}
        start = 0
        while start < len(todo):
            size = self.batch_size_for(len(todo[start][1]), len(todo) - start, batch_size)
            batch = todo[start : start + size]
            try:
                generated = self.generate_batch([ids for _, ids in batch])
            except Exception as exc:
                if size == 1 or not is_out_of_memory(exc):
                    raise
                self.release_memory()
                self.batch_cap = size // 2  # later batches keep the size that fitted
                continue
            self.batch_sizes.append(size)
            outputs.update({row.id: output for (row, _), output in zip(batch, generated)})
            start += size
            self.report_progress(len(outputs), len(todo))
        return outputs

    def batch_size_for(self, prompt_tokens: int, rows_left: int, requested: int | None) -> int:
        cap = min(rows_left, self.batch_cap or rows_left)
        if requested is not None:
            return min(requested, cap)
        if self.free_bytes is None:
            return min(CPU_BATCH_SIZE, cap)
        row_bytes = bytes_per_row(self.model.config, self.dtype.itemsize, prompt_tokens + self.max_new_tokens)
        return choose_batch_size(self.free_bytes, row_bytes, cap)

    def generate_batch(self, prompts: list[list[int]]) -> list[GeneratedRow]:
        import torch
        from transformers import GenerationConfig

        inputs = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(self.device)
        eos_ids = self.eos_ids()
        settings = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            min_new_tokens=self.min_new_tokens,
            eos_token_id=eos_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        started = time.perf_counter()
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, generation_config=settings)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        latency = (time.perf_counter() - started) / len(prompts)
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :].tolist()
        return [self.read_output(prompt, tokens, eos_ids, latency) for prompt, tokens in zip(prompts, new_tokens)]

    def generate_continuous(self, rows: Sequence[Row]) -> dict[str, GeneratedRow]:
        from transformers import GenerationConfig
        from transformers.generation import ContinuousBatchingConfig

        prompts = self.encode_many(rows)
        eos_ids = self.eos_ids()
        settings = GenerationConfig(
            do_sample=False, max_new_tokens=self.max_new_tokens, eos_token_id=eos_ids, pad_token_id=self.tokenizer.pad_token_id
        )
        # A KV cache of exactly the blocks these rows can fill; sized from free memory it takes gigabytes even on a CPU.
        blocks = sum(-(-(len(prompt) + self.max_new_tokens) // CONTINUOUS_BLOCK) for prompt in prompts)
        batching = ContinuousBatchingConfig(block_size=CONTINUOUS_BLOCK, num_blocks=blocks, max_requests_per_batch=self.batch_size)
        started = time.perf_counter()
        # No inference_mode here: the batching thread updates tensors made on this one in place.
        results = self.model.generate_batch(inputs=prompts, generation_config=settings, continuous_batching_config=batching)
        latency = (time.perf_counter() - started) / len(prompts)
        outputs = {}
        for index, (row, prompt) in enumerate(zip(rows, prompts)):
            result = results.get(f"req_{index}")  # generate_batch names requests by input position
            if result is None or result.error is not None:
                raise RuntimeError(f"continuous batching failed on row {row.id}: {getattr(result, 'error', 'no result')}")
            outputs[row.id] = self.read_output(prompt, list(result.generated_tokens), eos_ids, latency)
        self.report_progress(len(outputs), len(rows))  # continuous batching answers all rows at once
        return outputs

    def read_output(self, prompt: list[int], tokens: list[int], eos_ids: list[int], latency: float) -> GeneratedRow:
        """Cut a row at its first end-of-turn token; what follows is padding from rows still running."""
        end = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
        kept = tokens if end is None else tokens[: end + 1]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return GeneratedRow(text, "length" if end is None else "stop", len(prompt), len(kept), latency)

    def release_memory(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
