"""Builds tiny evaluation projects inside pytester: the real conftest, evals and plugin, made-up rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.formats.toolcall import format_structured_call, format_tool_call
from slm_swap.prompts import build_prompt

REPO = Path(__file__).resolve().parents[1]


def make_rows(track: str, n: int) -> list[dict[str, str]]:
    rows = []
    for i in range(n):
        name, args = f"tool_{i % 3}", {"city": f"City {i}", "days": i, "metric": i % 2 == 0}
        tools = [{"name": name, "description": "a tool", "parameters": {"type": "dict", "properties": {}}}]
        prompt = build_prompt(track, f"request number {i}", tools)
        completion = format_tool_call(name, args) if track == "toolcall" else format_structured_call(name, args)
        rows.append({"prompt": prompt, "completion": completion})
    return rows


def gold_output(track: str, row: dict[str, str]) -> str:
    return row["completion"]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def make_project(pytester: pytest.Pytester, n: int = 8) -> dict[str, list[dict[str, str]]]:
    """A project with the real conftest, evals and plugin, and `n` rows per track in the test split."""
    pytester.makeini("[pytest]\naddopts = -p slm_swap.harness.plugin -p no:cacheprovider\n")
    pytester.makeconftest((REPO / "conftest.py").read_text(encoding="utf-8"))
    evals = pytester.mkdir("evals")
    for name in ("test_structured.py", "test_toolcall.py"):
        (evals / name).write_text((REPO / "evals" / name).read_text(encoding="utf-8"), encoding="utf-8")
    rows = {}
    for track in ("structured", "toolcall"):
        rows[track] = make_rows(track, n)
        write_jsonl(pytester.path / "slm_swap" / "02_dataset" / track / "test.jsonl", rows[track])
    return rows


def predictions(track: str, rows: list[dict[str, str]], wrong: set[int] = frozenset()) -> list[dict]:
    """Predictions in the harness's own format: gold answers except the rows in `wrong`."""
    out = []
    for i, row in enumerate(rows):
        text = row["completion"]
        if i in wrong:
            text = text.replace('"days":', '"day":')
        out.append({"id": f"test-{i:04d}", "track": track, "output": text})
    return out
