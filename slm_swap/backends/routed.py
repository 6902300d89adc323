"""The routed model: the SLM answers first, the validator checks its answer against the signatures the row's prompt
offers, and the hosted model answers only the rows whose SLM answer it rejects (`pytest evals --model=routed`).

Both sides are the harness's own models, built as `--model=slm` and `--model=azure` are (journal, batching,
`--max-connections`): `prepare` generates every row with the SLM in its batches, validates them, and hands only the
rejected rows to the hosted model, which sends them up front. Each row's route and the validator's reason are known
after `prepare`, so `describe()` (the metric file's `model_description`) carries them all under `routing`, with the
share the SLM served and the time validation took.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from slm_swap.backends.api import Answer, Model, answer_row
from slm_swap.data.rows import Row
from slm_swap.validation.validator import Validation, validate_prompt_answer


@dataclasses.dataclass(frozen=True)
class RowRoute:
    validation: Validation
    slm_answer: Answer
    validation_s: float

    @property
    def route(self) -> str:
        return self.validation.route


class RoutedModel:
    name = "routed"

    def __init__(self, track: str, slm: Model, hosted: Model) -> None:
        self.track, self.slm, self.hosted = track, slm, hosted
        self.routes: dict[str, RowRoute] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "slm": self.slm.describe(), "hosted": self.hosted.describe(), "routing": self.routing()}

    def routing(self) -> dict[str, Any]:
        n, served = len(self.routes), sum(1 for route in self.routes.values() if route.route == "slm")
        times = sorted(route.validation_s for route in self.routes.values())
        return {
            "rows": n,
            "slm_rows": served,
            "hosted_rows": n - served,
            "slm_share": round(served / n, 6) if n else None,
            "validation_s": {"total": round(sum(times), 6), "max": round(times[-1], 6) if times else 0.0},
            "routes": {row_id: {"route": route.route, "reason": route.validation.reason} for row_id, route in sorted(self.routes.items())},
        }

    def prepare(self, rows: Sequence[Row]) -> None:
        self.slm.prepare(rows)
        for row in rows:
            self.route(row)
        self.hosted.prepare([row for row in rows if self.routes[row.id].route == "hosted"])

    def route(self, row: Row) -> RowRoute:
        if row.id not in self.routes:
            answer = answer_row(self.slm, row)  # in prepare no caller's answer_row is around it
            started = time.perf_counter()
            validation = validate_prompt_answer(self.track, row.prompt, answer.text)
            self.routes[row.id] = RowRoute(validation, answer, time.perf_counter() - started)
        return self.routes[row.id]

    def answer(self, row: Row) -> Answer:
        routed = self.route(row)
        if routed.route == "slm":
            return routed.slm_answer
        hosted = self.hosted.answer(row)  # the harness's answer_row around this call asks again if it raises
        # the caller waited for the SLM's answer before the hosted one was asked
        return dataclasses.replace(hosted, latency_s=hosted.latency_s + routed.slm_answer.latency_s + routed.validation_s)

    def close(self) -> None:
        try:
            self.slm.close()
        finally:
            self.hosted.close()
