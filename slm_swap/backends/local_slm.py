"""The local small language model: a checkpoint in 4-bit NF4 through bitsandbytes, greedy, batched.

`prepare` generates every row up front (never one `generate` call per row) and
`answer` only reads the stored output. Three engines:

- "static" (default): slm_swap.engine.static: length-sorted batches planned from free memory,
  one preallocated KV cache per batch holding only its rows' slots, prompts prefilled packed
  into shared passes on CUDA (variable-length flash attention; elsewhere right-padded groups
  of similar length), and on CUDA each decode step replayed as a CUDA graph, with
  slm_swap.engine.fused_kernels' Triton RMSNorm, rotary and SwiGLU. With `prefix_reuse` (off by default)
  prompt prefixes are kept between calls (slm_swap.engine.prefix_cache): an agent episode's next step
  prefills only what its chat gained since the last one. Off, because on an H100 it is slower than
  prefilling everything and its bf16 replies are not those of a whole prefill (docs/benchmarks.md, issue 32).
  A batch ends when every row has produced an end-of-turn token, or at `max_new_tokens`.
- "padded": `generate` over length-sorted, left-padded batches sized from free memory, with
  the same stopping rule.
- "continuous": transformers' continuous batching (`generate_batch`): a paged KV cache,
  no padding, finished rows replaced by waiting ones. Without flash-attn its attention
  runs through SDPA over the whole step; docs/benchmarks.md has both engines' speed.

Rows are not cut at their closing `}` or `</tool_call>`: text after it is part of the
answer the scorer must see, as it is for the hosted model.

This module holds the model class and `--adapter` resolution; loading is slm_swap.backends.slm_loading,
the engines slm_swap.backends.slm_engines (mixed into LocalSLM), memory sizing slm_swap.backends.slm_memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.backends.checkpoints import CheckpointError, check_adapter_base, checkpoint_identity, require_checkpoint
from slm_swap.backends.slm_engines import GeneratedRow, GenerationEngines, Progress, TokenProgress
from slm_swap.backends.slm_loading import QUANTIZATIONS, describe_quantization, load_model, package_versions
from slm_swap.data.rows import Row
from slm_swap.engine.static import StaticGenerator
from slm_swap.layout import ADAPTER_CONFIG, adapter_dir, is_adapter
from slm_swap.prompts import build_messages

BATCHING = {
    "static": "length-sorted, planned from free memory, static KV cache, decode steps as CUDA graphs on CUDA",
    "padded": "length-sorted, left-padded",
    "continuous": "continuous, paged KV cache",
}
ENGINES = ("static", "padded", "continuous")


def resolve_adapter(adapter_opt: str, track: str, ft_dir: str | Path) -> Path | None:
    """`--adapter PATH|auto|none`: auto is `<ft_dir>/adapter_<track>` when that folder exists."""
    if adapter_opt == "none":
        return None
    if adapter_opt == "auto":
        candidate = adapter_dir(Path(ft_dir), track)
        return candidate if is_adapter(candidate) else None
    path = Path(adapter_opt)
    if not is_adapter(path):
        raise CheckpointError(f"--adapter {adapter_opt}: not a PEFT adapter folder (no {ADAPTER_CONFIG})")
    return path


class LocalSLM(GenerationEngines):
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
        progress: Progress | None = None,
        batch_invariant: bool = False,
        token_progress: TokenProgress | None = None,
        prefix_reuse: bool = False,  # static engine: keep prompt prefixes between calls (slm_swap.engine.prefix_cache)
        prefix_cache_tokens: int | None = None,  # the most prefix tokens kept; None: a share of free memory
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
        self.progress = progress  # told (rows done, rows in all) as each batch finishes
        self.token_progress = token_progress  # told tokens generated within a batch (static engine), each decode step
        self.batch_invariant = batch_invariant  # slm_swap.engine.invariant: a row's tokens do not depend on its batch
        self.prefix_reuse, self.prefix_cache_tokens = prefix_reuse and engine == "static", prefix_cache_tokens
        if batch_invariant and engine != "static":
            raise ValueError("batch_invariant needs the static engine")
        if self.engine == "continuous" and min_new_tokens:
            raise ValueError("min_new_tokens needs the static or padded engine (continuous batching has no minimum length)")
        self.model, self.tokenizer = load_model(self.model_path, self.adapter, self.quantization, self.dtype, self.device)
        self.free_bytes = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else None
        self.batch_sizes: list[int] = []
        self.batch_timings: list[dict[str, Any]] = []  # static engine: where each batch's time went
        self._outputs: dict[str, GeneratedRow] = {}
        self._alone: dict[str, GeneratedRow] = {}  # rows generated again one at a time (generate_alone)
        self._static: StaticGenerator | None = None
        self.dequantized_peak = 0  # bytes of the static engine's dequantised weight copies, the most at once
        self.fused_kernels: list[str] = []  # what the static engine ran through slm_swap.engine.fused_kernels

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

    def generate_alone(self, rows: Sequence[Row]) -> None:
        """Generate again, one at a time with the same engine, those of `rows` this model generated in a batch.

        The batch invariance check (`--check-batch-invariance`) compares them with the batched outputs;
        rows answered from elsewhere (the answer journal) were never batched here and are left out.
        """
        batched = [row for row in rows if row.id in self._outputs]
        self._alone.update(self.generate_rows(batched, batch_size=1))

    def alone_answer(self, row: Row) -> Answer | None:
        """The row's output when generated alone (`generate_alone`), or None if it was not."""
        output = self._alone.get(row.id)
        return None if output is None else self.answer_from(output)

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
        self.report_progress(0, len(rows))
        engine = engine or self.engine
        if engine == "continuous" and batch_size is None and rows:
            return self.generate_continuous(rows)
        todo = sorted(zip(rows, self.encode_many(rows)), key=lambda item: (-len(item[1]), item[0].id))
        if engine == "static":
            return self.generate_static(todo, batch_size or self.batch_size)
        return self.generate_padded(todo, batch_size or self.batch_size)

    def generate_chats(self, chats: Sequence[Sequence[Mapping[str, str]]]) -> list[GeneratedRow]:
        """One greedy reply per chat (role/content messages), each rendered with the checkpoint's chat template, all
        generated in one batched call (the static engine, else padded batches). A chat whose prompt leaves no room
        for `max_new_tokens` in the model's context is not generated: its reply is empty, `finish_reason` "context_length".
        """
        if not chats:
            return []
        texts = [self.tokenizer.apply_chat_template(list(chat), add_generation_prompt=True, tokenize=False) for chat in chats]
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        room = int(getattr(self.model.config, "max_position_embeddings", 0) or 0) - self.max_new_tokens
        rows = [Row(f"chat-{index:05d}", index, str(self.track), "", "") for index in range(len(chats))]
        todo = sorted(
            ((row, ids) for row, ids in zip(rows, encoded) if room <= 0 or len(ids) <= room), key=lambda item: (-len(item[1]), item[0].id)
        )
        generate = self.generate_static if self.engine == "static" else self.generate_padded
        outputs = generate(todo, self.batch_size) if todo else {}
        return [outputs.get(row.id) or GeneratedRow("", "context_length", len(ids), 0, 0.0) for row, ids in zip(rows, encoded)]

    def answer(self, row: Row) -> Answer:
        output = self._outputs.get(row.id)
        if output is None:
            raise KeyError(f"row {row.id} was not generated: pass every row to prepare() before answer()")
        return self.answer_from(output)

    def answer_from(self, output: GeneratedRow) -> Answer:
        usage = {
            "prompt_tokens": output.prompt_tokens,
            "completion_tokens": output.completion_tokens,
            "total_tokens": output.prompt_tokens + output.completion_tokens,
        }
        return Answer(text=output.text, latency_s=output.latency_s, finish_reason=output.finish_reason, usage=usage)

    def describe(self) -> dict[str, Any]:
        return {
            "model_path": str(self.model_path),
            "base": checkpoint_identity(self.model_path),
            "adapter": str(self.adapter) if self.adapter is not None else None,
            "track": self.track,
            "quantization": describe_quantization(self.quantization, self.dtype),
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
                # only when on: the default mode's description (and so its answer journal's name) stays as it was
                **({"batch_invariant": True} if self.batch_invariant else {}),
                "stop": "end-of-turn token or max_new_tokens",
                "dequantized_weight_gib": round(self.dequantized_peak / 2**30, 2),
                "fused_kernels": self.fused_kernels,
                "cuda_graphs_failed": self._static.graphs_failed if self._static is not None else None,
            },
            # counts, not settings, and absent until the static engine has run: the answer journal's identity (the
            # description before any generation) is the same with prefix reuse on or off, as the text is
            **({"prefill": self.prefill_counts()} if self._static is not None else {}),
            "versions": package_versions(),
        }

    def prefill_counts(self) -> dict[str, Any]:
        """The static engine's prompt tokens prefilled and taken from kept prefixes, and its prefix store's state."""
        counters, kept = self._static.counters, self._static.prefixes
        return {
            "prefix_reuse": kept is not None,
            "prefill_tokens": counters.prefilled,
            "reused_tokens": counters.reused,
            **(kept.describe() if kept is not None else {}),
        }

    def close(self) -> None:
        self._static = None
        self.model = None
        self._outputs.clear()
        self._alone.clear()
        self.release_memory()
