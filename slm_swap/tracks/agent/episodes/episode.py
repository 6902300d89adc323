"""The episode runner: many tasks advanced together, one policy call per step across all of them.

Per task, each user turn in order; within a turn the policy writes the assistant's reply from the
messages so far, the reply's action runs in the episode's sandbox, and the observation comes back as
the next message, until the policy replies without an action (the turn's answer) or the turn reaches
`max_steps_per_turn` replies that acted (the episode then stops, as BFCL's runner force-quits).

The chat is `system` (the arm's instructions and the tools offered at the start), then per turn a
`user` message (the request; for a turn that only adds held-out tools, BFCL's "more functions" message
with the new tools), then `assistant` replies and observations. Observations are `user` messages that
start with the fixed "Observation:" line (`prompts.agent_observation`), not a `tool` role: every chat
template the project serves knows `user`, and the prefix keeps them apart from requests.

Batching: `run_episodes` keeps up to `max_active` episodes open; at each step it asks the policy once
for all of them (`policy(requests) -> replies`), sends every action to its sandbox, then collects the
outcomes, so the sandboxes run side by side and a batched model generates for all tasks at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from slm_swap.options import MAX_ACTIVE, MAX_STEPS_PER_TURN
from slm_swap.prompts import agent_more_tools_message, agent_observation, agent_system_prompt, check_arm
from slm_swap.tracks.agent.data.bfcl_multi_turn import MultiTurnTask
from slm_swap.tracks.agent.episodes.actions import parse_action
from slm_swap.tracks.agent.episodes.sandbox import EpisodeSandbox, SandboxLimits
from slm_swap.tracks.agent.episodes.trajectory import StepRecord, Trajectory, TurnRecord


@dataclass(frozen=True)
class EpisodeSettings:
    arm: str
    max_steps_per_turn: int = MAX_STEPS_PER_TURN.default
    max_active: int = MAX_ACTIVE.default  # episodes (and sandbox processes) open at once
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    scratch_root: Path | None = None  # the run-owned folder of the workers' folders (`layout.sandbox_dir` when None)
    unsafe_local_executor: bool = False  # run codeact code even where the OS boundary cannot be set up


@dataclass(frozen=True)
class PolicyRequest:
    task: MultiTurnTask
    turn: int
    step: int
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class PolicyReply:
    text: str
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # the model gave no reply; the episode ends with model_error


# a policy answers all open episodes in one call; a plain string is a reply without usage
Policy = Callable[[list[PolicyRequest]], list["PolicyReply | str"]]


class Episode:
    def __init__(self, task: MultiTurnTask, settings: EpisodeSettings) -> None:
        self.task, self.settings = task, settings
        self.sandbox = EpisodeSandbox(
            task.involved_classes,
            task.initial_config,
            task.long_context,
            settings.arm,
            settings.limits,
            settings.scratch_root,
            require_boundary=not settings.unsafe_local_executor,
        )
        self.record = Trajectory(task.id, task.category, settings.arm, isolation=self.sandbox.isolation)
        self.record.messages.append({"role": "system", "content": agent_system_prompt(settings.arm, task.functions)})
        self._submitted: StepRecord | None = None
        self._begin_turn(0)

    @property
    def done(self) -> bool:
        return bool(self.record.ended)

    @property
    def turn(self) -> TurnRecord:
        return self.record.turns[-1]

    def _begin_turn(self, index: int) -> None:
        text = self.task.turns[index]
        if text is None:
            text = agent_more_tools_message(self.settings.arm, self.task.missed_functions[index])
        self.record.turns.append(TurnRecord(index, text))
        self.record.messages.append({"role": "user", "content": text})

    def _end_turn(self, how: str, detail: str = "") -> None:
        self.turn.ended = how
        if how != "answer":
            self.record.ended, self.record.detail = how, detail
        elif self.turn.turn + 1 < len(self.task.turns):
            self._begin_turn(self.turn.turn + 1)
        else:
            self.record.ended = "complete"
        if self.done:
            self.record.sandbox_restarts = self.sandbox.restarts
            self.sandbox.close()

    def request(self) -> PolicyRequest:
        return PolicyRequest(self.task, self.turn.turn, len(self.turn.steps), list(self.record.messages))

    def apply(self, reply: PolicyReply, started_at: float = 0.0, generation_s: float = 0.0) -> None:
        """Record the reply; send its action to the sandbox, or end the turn when it has none."""
        if reply.error is not None:
            self._end_turn("model_error", reply.error)
            return
        self.record.messages.append({"role": "assistant", "content": reply.text})
        action = parse_action(self.settings.arm, reply.text)
        step = StepRecord(len(self.turn.steps), reply.text, None, usage=dict(reply.usage), started_at=started_at, generation_s=generation_s)
        self.turn.steps.append(step)
        if action is None:
            self._end_turn("answer")
            return
        step.action = "code" if action.code is not None else "calls"
        if action.failure is not None:
            step.failure, step.detail = action.failure.value, action.detail
            self._observe(step)
            return
        offered = [doc["name"] for doc in self.task.functions_at(self.turn.turn)]
        request = {"op": "code", "code": action.code} if action.code is not None else {"op": "calls", "calls": action.calls}
        self.sandbox.submit({**request, "offered": offered})
        self._submitted = step

    def collect(self) -> None:
        """The submitted action's outcome, its observation, and the step limit."""
        step, self._submitted = self._submitted, None
        if step is None:
            return
        outcome = self.sandbox.collect()
        step.execution_s = round(time.time() - step.started_at - step.generation_s, 6)
        step.calls, step.results = outcome["calls"], outcome["results"]
        step.failure, step.detail = outcome["failure"], outcome["detail"]
        self._observe(step, outcome["printed"], outcome["returned"])

    def _observe(self, step: StepRecord, printed: str = "", returned: str | None = None) -> None:
        # codeact's code sees each result as a value and shows what it prints or returns; toolcall shows each result
        shown = step.results if self.settings.arm == "toolcall" else []
        step.observation = agent_observation(shown, printed, returned, step.failure, step.detail)
        self.record.messages.append({"role": "user", "content": step.observation})
        if len(self.turn.steps) >= self.settings.max_steps_per_turn:
            self._end_turn("step_limit", f"turn {self.turn.turn} reached {self.settings.max_steps_per_turn} steps")


