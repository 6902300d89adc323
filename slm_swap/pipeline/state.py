"""Which pipeline steps can be skipped: a step is done when its outputs are the ones it wrote, for the same inputs.

Each finished step records a fingerprint (sha256 over its inputs: file hashes,
model identities, sizes) and each output's hash in `pipeline_state.json`. A later run
skips the step only when the fingerprint matches and every output is still there with
the hash the step recorded: an output another run overwrote (a gate run's `--limit 2`
metric file over the pipeline's own) makes the step run again, and `why_run` says why.
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


def output_hash(path: Path) -> str:
    """A step's output as written: a file's sha256, a folder's (an adapter) over its files; "missing" when gone."""
    return folder_hash(path) if path.is_dir() else file_hash_or_missing(path)


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

    def why_run(self, step: str, inputs_fingerprint: str) -> str | None:
        """Why `step` must run, or None when its outputs are the ones it wrote for these inputs."""
        entry = self.steps.get(step)
        if not entry:
            return "no finished run of this step is recorded"
        if entry.get("fingerprint") != inputs_fingerprint:
            return "its inputs changed"
        outputs = entry.get("outputs")
        if not isinstance(outputs, dict):
            return "its outputs were recorded without their hashes"
        for path, recorded in outputs.items():
            current = output_hash(Path(path))
            if current == "missing":
                return f"{path} is missing"
            if current != recorded:
                return f"{path} changed since this step wrote it"
        return None

    def mark_done(self, step: str, inputs_fingerprint: str, outputs: list[Path], wall_s: float) -> None:
        hashes = {str(p): output_hash(Path(p)) for p in outputs}
        self.steps[step] = {"fingerprint": inputs_fingerprint, "outputs": hashes, "wall_s": round(wall_s, 2)}
        write_json_atomic(self.path, {"steps": self.steps})

    def refresh_outputs(self, step: str) -> None:
        """Record `step`'s outputs as they are now: the pipeline itself rewrote them (the decision's after-part)."""
        entry = self.steps.get(step)
        if entry and isinstance(entry.get("outputs"), dict):
            entry["outputs"] = {path: output_hash(Path(path)) for path in entry["outputs"]}
            write_json_atomic(self.path, {"steps": self.steps})

    def wall_times(self) -> dict[str, float]:
        return {step: entry.get("wall_s", 0.0) for step, entry in self.steps.items()}
