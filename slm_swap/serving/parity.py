"""Does the served SLM answer with the text evaluation scored? Row by row, byte for byte.

The evaluated side is `LocalSLM` as `--model=slm --quantization none --batch-invariant` runs it (the
adapter, if any, applied unmerged on the base; batch-invariant, so each row's text is the one it gets
alone, as the server answers each request alone); the served side is the endpoint that
`tools/serve.py` starts, asked through the project's hosted client exactly as
`--model=azure` would ask it. Both are greedy with the same output cap and chat
template, so the texts should match. Where one does not, the report says where the
texts part and which differences between the two set-ups can cause it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from slm_swap.backends.api import Model
from slm_swap.data.rows import Row

CONTEXT_CHARS = 40


@dataclass(frozen=True)
class ParityRow:
    id: str
    served: str | None
    evaluated: str | None
    served_finish: str | None
    evaluated_finish: str | None
    served_error: str | None = None

    @property
    def same(self) -> bool:
        return self.served_error is None and self.served is not None and self.served == self.evaluated


@dataclass(frozen=True)
class ParityReport:
    rows: list[ParityRow]
    served: dict[str, Any]
    evaluated: dict[str, Any]

    @property
    def all_same(self) -> bool:
        return bool(self.rows) and all(row.same for row in self.rows)

    def to_record(self) -> dict[str, Any]:
        causes = possible_causes(self.served, self.evaluated)
        return {
            "all_same": self.all_same,
            "rows_checked": len(self.rows),
            "rows_same": sum(row.same for row in self.rows),
            "served": self.served,
            "evaluated": self.evaluated,
            "rows": [
                {**asdict(row), "same": row.same, **({} if row.same else {"difference": describe_difference(row, causes)})}
                for row in self.rows
            ],
        }


def check_parity(rows: Sequence[Row], served_model: Model, evaluated_model: Model, served_setup: dict[str, Any]) -> ParityReport:
    """Ask both models every row; the evaluated model generates them all first, as evaluation does.

    `served_setup` says what the server runs (checkpoint, dtype, quantisation, request settings),
    which its client cannot see; the client's own description is kept under "client".
    """
    evaluated_model.prepare(rows)
    served_model.prepare(rows)
    results = []
    for row in rows:
        served, evaluated = served_model.answer(row), evaluated_model.answer(row)
        results.append(ParityRow(row.id, served.text, evaluated.text, served.finish_reason, evaluated.finish_reason, served.error))
    return ParityReport(results, {**served_setup, "client": served_model.describe()}, evaluated_model.describe())


def first_difference(a: str, b: str) -> int:
    """Index of the first character where the texts differ (the shorter length when one extends the other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def describe_difference(row: ParityRow, causes: list[str]) -> dict[str, Any]:
    if row.served_error is not None or row.served is None:
        return {"where": "the served request failed", "error": row.served_error, "possible_causes": []}
    evaluated = row.evaluated or ""
    at = first_difference(row.served, evaluated)
    start = max(0, at - CONTEXT_CHARS)
    return {
        "where": f"character {at}",
        "served_from_there": row.served[start : at + CONTEXT_CHARS],
        "evaluated_from_there": evaluated[start : at + CONTEXT_CHARS],
        "finish_reasons": [row.served_finish, row.evaluated_finish],
        "possible_causes": causes,
    }


def possible_causes(served: dict[str, Any], evaluated: dict[str, Any]) -> list[str]:
    """What differs between the two set-ups; each can move a near-tie in greedy decoding."""
    causes = []
    quantization = (evaluated.get("quantization") or {}).get("method")
    if quantization not in (None, "none"):
        causes.append(f"evaluation ran {quantization} weights; the server runs unquantised weights (compare with --quantization none)")
    if served.get("dtype") and evaluated.get("dtype") and served["dtype"] != evaluated["dtype"]:
        causes.append(f"the server computes in {served['dtype']}, evaluation in {evaluated['dtype']}")
    if evaluated.get("adapter"):
        causes.append(
            f"the server runs the adapter merged into the base and stored in {served.get('merged_dtype', '16-bit')}; "
            "evaluation adds the LoRA update unmerged at run time, so the weights differ by rounding"
        )
    generation = evaluated.get("generation") or {}
    batch_sizes = generation.get("batch_sizes_used") or []
    if any(size > 1 for size in batch_sizes) and not generation.get("batch_invariant"):
        causes.append(
            f"evaluation generated left-padded batches (sizes {batch_sizes}); the server generates each request alone, "
            "so float sums can differ in their last bits"
        )
    served_cap = (served.get("request") or {}).get("max_tokens")
    evaluated_cap = (evaluated.get("generation") or {}).get("max_new_tokens")
    if served_cap is not None and evaluated_cap is not None and served_cap != evaluated_cap:
        causes.append(f"output caps differ: served {served_cap}, evaluated {evaluated_cap}")
    return causes
