"""The one interface every model shares: hosted, local SLM, replay and test fakes.

A model answers rows. Batched models (the local SLM) get every selected row up
front through `prepare`, generate them in batches, and `answer` then only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from slm_swap.data.rows import Row
from slm_swap.scoring.outcomes import ErrorClass, parse_error_class


@dataclass
class Answer:
    """One model reply. `text` is None exactly when the call failed (`error` says why)."""

    text: str | None
    latency_s: float = 0.0
    error: str | None = None
    error_class: ErrorClass | str | None = None  # a str only for a class another version recorded
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    cached: bool = False
    started_at: float = 0.0  # unix seconds; set by the harness when the model does not

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["error_class"] = str(self.error_class) if self.error_class is not None else None
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Answer:
        error_class = record.get("error_class")
        return cls(**{**record, "error_class": parse_error_class(error_class) if error_class else None})


class Model(Protocol):
    name: str

    def describe(self) -> dict[str, Any]:
        """Identity and settings recorded in the metric file (never secrets)."""
        ...

    def prepare(self, rows: Sequence[Row]) -> None:
        """Called once with every selected row before the first `answer`."""
        ...

    def answer(self, row: Row) -> Answer: ...

    def close(self) -> None: ...
