"""The one interface every model shares: hosted, local SLM, replay and test fakes.

Every `--model` is an `Answerer` (named, described, closed; `slm_swap.harness.factory.ANSWERERS` builds them);
a `Model` is an answerer of rows, and the agent track adapts the answerer to its step policy. Batched models (the
local SLM) get every selected row up front through `prepare`, generate them in batches, and `answer` then only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from slm_swap.backends.retry import CircuitOpen
from slm_swap.data.rows import DatasetError, Row
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


class Answerer(Protocol):
    """Whatever answers a run (`--model`), whether it answers rows or an agent's steps: named, described, closed."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Identity and settings recorded in the metric file (never secrets)."""
        ...

    def close(self) -> None: ...


class Model(Answerer, Protocol):
    """An answerer of rows."""

    def prepare(self, rows: Sequence[Row]) -> None:
        """Called once with every selected row before the first `answer`."""
        ...

    def answer(self, row: Row) -> Answer: ...


class HarnessError(RuntimeError):
    """A row's answer failed inside the harness itself, twice: neither the model's reply nor the network (those come
    back as error Answers). The run stops with the cause instead of scoring the row as the model's failure."""


def answer_row(model: Model, row: Row) -> Answer:
    """`model.answer(row)`, asked once more if it raised; `HarnessError` naming the row and the cause if it raised again.

    A model never raises for a failed call (the row comes back as an error Answer), so an exception here is the
    harness's own: once, such as a race between threads, it is worth one more try; twice, it is a fault to stop on.
    `CircuitOpen` (an outage), `DatasetError` (bad input: replay lacks the row) and a `HarnessError` met before pass
    through unchanged."""
    try:
        return model.answer(row)
    except (CircuitOpen, DatasetError, HarnessError):
        raise
    except Exception:
        pass
    try:
        return model.answer(row)
    except (CircuitOpen, DatasetError, HarnessError):
        raise
    except Exception as exc:
        raise HarnessError(f"row {row.id} ({row.track}): {type(exc).__name__}: {exc} (raised twice by the harness)") from exc
