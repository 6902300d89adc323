"""The local small language model: a checkpoint in 4-bit NF4 through bitsandbytes, greedy, batched.

`prepare` generates every row up front (never one `generate` call per row) and
`answer` only reads the stored output. Three engines:

- "static" (default): slm_swap.engine.static: length-sorted batches planned from free memory,
  one preallocated KV cache per batch holding only its rows' slots, prompts prefilled packed
  into shared passes on CUDA (variable-length flash attention; elsewhere right-padded groups
  of similar length), and on CUDA each decode step replayed as a CUDA graph, with
  slm_swap.engine.fused_kernels' Triton RMSNorm, rotary and SwiGLU.
  A batch ends when every row has produced an end-of-turn token, or at `max_new_tokens`.
- "padded": `generate` over length-sorted, left-padded batches sized from free memory, with
  the same stopping rule.
- "continuous": transformers' continuous batching (`generate_batch`): a paged KV cache,
  no padding, finished rows replaced by waiting ones. Without flash-attn its attention
  runs through SDPA over the whole step; docs/benchmarks.md has both engines' speed.

Rows are not cut at their closing `}` or `</tool_call>`: text after it is part of the
answer the scorer must see, as it is for the hosted model.
"""

from __future__ import annotations

import gc
import importlib.metadata
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.backends.checkpoints import CheckpointError, check_adapter_base, checkpoint_identity, require_checkpoint
from slm_swap.data.rows import Row
from slm_swap.engine import decode_attention, fused_kernels
from slm_swap.engine.static import BatchPlan, StaticGenerator, dequantized_bytes, dequantized_weights, plan_batches
from slm_swap.prompts import build_messages

QUANTIZATIONS = ("nf4", "none")
BATCHING = {
    "static": "length-sorted, planned from free memory, static KV cache, decode steps as CUDA graphs on CUDA",
    "padded": "length-sorted, left-padded",
    "continuous": "continuous, paged KV cache",
}
ENGINES = ("static", "padded", "continuous")
CONTINUOUS_BLOCK = 256  # tokens per KV cache block of the continuous engine
CPU_BATCH_SIZE = 8
STATIC_PREFILL_TOKENS = 32768  # padded tokens per prefill pass of the static engine on CUDA
CPU_PREFILL_TOKENS = 2048
MAX_BATCH_SIZE = 1024
# Share of free accelerator memory that batches may plan to use; the rest absorbs allocator
# fragmentation and the transient buffers the estimate below leaves out.
MEMORY_SHARE = 0.7
# The static engine on CUDA keeps compute-dtype copies of the 4-bit weights for one generate_rows
# call when they take at most this share of free memory (static_engine.dequantized_weights).
DEQUANTIZED_SHARE = 0.25


@dataclass(frozen=True)
class GeneratedRow:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


def resolve_adapter(adapter_opt: str, track: str, ft_dir: str | Path) -> Path | None:
    """`--adapter PATH|auto|none`: auto is `<ft_dir>/adapter_<track>` when that folder exists."""
    if adapter_opt == "none":
        return None
    if adapter_opt == "auto":
        candidate = Path(ft_dir) / f"adapter_{track}"
        return candidate if (candidate / "adapter_config.json").is_file() else None
    path = Path(adapter_opt)
    if not (path / "adapter_config.json").is_file():
        raise CheckpointError(f"--adapter {adapter_opt}: not a PEFT adapter folder (no adapter_config.json)")
    return path


def bytes_per_row(config: Any, dtype_bytes: int, tokens: int) -> int:
    """Memory one row of a batch needs: its KV cache, prefill activations and a float32 logits row."""
    text = config.get_text_config()
    return tokens * (kv_bytes_per_token(text, dtype_bytes) + activation_bytes(text, dtype_bytes)) + 2 * 4 * text.vocab_size


def head_dim_of(text_config: Any) -> int:
    return getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads


def kv_bytes_per_token(text_config: Any, dtype_bytes: int) -> int:
    """KV cache of one token: keys and values of every layer."""
    kv_heads = getattr(text_config, "num_key_value_heads", None) or text_config.num_attention_heads
    return 2 * text_config.num_hidden_layers * kv_heads * head_dim_of(text_config) * dtype_bytes


