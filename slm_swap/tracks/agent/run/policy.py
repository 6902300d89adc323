"""The agent track's policy per `--model`: the run's answerer (`harness.factory.build_answerer`) adapted to what
answers each step's requests across all open episodes.

`gold` is the ground truth's next calls with a fixed labelled thought (`slm_swap.tracks.agent.episodes.gold`), never a model;
`slm` renders every open episode's chat with the checkpoint's chat template and generates them in one batch per
step (`LocalSLM.generate_chats`); `azure` sends the step's chats concurrently through `--max-connections`
connections (`backends.concurrency.ConcurrentCalls`, the rows' path: an adaptive limit that backs off on 429s), greedy,
and, for `--capture-trajectories --samples k`, again at `--temperature`; `replay` needs no policy
(`run.pool.EpisodePool` hands back stored trajectories).

The greedy replies of `slm` and `azure` go through the answer journal (`backends.journal.JournalledCalls`, the rows'
journal), keyed by the step's chat: an episode is deterministic given its replies (the environments and the checker
are), so a resumed run (`--resume`, `--retry-errors`) replays each episode from the journal up to the first step it
has no reply for, and asks the model only from there. Sampled teacher trajectories (`--samples`) are not journalled:
they are meant to differ run to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from slm_swap.backends.api import Answer, Answerer
from slm_swap.backends.concurrency import AdaptiveLimit, ConcurrentCalls
from slm_swap.backends.journal import Entry, JournalFile, JournalledCalls, messages_key
from slm_swap.backends.slm_engines import GeneratedRow
from slm_swap.harness.factory import ModelSetupError, build_answerer
from slm_swap.harness.settings import EvalSettings
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.episode import Policy, PolicyReply, PolicyRequest
from slm_swap.tracks.agent.episodes.gold import gold_policy


def nothing_to_close() -> None:
    return None


@dataclass(frozen=True)
class AgentPolicy:
    act: Policy  # the evaluated, greedy policy
    describe: Callable[[], dict[str, Any]]  # for the metric file, asked after the episodes (batch sizes, connections)
    close: Callable[[], None] = nothing_to_close
    sample: Callable[[float], Policy] | None = None  # a policy sampling at the given temperature (the teacher's)


def build_policy(settings: EvalSettings, environ: Mapping[str, str]) -> AgentPolicy:
    if settings.model not in STEP_POLICIES:
        raise ModelSetupError(f"--model={settings.model} does not answer the agent track")
    return STEP_POLICIES[settings.model](settings, environ)


def gold_steps(settings: EvalSettings, environ: Mapping[str, str]) -> AgentPolicy:
    gold = build_answerer(settings, AGENT.name, environ)
    return AgentPolicy(gold_policy(settings.arm, settings.max_steps_per_turn), gold.describe, gold.close)


def slm_steps(settings: EvalSettings, environ: Mapping[str, str]) -> AgentPolicy:
    if settings.adapter == "auto":  # the arm's own adapter: tools/finetune.py --track agent_<arm>
        from slm_swap.backends.local_slm import resolve_adapter  # here, as in the factory: torch loads with the SLM only

        adapter = resolve_adapter("auto", f"{AGENT.name}_{settings.arm}", settings.ft_dir)
        settings = replace(settings, adapter=str(adapter) if adapter is not None else "none")
    slm: Any = build_answerer(settings, AGENT.name, environ)
    act, describe, close_journal = journalled(slm_policy(slm), slm, settings)

    def close_slm() -> None:
        close_journal()
        slm.close()

    return AgentPolicy(act, describe, close_slm)


def hosted_steps(settings: EvalSettings, environ: Mapping[str, str]) -> AgentPolicy:
    calls = ConcurrentCalls(AdaptiveLimit(settings.max_connections), thread_name_prefix="agent-hosted")
    hosted: Any = build_answerer(settings, AGENT.name, environ, gate=calls.limit)
    act, journal_describe, close_journal = journalled(hosted_policy(hosted, calls, None), hosted, settings)

    def close() -> None:
        calls.close()
        close_journal()
        hosted.close()

    def sample(temperature: float) -> Policy:
        return hosted_policy(hosted, calls, temperature)

    def describe() -> dict[str, Any]:
        return {**journal_describe(), "concurrency": calls.describe()}

    return AgentPolicy(act, describe, close, sample)


STEP_POLICIES: dict[str, Callable[[EvalSettings, Mapping[str, str]], AgentPolicy]] = {
    "gold": gold_steps,
    "slm": slm_steps,
    "azure": hosted_steps,
}


def slm_reply(output: GeneratedRow) -> PolicyReply:
    usage = {"prompt_tokens": output.prompt_tokens, "completion_tokens": output.completion_tokens}
    usage["total_tokens"] = output.prompt_tokens + output.completion_tokens
    if output.finish_reason == "context_length":
        return PolicyReply("", usage, error=f"the chat ({output.prompt_tokens} tokens) leaves no room for a reply in the model's context")
    return PolicyReply(output.text, usage)


def slm_policy(slm: Any) -> Policy:
    """One batched generation per step across every open episode."""

    def policy(requests: list[PolicyRequest]) -> list[PolicyReply | str]:
        return [slm_reply(output) for output in slm.generate_chats([request.messages for request in requests])]

    return policy


def hosted_reply(answer: Answer) -> PolicyReply:
    if answer.text is None:
        return PolicyReply("", dict(answer.usage), error=f"[{answer.error_class or 'unknown'}] {answer.error}")
    return PolicyReply(answer.text, dict(answer.usage))


def hosted_policy(hosted: Any, calls: ConcurrentCalls, temperature: float | None) -> Policy:
    """The step's chats sent concurrently, each retried within its budget; a failed call ends its episode (model_error)."""

    def policy(requests: list[PolicyRequest]) -> list[PolicyReply | str]:
        answers = calls.map(lambda request: hosted.answer_messages(request.messages, temperature), requests)
        return [hosted_reply(answer) for answer in answers]

    return policy


