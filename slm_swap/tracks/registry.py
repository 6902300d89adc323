"""Which tracks exist, by name: the one place a track's implementation is looked up.

Each name maps to the module of its implementation of `slm_swap.tracks.protocol.Track`, imported on first use:
a run of the row tracks never loads the agent track's sandbox or BFCL's checker, and this module sits low in the
layers (it imports no implementation), so the harness, the gate, the decision and the report can ask it without
importing anything above them. The constants a low layer needs (names, core metrics) come from the tracks'
definitions, which are as low as this module.
"""

from __future__ import annotations

import functools
import importlib

from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.protocol import Track, TrackDefinition
from slm_swap.tracks.rows.definitions import TRACKS as ROW_TRACKS

# name -> module whose `track(name)` builds the implementation; the row tracks share one implementation
IMPLEMENTATIONS: dict[str, str] = {
    **{name: "slm_swap.tracks.rows.track" for name in ROW_TRACKS},
    AGENT.name: "slm_swap.tracks.agent.track",
}
DEFINITIONS: dict[str, TrackDefinition] = {**ROW_TRACKS, AGENT.name: AGENT}


def track_names() -> tuple[str, ...]:
    """Every track's name, in the registry's order (the row tracks first)."""
    return tuple(IMPLEMENTATIONS)


@functools.cache
def get_track(name: str) -> Track:
    """The track called `name`; ValueError names the tracks there are."""
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown track {name!r}; expected one of {track_names()}")
    return importlib.import_module(IMPLEMENTATIONS[name]).track(name)


def definition(name: str) -> TrackDefinition:
    """A track's name, core metrics, paired checks and reported metrics, without loading its implementation."""
    if name not in DEFINITIONS:
        raise ValueError(f"unknown track {name!r}; expected one of {track_names()}")
    return DEFINITIONS[name]


def core_metrics(name: str) -> tuple[str, ...]:
    """The rates the decision and the gate compare."""
    return definition(name).core_metrics


def paired_checks(name: str) -> tuple[str, ...]:
    """The per-case flags two runs of a track are paired on."""
    return definition(name).checks


def reported_metrics(name: str) -> tuple[str, ...]:
    """Rates reported beside the verdict that enter no rule (none for a row track)."""
    return definition(name).reported_metrics