def activation_bytes(text_config: Any, dtype_bytes: int) -> int:
    """Activations of one token in a forward pass (hidden states and the MLP's intermediate)."""
    return (6 * text_config.hidden_size + 3 * text_config.intermediate_size) * dtype_bytes


def choose_batch_size(free_bytes: int, row_bytes: int, rows: int, cap: int = MAX_BATCH_SIZE) -> int:
    return max(1, min(cap, rows, int(free_bytes * MEMORY_SHARE) // max(row_bytes, 1)))


class LocalSLM:
    """slm_swap.backends.api.Model for a local checkpoint (optionally with a PEFT adapter)."""

    name = "slm"

    def __init__(
        self,
        model_path: str | Path,
        adapter: str | Path | None = None,
        track: str | None = None,
        max_new_tokens: int = 256,
        batch_size: int | None = None,
        quantization: str = "nf4",
        device: str = "auto",
        min_new_tokens: int = 0,
        engine: str = "static",
    ) -> None:
        import torch

        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_path = require_checkpoint(model_path)
        self.adapter = Path(adapter) if adapter is not None else None
        if self.adapter is not None:
            check_adapter_base(self.adapter, self.model_path)
        self.track = track
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.batch_size = batch_size
        self.batch_cap: int | None = None  # set when a batch ran out of memory
        self.quantization = quantization
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        # bf16 is the native dtype of the supported models; on CPU float32 is exact and no slower.
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.engine = engine
        if self.engine == "continuous" and min_new_tokens:
            raise ValueError("min_new_tokens needs the static or padded engine (continuous batching has no minimum length)")
        self.model, self.tokenizer = self._load()
        self.free_bytes = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else None
        self.batch_sizes: list[int] = []
        self.batch_timings: list[dict[str, Any]] = []  # static engine: where each batch's time went
        self._outputs: dict[str, GeneratedRow] = {}
        self._static: StaticGenerator | None = None
        self.dequantized_peak = 0  # bytes of the static engine's dequantised weight copies, the most at once
        self.fused_kernels: list[str] = []  # what the static engine ran through slm_swap.engine.fused_kernels

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

        quantization_config = None
        if self.quantization == "nf4":
            quantization_config = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=self.dtype
            )
        model = AutoModelForCausalLM.from_pretrained(
            self.model_path, dtype=self.dtype, quantization_config=quantization_config, device_map={"": str(self.device)}
        )
        if self.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter)
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        if not tokenizer.chat_template:
            raise CheckpointError(f"{self.model_path}: the tokenizer has no chat template")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        return ids or [self.tokenizer.eos_token_id]

    def encode(self, row: Row) -> list[int]:
        return self.encode_many([row])[0]

    def encode_many(self, rows: Sequence[Row]) -> list[list[int]]:
        """Prompt token ids of each row, tokenized in one call (the fast tokenizer spreads it over threads)."""
        if not rows:
            return []
        texts = [self.tokenizer.apply_chat_template(build_messages(row.prompt), add_generation_prompt=True, tokenize=False) for row in rows]
        # The template already holds every special token the model expects.
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def prepare(self, rows: Sequence[Row]) -> None:
        self.check_tracks(rows)
        self._outputs.update(self.generate_rows([row for row in rows if row.id not in self._outputs]))

    def check_tracks(self, rows: Sequence[Row]) -> None:
        # Row ids repeat across tracks (test-0000 is in both), so one model instance serves one track.
        for row in rows:
            if self.track is not None and row.track != self.track:
                raise ValueError(f"row {row.id} is of track {row.track!r}, this model was set up for {self.track!r}")

    def generate_rows(self, rows: Sequence[Row], batch_size: int | None = None, engine: str | None = None) -> dict[str, GeneratedRow]:
        """Every row's output by id, longest prompts first (a batch too big fails at once, not at the end).

        `batch_size` and `engine` override the configured ones for this call (the benchmark's
        one-at-a-time run is plain `generate`: `batch_size=1, engine="padded"`).
        """
        self.check_tracks(rows)
        engine = engine or self.engine
        if engine == "continuous" and batch_size is None and rows:
            return self.generate_continuous(rows)
        todo = sorted(zip(rows, self.encode_many(rows)), key=lambda item: (-len(item[1]), item[0].id))
        if engine == "static":
            return self.generate_static(todo, batch_size or self.batch_size)
        outputs: dict[str, GeneratedRow] = {}
        start = 0
        while start < len(todo):
            size = self.batch_size_for(len(todo[start][1]), len(todo) - start, batch_size or self.batch_size)
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
        return outputs

    def generate_static(self, todo: list[tuple[Row, list[int]]], requested: int | None) -> dict[str, GeneratedRow]:
        import torch

        if self._static is None:
            self._static = StaticGenerator(
                self.model,
                self.eos_ids(),
                self.tokenizer.pad_token_id,
                use_graphs=self.device.type == "cuda",
                prefill_tokens=self.prefill_tokens(),
            )
        with ExitStack() as stack:
            dequantized = 0
            if self.quantization == "nf4" and self.free_bytes is not None:
                size = dequantized_bytes(self.model, self.dtype)
                if size <= DEQUANTIZED_SHARE * torch.cuda.mem_get_info(self.device)[0]:
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
            try:
                generated = self._static.generate(prompts, self.max_new_tokens, self.min_new_tokens)
            except Exception as exc:
                if len(batch) == 1 or not is_out_of_memory(exc):
                    raise
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
            memory = max((self.free_bytes - dequantized) * MEMORY_SHARE - prefill, slot_bytes * (lengths[0] + self.max_new_tokens))
        reads_padding = not decode_attention.available(self.device, head_dim_of(text))
        return plan_batches(lengths, self.max_new_tokens, slot_bytes, step_bytes, memory, max_rows, reads_padding)

    def prefill_tokens(self) -> int:
        """Padded tokens per prefill pass of the static engine."""
        return STATIC_PREFILL_TOKENS if self.device.type == "cuda" else CPU_PREFILL_TOKENS

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
        return outputs

    def read_output(self, prompt: list[int], tokens: list[int], eos_ids: list[int], latency: float) -> GeneratedRow:
        """Cut a row at its first end-of-turn token; what follows is padding from rows still running."""
        end = next((i for i, token in enumerate(tokens) if token in eos_ids), None)
        kept = tokens if end is None else tokens[: end + 1]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return GeneratedRow(text, "length" if end is None else "stop", len(prompt), len(kept), latency)

    def answer(self, row: Row) -> Answer:
        output = self._outputs.get(row.id)
        if output is None:
            raise KeyError(f"row {row.id} was not generated: pass every row to prepare() before answer()")
        usage = {
            "prompt_tokens": output.prompt_tokens,
            "completion_tokens": output.completion_tokens,
            "total_tokens": output.prompt_tokens + output.completion_tokens,
        }
        return Answer(text=output.text, latency_s=output.latency_s, finish_reason=output.finish_reason, usage=usage)

    def describe(self) -> dict[str, Any]:
        versions = {}
        for package in ("torch", "transformers", "bitsandbytes", "peft"):
            try:
                versions[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                versions[package] = None
        quantization: dict[str, Any] = {"method": self.quantization}
        if self.quantization == "nf4":
            quantization.update(
                library="bitsandbytes", quant_type="nf4", double_quant=True, compute_dtype=str(self.dtype).removeprefix("torch.")
            )
        return {
            "model_path": str(self.model_path),
            "base": checkpoint_identity(self.model_path),
            "adapter": str(self.adapter) if self.adapter is not None else None,
            "track": self.track,
            "quantization": quantization,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "generation": {
                "engine": self.engine,
                "greedy": True,
                "max_new_tokens": self.max_new_tokens,
                "min_new_tokens": self.min_new_tokens,
                "batch_size": self.batch_size if self.batch_size is not None else "auto",
                "batch_sizes_used": sorted(set(self.batch_sizes)),
                "batching": BATCHING[self.engine],
                "stop": "end-of-turn token or max_new_tokens",
                "dequantized_weight_gib": round(self.dequantized_peak / 2**30, 2),
                "fused_kernels": self.fused_kernels,
                "cuda_graphs_failed": self._static.graphs_failed if self._static is not None else None,
            },
            "versions": versions,
        }

    def release_memory(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def close(self) -> None:
        self._static = None
        self.model = None
        self._outputs.clear()
        self.release_memory()


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
