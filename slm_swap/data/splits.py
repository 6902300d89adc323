"""From a source's examples to `{structured,toolcall}/{train,val,test}.jsonl` plus `manifest.json`.

Both tracks are built from the same examples in the same order, so line i of
`structured/test.jsonl` and of `toolcall/test.jsonl` ask for the same call. The
files are written as one set: everything is built in a staging folder inside the
output folder and swapped in only when complete, so a failure leaves the previous
set as it was. Nothing in the output depends on the clock or the machine, so the
same input and seed give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError, check_completion
from slm_swap.data.sources import Example, SourceData
from slm_swap.files import jsonl_text, sha256_file
from slm_swap.formats.toolcall import format_structured_call, format_tool_call
from slm_swap.prompts import PROMPTS_FILE, build_prompt
from slm_swap.tracks.rows.definitions import TRACK_NAMES
from slm_swap.validation.validator import validate

DEFAULT_SEED = 13
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
# Moved out in this order and in in the reverse one: the manifest is the last file to
# arrive, so while a swap is under way there is no manifest claiming a complete set.
_SWAP_OUT_ORDER = (MANIFEST, *TRACK_NAMES)
_FORMATTERS = {"structured": format_structured_call, "toolcall": format_tool_call}


@dataclass(frozen=True)
class SplitSizes:
    test: int = 200
    val: int = 100
    train: int = 1000  # at most: train gets what is left after test and val


@dataclass(frozen=True)
class PreparedExample:
    example: Example
    rows: dict[str, dict[str, str]]  # track -> {"prompt": ..., "completion": ...}


def track_row(track: str, example: Example) -> dict[str, str]:
    """The example's row for one track; ValueError when its gold call does not fit the track's format."""
    completion = _FORMATTERS[track](example.name, example.arguments)
    problem = check_completion(track, completion)
    if problem:
        raise ValueError(problem)
    return {"prompt": build_prompt(track, example.user_text, example.tools), "completion": completion}


def select_usable(examples: list[Example]) -> tuple[list[PreparedExample], Counter[str]]:
    """Examples that make a valid row on both tracks, first occurrence of each request only."""
    kept: list[PreparedExample] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    for example in examples:
        if not example.user_text.strip():
            dropped["empty request text"] += 1
            continue
        # The structured prompt is built from the request text alone, so two examples with
        # the same text are the same structured prompt even when their tools differ.
        if example.user_text in seen:
            dropped["duplicate request text"] += 1
            continue
        if example.name not in {tool.get("name") for tool in example.tools}:
            dropped["answer names a tool that is not offered"] += 1
            continue
        try:
            rows = {track: track_row(track, example) for track in TRACK_NAMES}
        except ValueError:
            dropped["gold call cannot be written in a track's format"] += 1
            continue
        # A gold answer that breaks the signature it was asked under (a required parameter left out, a value off
        # its enum) would teach fine-tuning to break signatures and score the SLM against a wrong answer; the
        # router's validator is the judge, so it never rejects a gold completion of a prepared split.
        checks = (validate(track, row["completion"], example.tools) for track, row in rows.items())
        broken = next((check for check in checks if not check.accepted), None)
        if broken is not None:
            dropped[f"gold call breaks its offered signature ({broken.rejection.value})"] += 1
            continue
        seen.add(example.user_text)
        kept.append(PreparedExample(example, rows))
    return kept, dropped


def split_key(seed: int, source_id: str) -> str:
    # A hash per example, not a shuffle of the list: an example's place does not move
    # when other examples are added or removed, and no RNG version is involved.
    return hashlib.sha256(f"{seed}:{source_id}".encode()).hexdigest()


def assign_splits(examples: list[PreparedExample], seed: int, sizes: SplitSizes) -> dict[str, list[PreparedExample]]:
    ordered = sorted(examples, key=lambda p: (split_key(seed, p.example.source_id), p.example.source_id))
    needed = sizes.test + sizes.val
    if len(ordered) <= needed:
        raise DatasetError(
            f"only {len(ordered)} usable examples: test ({sizes.test}) and val ({sizes.val}) need {needed}, and train at least one more"
        )
    return {
        "test": ordered[: sizes.test],
        "val": ordered[sizes.test : needed],
        "train": ordered[needed : needed + sizes.train],
    }


def render_files(splits: dict[str, list[PreparedExample]]) -> dict[str, bytes]:
    return {
        f"{track}/{split}.jsonl": jsonl_text([p.rows[track] for p in splits[split]]).encode("utf-8")
        for track in TRACK_NAMES
        for split in SPLITS
    }


def build_manifest(
    data: SourceData,
    seed: int,
    sizes: SplitSizes,
    dropped: Counter[str],
    usable: int,
    splits: dict[str, list[PreparedExample]],
    files: dict[str, bytes],
) -> dict[str, Any]:
    counts = {split: len(splits[split]) for split in SPLITS}
    return {
        "source": data.source,
        "source_version": data.version,
        "categories": data.categories,
        "source_files": data.source_files,
        "prompts_sha256": sha256_file(PROMPTS_FILE),
        "seed": seed,
        "sizes": {"test": sizes.test, "val": sizes.val, "train": sizes.train},
        "rows_read": data.rows_read,
        "dropped": dict(sorted((data.dropped + dropped).items())),
        "usable": usable,
        "counts": counts,
        "unused": usable - sum(counts.values()),
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in files.items()},
    }


def _swap_in(staging: Path, out_dir: Path, backup: Path) -> None:
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in _SWAP_OUT_ORDER:
            if (out_dir / name).exists():
                os.replace(out_dir / name, backup / name)
                moved_out.append(name)
        for name in reversed(_SWAP_OUT_ORDER):
            os.replace(staging / name, out_dir / name)
            moved_in.append(name)
    except BaseException:
        for name in reversed(moved_in):
            os.replace(out_dir / name, staging / name)
        for name in reversed(moved_out):
            os.replace(backup / name, out_dir / name)
        raise


def write_dataset(out_dir: Path, files: dict[str, bytes]) -> None:
    """Replace the split folders and manifest in `out_dir` with `files`, all or nothing."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out_dir))
    backup = Path(tempfile.mkdtemp(prefix=".previous-", dir=out_dir))
    try:
        # Plain writes: the staging folder is what makes the set atomic, and the files
        # keep the default permissions rather than a temp file's owner-only ones.
        for name, content in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(content)
        _swap_in(staging, out_dir, backup)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(backup, ignore_errors=True)


def prepare_dataset(data: SourceData, out_dir: Path, seed: int = DEFAULT_SEED, sizes: SplitSizes = SplitSizes()) -> dict[str, Any]:
    """Build, check and write both tracks' splits; return the manifest written beside them."""
    usable, dropped = select_usable(data.examples)
    splits = assign_splits(usable, seed, sizes)
    files = render_files(splits)
    manifest = build_manifest(data, seed, sizes, dropped, len(usable), splits, files)
    files[MANIFEST] = (json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    write_dataset(out_dir, files)
    return manifest
