"""The tracks, written once: each track's name, checks, core metrics, scorer and gold formatter.

The agent track (`AGENT`) is not a row track: one case per BFCL multi-turn task, run as an episode and
scored by `slm_swap.agent.scoring`; it names its core metrics here and nothing else, so it is not in `TRACKS`.

Adding a row track means a `Track` here, its instruction in `prompts.json` and an `evals/test_<track>.py`;
everything else (the plugin's row ids, metric files, the decision, the report) asks this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slm_swap.formats.toolcall import format_structured_call, format_tool_call
from slm_swap.scoring.scorers import STRUCTURED_CHECKS, TOOLCALL_CHECKS, RowResult, score_structured, score_toolcall


@dataclass(frozen=True)
class Track:
    name: str
    checks: tuple[str, ...]
    score: Callable[[str | None, str], RowResult]
    format_call: Callable[[str, dict[str, Any]], str]

    @property
    def core_metrics(self) -> tuple[str, ...]:
        """The rates the decision and the gate compare: one per check."""
        return tuple(f"{check}_rate" for check in self.checks)


STRUCTURED = Track("structured", STRUCTURED_CHECKS, score_structured, format_structured_call)
TOOLCALL = Track("toolcall", TOOLCALL_CHECKS, score_toolcall, format_tool_call)
TRACKS: dict[str, Track] = {track.name: track for track in (STRUCTURED, TOOLCALL)}
TRACK_NAMES: tuple[str, ...] = tuple(TRACKS)


def get_track(name: str) -> Track:
    try:
        return TRACKS[name]
    except KeyError:
        raise ValueError(f"unknown track {name!r}; expected one of {TRACK_NAMES}") from None


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


AGENT = AgentTrack("agent", ("task_success_rate", "turn_success_rate"), ("valid_action_rate",))
DECIDABLE_TRACKS: tuple[str, ...] = (*TRACK_NAMES, AGENT.name)


def core_metrics(name: str) -> tuple[str, ...]:
    """The rates the decision compares, for a row track or the agent track."""
    return AGENT.core_metrics if name == AGENT.name else get_track(name).core_metrics


def paired_checks(name: str) -> tuple[str, ...]:
    """The per-row (per-task) flags two runs of a track are paired on."""
    return AGENT.checks if name == AGENT.name else get_track(name).checks


def reported_metrics(name: str) -> tuple[str, ...]:
    """Rates the decision reports beside its verdict but never rules on (none for a row track)."""
    return AGENT.reported_metrics if name == AGENT.name else ()
