"""The routed model: the SLM answers every row first; the hosted model is asked for exactly the rows whose SLM answer
the validator rejects, in `prepare`; each row's route and reason are in `describe()` for the metric file."""

from __future__ import annotations

from slm_swap.backends.api import Answer
from slm_swap.backends.routed import RoutedModel
from slm_swap.data.rows import Row
from slm_swap.formats.toolcall import format_tool_call
from slm_swap.prompts import build_prompt

TOOL = {"name": "get_weather", "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class Recorder:
    """A fake model: scripted replies by row id, and a record of what it was asked."""

    def __init__(self, name: str, replies: dict[str, str | None], latency_s: float = 0.0) -> None:
        self.name, self.replies, self.latency_s = name, replies, latency_s
        self.prepared: list[str] = []
        self.asked: list[str] = []
        self.closed = False

    def describe(self) -> dict:
        return {"name": self.name}

    def prepare(self, rows) -> None:
        self.prepared += [row.id for row in rows]

    def answer(self, row: Row) -> Answer:
        self.asked.append(row.id)
        text = self.replies[row.id]
        return Answer(text=text, latency_s=self.latency_s, error=None if text is not None else "boom", error_class=None)

    def close(self) -> None:
        self.closed = True


def rows(n: int) -> list[Row]:
    prompt = build_prompt("toolcall", "Weather in Paris?", [TOOL])
    return [Row(f"test-{i:04d}", i, "toolcall", prompt, format_tool_call("get_weather", {"city": "Paris"})) for i in range(n)]


SLM_REPLIES = {
    "test-0000": format_tool_call("get_weather", {"city": "Paris"}),  # accepted
    "test-0001": format_tool_call("get_weather", {"town": "Paris"}),  # unknown parameter (and the required one missing)
    "test-0002": "It is sunny.",  # no tool call
    "test-0003": None,  # the SLM call failed
    "test-0004": format_tool_call("get_weather", {"city": "Lyon"}),  # accepted, though wrong: the validator checks form, not truth
}


def routed(hosted_latency: float = 0.0) -> tuple[RoutedModel, Recorder, Recorder]:
    slm = Recorder("slm", SLM_REPLIES, latency_s=0.5)
    hosted = Recorder("azure", {row.id: f"hosted {row.id}" for row in rows(5)}, latency_s=hosted_latency)
    return RoutedModel("toolcall", slm, hosted), slm, hosted


def test_only_rejected_rows_reach_the_hosted_model():
    model, slm, hosted = routed()
    model.prepare(rows(5))
    assert slm.prepared == [row.id for row in rows(5)]
    assert hosted.prepared == ["test-0001", "test-0002", "test-0003"]
    answers = {row.id: model.answer(row).text for row in rows(5)}
    assert answers == {
        "test-0000": SLM_REPLIES["test-0000"],
        "test-0001": "hosted test-0001",
        "test-0002": "hosted test-0002",
        "test-0003": "hosted test-0003",
        "test-0004": SLM_REPLIES["test-0004"],
    }
    assert hosted.asked == ["test-0001", "test-0002", "test-0003"]
    assert slm.asked == [row.id for row in rows(5)]  # each row generated once, in prepare


def test_describe_records_the_share_and_each_rows_route_and_reason():
    model, _, _ = routed()
    model.prepare(rows(5))
    routing = model.describe()["routing"]
    assert (routing["rows"], routing["slm_rows"], routing["hosted_rows"], routing["slm_share"]) == (5, 2, 3, 0.4)
    assert routing["routes"] == {
        "test-0000": {"route": "slm", "reason": "accepted"},
        "test-0001": {"route": "hosted", "reason": "missing_required: required parameter 'city' is missing"},
        "test-0002": {"route": "hosted", "reason": 'no_tool_call: no complete <tool_call name="...">...</tool_call> element'},
        "test-0003": {"route": "hosted", "reason": "no_output: the model call failed"},
        "test-0004": {"route": "slm", "reason": "accepted"},
    }
    assert routing["validation_s"]["total"] >= routing["validation_s"]["max"] >= 0
    assert model.describe()["slm"] == {"name": "slm"} and model.describe()["hosted"] == {"name": "azure"}


def test_a_hosted_answer_counts_the_slm_time_spent_before_it():
    model, _, _ = routed(hosted_latency=1.0)
    model.prepare(rows(5))
    assert model.answer(rows(5)[0]).latency_s == 0.5
    assert 1.5 <= model.answer(rows(5)[2]).latency_s < 1.6


def test_a_row_not_prepared_is_routed_when_asked():
    model, slm, hosted = routed()
    assert model.answer(rows(5)[2]).text == "hosted test-0002"
    assert (slm.asked, hosted.asked) == (["test-0002"], ["test-0002"])


def test_close_closes_both_sides():
    model, slm, hosted = routed()
    model.close()
    assert slm.closed and hosted.closed
