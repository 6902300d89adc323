"""Examples from Salesforce's xlam_function_calling_60k.json.

The file is one JSON list of rows `{"id", "query", "tools", "answers"}` where `tools`
and `answers` are JSON text inside strings. A row that breaks this shape stops the
run with its file and index; a well-formed row with other than one answer is
counted as dropped. The hub copy is gated, so downloading takes the user's token.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError
from slm_swap.data.sources import Example, SourceData
from slm_swap.files import sha256_file
from slm_swap.formats.jsontext import StrictJSONError, parse_strict_json

XLAM_REPO = "Salesforce/xlam-function-calling-60k"
XLAM_FILE = "xlam_function_calling_60k.json"
ROW_KEYS = ("id", "query", "tools", "answers")
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def download_xlam(token: str | None, cache_dir: Path | None = None) -> Path:
    """The hub file's local path; any failure becomes one DatasetError saying what to do."""
    # imported here: only this path needs the hub client, and it is slow to import
    from huggingface_hub import HfApi, hf_hub_download

    hint = "pass --xlam-path to a downloaded copy, or set HF_TOKEN to a token that has accepted the dataset's terms"
    # The metadata call fails at once when the hub is unreachable; hf_hub_download
    # alone retries for half a minute before saying the same thing.
    try:
        HfApi().dataset_info(XLAM_REPO, token=token)
        return Path(hf_hub_download(XLAM_REPO, XLAM_FILE, repo_type="dataset", token=token, cache_dir=cache_dir))
    # Network, HTTP and cache errors come from several libraries (httpx, OSError, the hub's own).
    except Exception as exc:
        raise DatasetError(f"cannot download {XLAM_FILE} from the {XLAM_REPO} dataset ({type(exc).__name__}: {exc}); {hint}") from None


def _skip_whitespace(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()


def decode_rows(text: str, path: Path) -> list[Any]:
    """Decode a top-level JSON list one element at a time, so a syntax error names its row."""
    decoder = json.JSONDecoder()
    pos = _skip_whitespace(text, 0)
    if not text.startswith("[", pos):
        raise DatasetError(f"{path}: expected a JSON list of rows")
    pos = _skip_whitespace(text, pos + 1)
    rows: list[Any] = []
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            try:
                row, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}: row {len(rows)}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
            rows.append(row)
            pos = _skip_whitespace(text, pos)
            if text.startswith(",", pos):
                pos = _skip_whitespace(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                raise DatasetError(f"{path}: row {len(rows) - 1}: expected ',' or ']' after the row")
    if _skip_whitespace(text, pos) != len(text):
        raise DatasetError(f"{path}: unexpected data after the list of rows")
    return rows


def _decode_field(row: dict[str, Any], key: str) -> Any:
    if not isinstance(row[key], str):
        raise ValueError(f"{key!r} must be a string holding JSON")
    try:
        return parse_strict_json(row[key])
    except StrictJSONError as exc:
        raise ValueError(f"{key!r} is not valid JSON ({exc})") from None


def parse_row(row: Any) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(query, tools, answers) of one row; ValueError says what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError("row is not an object")
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
        raise ValueError(f"missing key(s) {missing}")
    if not isinstance(row["id"], (int, str)) or isinstance(row["id"], bool):
        raise ValueError("'id' must be an integer or a string")
    if not isinstance(row["query"], str) or not row["query"].strip():
        raise ValueError("'query' must be a non-empty string")
    tools = _decode_field(row, "tools")
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise ValueError("'tools' must encode a list of objects with a string 'name'")
    answers = _decode_field(row, "answers")
    if not isinstance(answers, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("arguments"), dict) for a in answers
    ):
        raise ValueError('\'answers\' must encode a list of {"name": <string>, "arguments": {...}}')
    return row["query"].strip(), tools, answers


def load_xlam(path: Path) -> SourceData:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    rows = decode_rows(text, path)
    examples: list[Example] = []
    dropped: Counter[str] = Counter()
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        label = f"row {index}" + (f" (id {row['id']})" if isinstance(row, dict) and "id" in row else "")
        try:
            query, tools, answers = parse_row(row)
        except ValueError as exc:
            raise DatasetError(f"{path}: {label}: {exc}") from None
        source_id = str(row["id"])
        if source_id in seen:
            raise DatasetError(f"{path}: {label}: id already used by row {seen[source_id]}")
        seen[source_id] = index
        if len(answers) != 1:
            dropped["answers is not exactly one call"] += 1
            continue
        examples.append(Example(source_id, query, tools, answers[0]["name"], answers[0]["arguments"]))
    return SourceData("xlam", examples, len(rows), dropped, source_files={path.name: sha256_file(path)})
