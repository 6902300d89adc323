"""The row tracks, written once: each one's name, checks, core metrics, scorer and gold formatter.

Low in the layers (scoring, routing and the validator ask it); the row tracks' side of the track protocol is
`slm_swap.tracks.rows.track`. Adding a row track means a `Track` here, its instruction in `prompts.json` and an
`evals/test_<track>.py`; everything else (the plugin's row ids, metric files, the decision, the report) asks the
track registry (`slm_swap.tracks.registry`).
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

    case_noun = "row"
    missing_hosted_hint = ""  # a row track's hosted side is always evaluated under its own name

    @property
    def reported_metrics(self) -> tuple[str, ...]:
        """A row track reports nothing beside its core metrics."""
        return ()


STRUCTURED = Track("structured", STRUCTURED_CHECKS, score_structured, format_structured_call)
TOOLCALL = Track("toolcall", TOOLCALL_CHECKS, score_toolcall, format_tool_call)
TRACKS: dict[str, Track] = {track.name: track for track in (STRUCTURED, TOOLCALL)}
TRACK_NAMES: tuple[str, ...] = tuple(TRACKS)


def get_track(name: str) -> Track:
    try:
        return TRACKS[name]
    except KeyError:
        raise ValueError(f"unknown track {name!r}; expected one of {TRACK_NAMES}") from None
