"""The record of one episode: every step's reply, action, executed calls and observation, per turn.

Dataclasses inside the process; `to_json` / `from_json` are the edges (predictions files, captured
trajectories), as for `RowRecord`. The executed calls are what scoring replays, so a stored trajectory
can be re-scored without a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StepRecord:
    step: int
    text: str  # the assistant's reply
    action: str | None  # "code", "calls", or None when the reply is the turn's answer
    calls: list[dict[str, Any]] = field(default_factory=list)  # executed: {"name", "arguments"}
    results: list[str] = field(default_factory=list)
    failure: str | None = None  # an AgentFailure value
    detail: str = ""
    observation: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # filled by the policy (tokens)
    started_at: float = 0.0  # unix seconds: when the policy was asked for this step (with every open episode's)
    generation_s: float = 0.0  # the policy call's wall time, shared by the episodes it answered together
    execution_s: float = 0.0  # from sending the action to the sandbox until its outcome was collected

    @property
    def valid(self) -> bool:
        """An action that parsed and whose every call ran on an offered tool with accepted arguments."""
        return self.action is not None and self.failure is None


@dataclass
class TurnRecord:
    turn: int
    user: str
    steps: list[StepRecord] = field(default_factory=list)
    ended: str = ""  # "answer", "step_limit" or "model_error"; "" while it runs


@dataclass
class Trajectory:
    task_id: str
    category: str
    arm: str
    messages: list[dict[str, str]] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    ended: str = ""  # "complete", "step_limit" or "model_error"
    detail: str = ""
    sandbox_restarts: int = 0
    isolation: dict[str, Any] = field(default_factory=dict)  # the layers its sandbox ran inside (`confine.Isolation`)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trajectory:
        turns = [
            TurnRecord(t["turn"], t["user"], [StepRecord(**s) for s in t["steps"]], t["ended"])
            for t in data["turns"]  # a KeyError or TypeError names what a malformed record lacks
        ]
        return cls(
            data["task_id"],
            data["category"],
            data["arm"],
            list(data["messages"]),
            turns,
            data["ended"],
            data.get("detail", ""),
            data.get("sandbox_restarts", 0),
            data.get("isolation", {}),
        )