# (steps run, episodes open, tasks finished, tasks in all), told after every batched step
StepProgress = Callable[[int, int, int, int], None]


def run_episodes(
    tasks: Iterable[MultiTurnTask],
    policy: Policy,
    settings: EpisodeSettings,
    on_finished: Callable[[Trajectory], None] | None = None,
    on_step: StepProgress | None = None,
) -> list[Trajectory]:
    """Every task's trajectory, in the order of `tasks`."""
    check_arm(settings.arm)
    pending = deque(tasks)
    order = {task.id: index for index, task in enumerate(pending)}
    active: list[Episode] = []
    finished: list[Trajectory] = []
    steps = 0
    try:
        while pending or active:
            while pending and len(active) < settings.max_active:
                active.append(Episode(pending.popleft(), settings))
            started = time.time()
            replies = policy([episode.request() for episode in active])
            generation_s = round(time.time() - started, 6)
            if len(replies) != len(active):
                raise ValueError(f"the policy answered {len(replies)} of {len(active)} requests")
            for episode, reply in zip(active, replies):
                episode.apply(reply if isinstance(reply, PolicyReply) else PolicyReply(reply), started, generation_s)
            for episode in active:
                episode.collect()
            for episode in [e for e in active if e.done]:
                active.remove(episode)
                finished.append(episode.record)
                if on_finished is not None:
                    on_finished(episode.record)
            steps += 1
            if on_step is not None:
                on_step(steps, len(active), len(finished), len(order))
    finally:
        for episode in active:
            episode.sandbox.close()
    return sorted(finished, key=lambda record: order[record.task_id])
