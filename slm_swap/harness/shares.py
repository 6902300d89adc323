"""Which rows this process will run next: all selected rows, or under pytest-xdist the worker's queue.

A worker learns its share as it goes (xdist's load scheduling sends each worker more items as it
drains), so a model that answers rows up front asks here each time it meets a row it has not answered.
The queue is read from xdist's `WorkerInteractor` (its `item_index`, `nextitem_index` and `torun`),
which is not public API: where it cannot be read, a worker answers one row at a time, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pytest

from slm_swap.data.rows import Row

Case = TypeVar("Case", bound=Any)  # a track's case: a row, an agent task; each has an `id`


def worker_interactor(config: pytest.Config) -> object | None:
    if not hasattr(config, "workerinput"):
        return None
    return next((p for p in config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"), None)


def queued_indices(interactor: object) -> list[int]:
    """Indices into session.items: the item running now, the next one, then the queue."""
    indices = [getattr(interactor, "item_index", None), getattr(interactor, "nextitem_index", None)]
    queue = getattr(interactor, "torun", None)
    if queue is not None and hasattr(queue, "lock"):
        with queue.lock() as items:
            indices.extend(items)
    return [index for index in indices if isinstance(index, int)]


def track_cases(items: Sequence[pytest.Item], track: str, param: str, kind: type[Case]) -> list[Case]:
    """The cases (the `param` parameters: `row`, `task`) of the items in a track's evals module, in order, once each."""
    cases: dict[str, Case] = {}
    for item in items:
        if getattr(getattr(item, "module", None), "TRACK", None) == track and hasattr(item, "callspec"):
            case = item.callspec.params.get(param)
            if isinstance(case, kind) and not item.get_closest_marker("skip"):
                cases.setdefault(case.id, case)
    return list(cases.values())


def items_to_run(session: pytest.Session) -> list[pytest.Item]:
    """Every selected item; in an xdist worker, the items queued to it now."""
    interactor = worker_interactor(session.config)
    if interactor is None:
        return list(session.items)
    items = session.items
    return [items[i] for i in queued_indices(interactor) if 0 <= i < len(items)]


def rows_to_run(session: pytest.Session, track: str) -> list[Row]:
    """Every selected row of the track; in an xdist worker, the rows queued to it now."""
    return track_cases(items_to_run(session), track, "row", Row)
