"""Loading and checking dataset rows: `{"prompt": ..., "completion": ...}` per JSONL line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.formats.jsontext import StrictJSONError, parse_strict_json
from slm_swap.formats.toolcall import count_tool_call_openings, find_tool_calls
from slm_swap.tracks.rows.definitions import TRACK_NAMES

ROW_KEYS = {"prompt", "completion"}


class DatasetError(ValueError):
    """A dataset file or one of its rows is unusable; the message names file and row."""


@dataclass(frozen=True)
class Row:
    id: str
    index: int
    track: str
    prompt: str
    completion: str


def row_id(split: str, index: int) -> str:
    return f"{split}-{index:04d}"


def check_completion(track: str, completion: str) -> str | None:
    """Return why a gold completion is not valid for its track, or None."""
    if track == "structured":
        try:
            value = parse_strict_json(completion)
        except StrictJSONError as exc:
            return f"completion is not strict JSON ({exc})"
        if not (
            isinstance(value, dict)
            and set(value) == {"name", "arguments"}
            and isinstance(value["name"], str)
            and isinstance(value["arguments"], dict)
        ):
            return 'completion is not {"name": <string>, "arguments": {...}}'
        return None
    calls = find_tool_calls(completion)
    if (
        len(calls) != 1
        or count_tool_call_openings(completion) != 1
        or completion != completion.strip()
        or not completion.startswith("<tool_call")
        or not completion.endswith("</tool_call>")
    ):
        return 'completion is not exactly one <tool_call name="...">{...}</tool_call>'
    try:
        args = parse_strict_json(calls[0].body)
    except StrictJSONError as exc:
        return f"tool call arguments are not strict JSON ({exc})"
    if not isinstance(args, dict):
        return "tool call arguments are not a JSON object"
    return None


def parse_row_line(line: str, track: str) -> tuple[str, str]:
    """Check one JSONL line; raise ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or set(record) != ROW_KEYS:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"expected exactly the keys ['completion', 'prompt'], got {keys}")
    prompt, completion = record["prompt"], record["completion"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    if not isinstance(completion, str):
        raise ValueError("completion must be a string")
    problem = check_completion(track, completion)
    if problem:
        raise ValueError(problem)
    return prompt, completion


def parse_id_record(line: str, where: str) -> dict[str, Any]:
    """One JSONL line that must be an object with a string id; `where` (file and line) starts any error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        raise DatasetError(f"{where}: expected an object with a string 'id'")
    return record


def read_lines(path: Path, what: str, hint: str = "") -> list[str]:
    """A text file's lines, or a DatasetError naming the file and saying what it should have been."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: {what} not found{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read {what} ({exc})") from exc


def load_rows(path: str | Path, track: str, split: str | None = None) -> list[Row]:
    """All rows of a JSONL split, ids `<split>-<line index>`; the split defaults to the file stem."""
    if track not in TRACK_NAMES:
        raise DatasetError(f"unknown track {track!r}")
    path = Path(path)
    split = split or path.stem
    lines = read_lines(path, "dataset file", " (run `python tools/prepare_data.py` or pass --dataset)")
    rows = []
    for index, line in enumerate(lines):
        if not line.strip():
            raise DatasetError(f"{path}: row {index} (line {index + 1}) is empty")
        try:
            prompt, completion = parse_row_line(line, track)
        except ValueError as exc:
            raise DatasetError(f"{path}: row {index} (line {index + 1}): {exc}") from None
        rows.append(Row(row_id(split, index), index, track, prompt, completion))
    if not rows:
        raise DatasetError(f"{path}: dataset has no rows")
    return rows
