"""Which pipeline steps can be skipped: a step is done when its outputs exist for the same inputs.

Each finished step records a fingerprint (sha256 over its inputs: file hashes,
model identities, sizes) and its outputs in `pipeline_state.json`. A later run
skips the step only when the fingerprint matches and every output still exists.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.files import sha256_file, write_json_atomic
from slm_swap.formats.jsontext import canonical_bytes


def fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(inputs)).hexdigest()


def file_hash_or_missing(path: Path) -> str:
    return sha256_file(path) if path.exists() else "missing"


def folder_hash(path: Path) -> str:
    """A hash over every file of a folder (an adapter, a checkpoint's small files)."""
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


@dataclass
class PipelineState:
    path: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> PipelineState:
        try:
            steps = json.loads(path.read_text(encoding="utf-8")).get("steps", {})
        except (FileNotFoundError, json.JSONDecodeError):
            steps = {}
        return cls(path, steps)

    def is_done(self, step: str, inputs_fingerprint: str) -> bool:
        entry = self.steps.get(step)
        if not entry or entry.get("fingerprint") != inputs_fingerprint:
            return False
        return all(Path(p).exists() for p in entry.get("outputs", []))

    def mark_done(self, step: str, inputs_fingerprint: str, outputs: list[Path], wall_s: float) -> None:
        self.steps[step] = {"fingerprint": inputs_fingerprint, "outputs": [str(p) for p in outputs], "wall_s": round(wall_s, 2)}
        write_json_atomic(self.path, {"steps": self.steps})

    def wall_times(self) -> dict[str, float]:
        return {step: entry.get("wall_s", 0.0) for step, entry in self.steps.items()}