def step_record(reply: PolicyReply | str) -> dict[str, Any]:
    if isinstance(reply, str):
        reply = PolicyReply(reply)
    # as the row tracks' answers: no text where the model gave no reply
    return {"text": None if reply.error is not None else reply.text, "usage": reply.usage, "error": reply.error}


def step_reply(record: dict[str, Any]) -> PolicyReply | None:
    text, usage, error = record.get("text") or "", record.get("usage") or {}, record.get("error")
    # a journal is a file: a line whose fields are not what `step_record` wrote is asked again, never used
    if not isinstance(text, str) or not isinstance(usage, dict) or not (error is None or isinstance(error, str)):
        return None
    if not all(isinstance(k, str) and type(v) is int for k, v in usage.items()):
        return None
    return PolicyReply(text, dict(usage), error)


def step_where(request: PolicyRequest) -> dict[str, Any]:
    return {"id": request.task.id, "track": AGENT.name, "turn": request.turn, "step": request.step}


STEP_ENTRY: Entry[PolicyRequest, PolicyReply | str] = Entry(
    lambda request: messages_key(request.messages), step_where, step_record, step_reply
)


def journalled(act: Policy, answerer: Answerer, settings: EvalSettings) -> tuple[Policy, Callable[[], dict[str, Any]], Callable[[], None]]:
    """(policy, describe, close) behind the answer journal, one file per answerer identity beside the rows' files;
    as given when the cache is off (`--no-cache`)."""
    if settings.cache_dir is None:
        return act, answerer.describe, nothing_to_close
    file = JournalFile(settings.cache_dir, f"{answerer.name}-{AGENT.name}", answerer.describe(), settings.reuse)
    calls = JournalledCalls(act, file, STEP_ENTRY)

    def describe() -> dict[str, Any]:
        return {**answerer.describe(), **file.describe(), "journal_steps_reused": calls.reused}

    return calls, describe, file.close
