"""Trajectory records: one episode of the agent track as a chat, in `docs/phase2.md`'s format.

    {"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", ...}, ...],
     "tools": [{"name": ..., "description": ..., "parameters": ...}, ...],
     "verifier": {"name": "bfcl_multi_turn_checker", "accepted": true, "failure": null, ...},
     "source": {"task_id": "multi_turn_base_12", "arm": "codeact", "model": "azure", "sample": "greedy", ...}}

A hosted teacher's `--capture-trajectories` writes them (accepted and rejected alike), gold demonstrations are
written in the same shape, `tools/build_trajectories.py` keeps the accepted ones for training, and fine-tuning
reads the records it wrote. A record's id is its task and sample (`multi_turn_base_12#greedy`), unique within a
file. Observations are `user` messages (see `slm_swap.tracks.agent.episodes.episode`); only `assistant` messages carry loss. A
record that breaks the shape stops the reader with its file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError, read_lines
from slm_swap.files import write_jsonl_atomic

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class TrajectoryRecord:
    messages: tuple[Mapping[str, str], ...]
    tools: tuple[Mapping[str, Any], ...] = ()
    verifier: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)  # task_id and arm at least; model, sample, ...

    @property
    def task_id(self) -> str:
        return str(self.source["task_id"])

    @property
    def arm(self) -> str:
        return str(self.source["arm"])

    @property
    def id(self) -> str:
        return f"{self.task_id}#{self.source.get('sample', 0)}"

    @property
    def accepted(self) -> bool:
        return self.verifier.get("accepted") is True

    @property
    def assistant_turns(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "assistant")

    @property
    def characters(self) -> int:
        return sum(len(m["content"]) for m in self.messages)

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": [dict(m) for m in self.messages],
            "tools": [dict(t) for t in self.tools],
            "verifier": dict(self.verifier),
            "source": dict(self.source),
        }


def parse_trajectory(entry: Any) -> TrajectoryRecord:
    """One record from its JSON value; ValueError says what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    messages = entry.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ValueError(f"message {index} needs a role of {', '.join(ROLES)} and string content")
    tools = entry.get("tools", [])
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ValueError("'tools' must be a list of objects")
    for key in ("verifier", "source"):
        if not isinstance(entry.get(key), dict):
            raise ValueError(f"'{key}' must be an object")
    if not isinstance(entry["verifier"].get("accepted"), bool):
        raise ValueError("'verifier' must say 'accepted': true or false")
    for key in ("task_id", "arm"):
        if not isinstance(entry["source"].get(key), str) or not entry["source"][key]:
            raise ValueError(f"'source' must name its '{key}'")
    return TrajectoryRecord(
        tuple({"role": m["role"], "content": m["content"]} for m in messages), tuple(tools), entry["verifier"], entry["source"]
    )


def read_trajectories(path: str | Path) -> list[TrajectoryRecord]:
    """Every record of a trajectories JSONL file; DatasetError names the file and line of a broken one."""
    path = Path(path)
    records: list[TrajectoryRecord] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_lines(path, "trajectories file"), start=1):
        try:
            record = parse_trajectory(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
        except ValueError as exc:
            raise DatasetError(f"{path}: line {number}: {exc}") from None
        if record.id in seen:
            raise DatasetError(f"{path}: line {number}: id {record.id!r} already used on line {seen[record.id]}")
        seen[record.id] = number
        records.append(record)
    return records


def write_trajectories(path: str | Path, records: Iterable[TrajectoryRecord]) -> None:
    write_jsonl_atomic(path, [record.to_json() for record in records])
