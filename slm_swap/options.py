"""The run choices that several commands share, each written once: its flag, default, help and where it applies.

The pytest plugin (`harness/settings.py`), the commands (`slm_swap/cli/`), the pipeline and the episode runner read
them here instead of restating a number. A rule such as "--max-connections is for the hosted model" sits on the
option it constrains (`Applies`): the option's help says it, the plugin checks it and the pipeline follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Applies:
    """Where an option has effect: the other flags' values it needs (True for a switch), and why.

    `checked`: the plugin refuses the option away from its default when these do not hold; an unchecked rule is
    only said (the hosted model's `--max-connections` has a default every run carries).
    """

    needs: tuple[tuple[str, Any], ...]
    why: str = ""
    checked: bool = True

    def words(self) -> str:
        flags = " and ".join(flag if value is True else f"{flag}={value}" for flag, value in self.needs)
        return flags + (f": {self.why}" if self.why else "")

    def holds(self, value_of: Callable[[str], Any]) -> bool:
        return all(value_of(flag) == value for flag, value in self.needs)


@dataclass(frozen=True)
class Option:
    flag: str
    default: Any
    help: str
    applies: Applies | None = None

    def described(self) -> str:
        """The help with its rule, as every parser that offers the option prints it."""
        return self.help if self.applies is None else f"{self.help}; only with {self.applies.words()}"

    def refusal(self, value_of: Callable[[str], Any]) -> str | None:
        """The usage error when the option is set where its rule does not hold, else None."""
        rule = self.applies
        if rule is None or not rule.checked or value_of(self.flag) == self.default or rule.holds(value_of):
            return None
        return f"{self.flag} needs {rule.words()}"


DELTA = Option("--delta", 0.02, "the largest gap hosted - SLM on a core metric that still counts as a match")
MAX_NEW_TOKENS = Option("--max-new-tokens", 256, "output-token cap, the same for every model")
MAX_STEPS_PER_TURN = Option("--max-steps-per-turn", 10, "agent track: replies that act per user turn at most; the episode stops there")
MAX_ACTIVE = Option("--max-active", 16, "agent track: episodes (sandbox processes) open at once, the SLM's batch per step")
MAX_CONNECTIONS = Option(
    "--max-connections",
    8,
    "hosted requests in flight at most, in one process; 1 asks one row at a time",
    Applies((("--model", "azure"),), "the other models answer in batches or from files", checked=False),
)
BATCH_INVARIANT = Option(
    "--batch-invariant",
    False,
    "a row's tokens do not depend on its batch (one-row prefill, row-tiled decode matmuls, per-row attention)",
    Applies((("--model", "slm"), ("--engine", "static")), "only the static engine keeps rows apart"),
)
CHECK_BATCH_INVARIANCE = Option(
    "--check-batch-invariance",
    0,
    "after the batched run, generate K selected rows (evenly spaced) again one at a time and record text and flag flips",
    Applies((("--model", "slm"),), "only the local SLM generates rows in batches"),
)
SAMPLES = Option(
    "--samples",
    0,
    "agent track: sampled trajectories per task at --temperature, beside the greedy one",
    Applies((("--capture-trajectories", True), ("--model", "azure")), "only the hosted teacher is sampled"),
)
RULED = (MAX_CONNECTIONS, BATCH_INVARIANT, CHECK_BATCH_INVARIANCE, SAMPLES)
