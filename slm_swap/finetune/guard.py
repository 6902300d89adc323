"""What must hold before a training run starts: the decision marks the track, the adapter folder is free.

Both checks run before any model is loaded, so a refused run costs nothing.
The adapter is built in a hidden staging folder beside its target and renamed into
place at the end: a reader finds the old adapter or the complete new one, never half.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from slm_swap.backends.checkpoints import replace_folder
from slm_swap.tracks.registry import track_names


class FinetuneRefused(RuntimeError):
    """The run must not start; the message says why and what to do instead."""


def decided_arm(track: str) -> tuple[str, str] | None:
    """(track, arm) of a training set named `<track>_<arm>` (the agent track's `agent_<arm>`: one arm's
    trajectories, decided per arm), else None."""
    for name in track_names():
        if track.startswith(f"{name}_"):
            return name, track[len(name) + 1 :]
    return None


def decision_entry(tracks: dict, track: str) -> object:
    """The decision that governs `track`: its own entry, or for `<track>_<arm>` that track's (decided per arm)."""
    arm = decided_arm(track)
    return tracks.get(track) if track in tracks or arm is None else tracks.get(arm[0])


def check_decision(decision_path: Path, track: str, force: bool) -> str:
    """Why training this track is allowed; raises FinetuneRefused when the decision does not mark it."""
    if force:
        return "--force (decision.json not consulted)"
    hint = f"run `python tools/decide.py` first, or pass --force to train {track} anyway"
    try:
        document = json.loads(decision_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FinetuneRefused(f"{decision_path} does not exist, so no decision marks {track} for fine-tuning; {hint}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise FinetuneRefused(f"{decision_path}: unreadable decision file ({exc}); {hint}") from None
    tracks = document.get("tracks") if isinstance(document, dict) else None
    entry = decision_entry(tracks, track) if isinstance(tracks, dict) else None
    if not isinstance(entry, dict) or "fine_tune" not in entry:
        raise FinetuneRefused(f"{decision_path} holds no decision for track {track!r}; {hint}")
    decided = decided_arm(track) if track not in tracks else None
    if decided is not None and entry.get("arm") != decided[1]:
        name, arm = decided
        raise FinetuneRefused(
            f"{decision_path} decides the {name} track's {entry.get('arm')!r} arm, not {arm!r}; "
            f"run `python tools/decide.py --tracks {name} --arm {arm} --output FILE` and pass --decision FILE, or --force"
        )
    if entry["fine_tune"] not in (1, True):
        delta = document.get("delta", entry.get("delta"))
        raise FinetuneRefused(
            f"{decision_path} says fine_tune=0 for {track}: the SLM is within delta={delta} of the hosted model on every core metric, "
            f"so fine-tuning is not needed; pass --force to train it anyway"
        )
    reasons = "; ".join(str(r) for r in entry.get("reasons", [])) or "fine_tune=1"
    return f"{decision_path}: {reasons}"


def check_output_free(adapter_dir: Path, overwrite: bool) -> None:
    if adapter_dir.exists() and not overwrite:
        raise FinetuneRefused(f"{adapter_dir} already exists and is kept; pass --overwrite to replace it after the new run succeeds")


def make_staging(adapter_dir: Path) -> Path:
    adapter_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{adapter_dir.name}.", suffix=".partial", dir=adapter_dir.parent))


def publish(staging: Path, adapter_dir: Path, overwrite: bool) -> None:
    """Rename the finished staging folder into place; an old adapter goes only with --overwrite."""
    check_output_free(adapter_dir, overwrite)  # again: another run may have finished meanwhile
    staging.chmod(0o755)  # mkdtemp makes it private; the adapter is an ordinary folder
    replace_folder(staging, adapter_dir)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
