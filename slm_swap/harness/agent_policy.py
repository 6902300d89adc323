"""The agent track's policy per `--model`: what answers each step's requests across all open episodes.

`gold` is the ground truth's next calls with a fixed labelled thought (`slm_swap.agent.gold`), never a model;
`replay` needs no policy (`episodes.EpisodePool` hands back stored trajectories).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slm_swap.agent.episode import Policy
from slm_swap.agent.gold import gold_policy
from slm_swap.harness.factory import ModelSetupError
from slm_swap.harness.settings import EvalSettings


def nothing_to_close() -> None:
    return None


def build_policy(settings: EvalSettings, environ: Mapping[str, str]) -> tuple[Policy, dict[str, Any], Callable[[], None]]:
    """(policy, its description for the metric file, what to call when the run ends)."""
    if settings.model == "gold":
        description = {"name": "gold", "note": "ground-truth calls with a fixed labelled thought; not a model"}
        return gold_policy(settings.arm, settings.max_steps_per_turn), description, nothing_to_close
    raise ModelSetupError(f"--model={settings.model} does not answer the agent track")
