"""What an evaluation process does once, at start, to spend less of a run outside its rows.

Measured on the 2-core development machine (docs/benchmarks.md, hosted benchmark): pytest's five gc passes at
exit walked every object imported at start (0.24 s of a 9 s hosted run), and hypothesis' pytest plugin imported
hypothesis at exit for its summary (0.22 s) in runs that hold no property-based test.
"""

from __future__ import annotations

import gc

import pytest

HYPOTHESIS_PLUGIN = "hypothesispytest"  # the name hypothesis registers its pytest plugin under (its pytest11 entry point)
_frozen = False


def freeze_startup_objects() -> None:
    """Move everything imported so far (pytest, openai's and langfuse's type trees: alive until exit anyway) out of
    the collector's generations, so no full collection walks it again. Once per process: pytester runs further
    sessions inside the project's own test process, and freezing at each would keep every earlier one's objects."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


def block_unused_plugins(config: pytest.Config) -> None:
    config.pluginmanager.set_blocked(HYPOTHESIS_PLUGIN)
