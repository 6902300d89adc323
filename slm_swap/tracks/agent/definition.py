"""The agent track's name and metrics, low in the layers: the split folder, the metric files' prefix, the rates.

The agent track is not a row track: one case per BFCL multi-turn task, run as an episode and scored by BFCL's
multi-turn checker. Its side of the track protocol is `slm_swap.tracks.agent.track`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgentTrack:
    """The agent track: its name (also the split folder, the metric files' prefix) and the metrics the decision compares."""

    name: str
    core_metrics: tuple[str, ...]  # the verdict's and the gate's: exactly the rates two runs can be paired on
    # in the metric file, the decision and the report beside the verdict, never in a rule: valid_action_rate counts
    # actions, which two models take different numbers of, so no row of one run pairs with a row of the other
    reported_metrics: tuple[str, ...]
    # the flags two runs are paired on (`<check>_rate`): task success by task, turn success by turn
    checks: tuple[str, ...] = ("task_success", "turn_success")
    case_noun: str = "task"
    # the Phase II loop's demo (and --teacher gold) evaluates the gold policy as the hosted side, not azure
    missing_hosted_hint: str = "after `tools/pipeline.py --phase2 --demo` the hosted side is `gold`: add `--hosted-model gold`"


AGENT = AgentTrack("agent", ("task_success_rate", "turn_success_rate"), ("valid_action_rate",))
