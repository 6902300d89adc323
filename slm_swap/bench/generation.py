"""Timing the local SLM: batched against one-row-at-a-time generation, peak memory, and flips.

Every timed run forces the same number of new tokens (min = max), so batched and
single runs do the same work and only the batching differs. Greedy decoding can
still pick other tokens when padding and batch shape change the arithmetic; the
flip count says how many rows' outputs differ between the two, and two batched
runs must agree byte for byte.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slm_swap.backends.local_slm import LocalSLM
from slm_swap.backends.slm_engines import GeneratedRow
from slm_swap.data.rows import Row

# Phi-4-mini-instruct's architecture (../shared/GPU.md); speed does not depend on the weight values.
PHI4_MINI_SHAPE = {
    "hidden_size": 3072,
    "num_hidden_layers": 32,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 200064,
    "partial_rotary_factor": 0.75,
    "tie_word_embeddings": True,
    "max_position_embeddings": 131072,
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


@dataclass
class RunTiming:
    rows: int
    seconds: float
    rows_per_s: float
    new_tokens_per_s: float
    mean_new_tokens: float
    peak_memory_gib: float
    batch_sizes: list[int]
    batches: list[dict[str, Any]]  # static engine: rows, slots, prefill and decode seconds of each batch


@dataclass
class TrackResult:
    track: str
    rows: int
    prompt_tokens_mean: float
    prompt_tokens_max: int
    batched: RunTiming
    batched_again_identical: bool
    single: RunTiming
    speedup: float
    flips: int
    flip_rate: float


def build_random_phi4_mini(out: Path, tokenizer_dir: Path) -> Path:
    """A random-weight Phi-4-mini checkpoint folder, built on the GPU in bf16, with a borrowed tokenizer.

    The tokenizer's ids must fit the vocabulary (SmolLM2's 49k do); its token counts are what
    the prompts cost.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Phi3Config

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = Phi3Config(
        **PHI4_MINI_SHAPE, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"{tokenizer_dir}: tokenizer has {len(tokenizer)} tokens, more than the model's {config.vocab_size}")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy2(tokenizer_dir / name, out / name)
    return out


def reset_peak_memory(slm: LocalSLM) -> None:
    import torch

    if slm.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(slm.device)


def peak_memory_gib(slm: LocalSLM) -> float:
    """Peak allocated accelerator memory since the last reset; on CPU the process's peak resident set."""
    import torch

    if slm.device.type == "cuda":
        return torch.cuda.max_memory_allocated(slm.device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def timed_run(
    slm: LocalSLM, rows: Sequence[Row], batch_size: int | None, engine: str | None = None
) -> tuple[dict[str, GeneratedRow], RunTiming]:
    reset_peak_memory(slm)
    before = len(slm.batch_sizes)
    timings_before = len(slm.batch_timings)
    started = time.perf_counter()
    outputs = slm.generate_rows(rows, batch_size=batch_size, engine=engine)
    seconds = time.perf_counter() - started
    new_tokens = sum(output.completion_tokens for output in outputs.values())
    timing = RunTiming(
        len(rows),
        seconds,
        len(rows) / seconds,
        new_tokens / seconds,
        new_tokens / len(rows),
        peak_memory_gib(slm),
        sorted(set(slm.batch_sizes[before:])),
        slm.batch_timings[timings_before:],
    )
    return outputs, timing


def count_flips(first: dict[str, GeneratedRow], second: dict[str, GeneratedRow]) -> int:
    return sum(1 for row_id in second if first[row_id].text != second[row_id].text)


def bench_track(slm: LocalSLM, rows: Sequence[Row], single_rows: int) -> TrackResult:
    """Two batched runs over all rows, then the first `single_rows` rows one at a time with plain `generate`."""
    prompt_lengths = [len(ids) for ids in slm.encode_many(rows)]
    slm.generate_rows(rows[:1], batch_size=1)  # warm-up: kernels, allocator, lazy initialisation
    slm.generate_rows(rows[:1], batch_size=1, engine="padded")
    batched, batched_timing = timed_run(slm, rows, None)
    again, _ = timed_run(slm, rows, None)
    identical = all(batched[row.id].text.encode() == again[row.id].text.encode() for row in rows)
    single, single_timing = timed_run(slm, rows[:single_rows], 1, engine="padded")
    flips = count_flips(batched, single)
    return TrackResult(
        track=rows[0].track,
        rows=len(rows),
        prompt_tokens_mean=round(statistics.fmean(prompt_lengths), 1),
        prompt_tokens_max=max(prompt_lengths),
        batched=batched_timing,
        batched_again_identical=identical,
        single=single_timing,
        speedup=batched_timing.rows_per_s / single_timing.rows_per_s,
        flips=flips,
        flip_rate=flips / len(single),
    )


def summarize(results: list[TrackResult]) -> dict[str, Any]:
    rows = sum(r.batched.rows for r in results)
    batched_s = sum(r.batched.seconds for r in results)
    single_s_per_row = sum(r.single.seconds for r in results) / sum(r.single.rows for r in results)
    return {
        "rows": rows,
        "batched_rows_per_s": rows / batched_s,
        "single_rows_per_s": 1 / single_s_per_row,
        "speedup": (rows / batched_s) * single_s_per_row,
        "all_batched_reruns_identical": all(r.batched_again_identical for r in results),
        "flips": sum(r.flips for r in results),
        "flip_rows_compared": sum(r.single.rows for r in results),
        "tracks": [asdict(r) for r in results],
    }


def markdown_table(results: list[TrackResult]) -> str:
    lines = [
        "| track | rows | prompt tokens (mean/max) | batched rows/s | new tokens/row | batch sizes "
        "| one-at-a-time rows/s | speedup | peak GiB (batched/single) | reruns identical | flips |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.track} | {r.rows} | {r.prompt_tokens_mean:.0f}/{r.prompt_tokens_max} "
            f"| {r.batched.rows_per_s:.2f} | {r.batched.mean_new_tokens:.1f} | "
            f"{', '.join(map(str, r.batched.batch_sizes)) or 'continuous'} "
            f"| {r.single.rows_per_s:.3f} ({r.single.rows} rows) | {r.speedup:.0f}x | "
            f"{r.batched.peak_memory_gib:.2f}/{r.single.peak_memory_gib:.2f} | {'yes' if r.batched_again_identical else 'NO'} | "
            f"{r.flips}/{r.single.rows} |"
        )
    return "\n".join(lines)
