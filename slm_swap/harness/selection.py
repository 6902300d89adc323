"""Which cases a run evaluates beyond what -k and node ids select: the stand-in cases tracks leave behind.

A track whose dataset cannot be read leaves one case with id `dataset-error` (reported only if it is selected); a
track the command did not select (the agent track, `slm_swap.tracks.agent.run.cases`) leaves one case with id
`agent-track-not-selected`, which is deselected here, so the run's summary says `1 deselected`. The plugin module
imports the hook here, so it is registered with it.
"""

from __future__ import annotations

import pytest

BROKEN_ID = "dataset-error"  # the one case of a track whose dataset cannot be read (reported only if it is selected)
UNSELECTED_ID = "agent-track-not-selected"  # the one case of a track the command did not select


def is_unselected(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.id == UNSELECTED_ID and all(value is None for value in callspec.params.values())


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unselected = [item for item in items if is_unselected(item)]
    if unselected:
        items[:] = [item for item in items if not is_unselected(item)]
        config.hook.pytest_deselected(items=unselected)
