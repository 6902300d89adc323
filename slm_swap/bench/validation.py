"""What the router's validator adds to a request: the time to read the offered signatures from the prompt and check
one reply against them, per request, over every row of the committed test splits.

Two replies per row: the gold completion (accepted: every rule runs to the end) and a prose reply (rejected at the
format check). Times are `time.perf_counter_ns` around `validate_prompt_answer`, the call the routed model makes;
the served endpoint makes the same check (`validate`) once it has the request's tools, which reading them from the
prompt dominates (`read_s` is that part alone).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slm_swap.data.rows import Row, load_rows
from slm_swap.layout import split_path
from slm_swap.prompts import offered_tools
from slm_swap.tracks.rows.definitions import TRACK_NAMES
from slm_swap.validation.validator import validate_prompt_answer

PROSE = "I am not sure which function to call."


def timed_us(call, repeats: int) -> list[float]:
    """The per-call time of `call()` in microseconds, `repeats` times (the first of each row included: no warm-up)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        call()
        times.append((time.perf_counter_ns() - started) / 1000)
    return times


def summary(times: Sequence[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_us": round(statistics.median(ordered), 1),
        "p99_us": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max_us": round(ordered[-1], 1),
    }


def bench_rows(track: str, rows: Sequence[Row], repeats: int) -> dict[str, Any]:
    accepted, rejected, read = [], [], []
    for row in rows:
        accepted += timed_us(lambda row=row: validate_prompt_answer(track, row.prompt, row.completion), repeats)
        rejected += timed_us(lambda row=row: validate_prompt_answer(track, row.prompt, PROSE), repeats)
        read += timed_us(lambda row=row: offered_tools(track, row.prompt), repeats)
    return {
        "rows": len(rows),
        "prompt_chars_median": statistics.median(len(row.prompt) for row in rows),
        "gold_reply": summary(accepted),
        "prose_reply": summary(rejected),
        "reading_the_signatures": summary(read),
    }


def bench_validation(dataset_dir: Path, repeats: int = 20) -> dict[str, Any]:
    tracks = {track: bench_rows(track, load_rows(split_path(dataset_dir, track, "test"), track), repeats) for track in TRACK_NAMES}
    return {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "repeats_per_row": repeats,
        "tracks": tracks,
    }
