"""The agent track's policy per `--model`: what answers each step's requests across all open episodes.

`gold` is the ground truth's next calls with a fixed labelled thought (`slm_swap.tracks.agent.episodes.gold`), never a model;
`slm` renders every open episode's chat with the checkpoint's chat template and generates them in one batch per
step (`LocalSLM.generate_chats`); `azure` sends the step's chats concurrently through `--max-connections`
connections (an adaptive limit that backs off on 429s, as for rows), greedy, and, for `--capture-trajectories --samples k`,
again at `--temperature`; `replay` needs no policy (`episodes.EpisodePool` hands back stored trajectories).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from slm_swap.backends.api import Answer
from slm_swap.backends.concurrency import AdaptiveLimit
from slm_swap.backends.slm_engines import GeneratedRow
from slm_swap.harness.factory import ModelSetupError, build_model
from slm_swap.harness.settings import EvalSettings
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.episode import Policy, PolicyReply, PolicyRequest
from slm_swap.tracks.agent.episodes.gold import gold_policy
from slm_swap.tracks.agent.run.journal import journalled


def nothing_to_close() -> None:
    return None


@dataclass(frozen=True)
class AgentPolicy:
    act: Policy  # the evaluated, greedy policy
    describe: Callable[[], dict[str, Any]]  # for the metric file, asked after the episodes (batch sizes, connections)
    close: Callable[[], None] = nothing_to_close
    sample: Callable[[float], Policy] | None = None  # a policy sampling at the given temperature (the teacher's)


def build_policy(settings: EvalSettings, environ: Mapping[str, str]) -> AgentPolicy:
    if settings.model == "gold":
        description = {"name": "gold", "note": "ground-truth calls with a fixed labelled thought; not a model"}
        return AgentPolicy(gold_policy(settings.arm, settings.max_steps_per_turn), lambda: dict(description))
    if settings.model == "slm":
        if settings.adapter == "auto":  # the arm's own adapter: tools/finetune.py --track agent_<arm>
            from slm_swap.backends.local_slm import resolve_adapter  # here, as in build_model: torch loads with the SLM only

            adapter = resolve_adapter("auto", f"{AGENT.name}_{settings.arm}", settings.ft_dir)
            settings = replace(settings, adapter=str(adapter) if adapter is not None else "none")
        slm = build_model(settings, AGENT.name, environ)
        act, describe, close_journal = journalled(slm_policy(slm), slm.describe, slm.name, settings.cache_dir, settings.reuse)

        def close_slm() -> None:
            close_journal()
            slm.close()

        return AgentPolicy(act, describe, close_slm)
    if settings.model == "azure":
        limit = AdaptiveLimit(settings.max_connections)
        hosted = build_model(settings, AGENT.name, environ, gate=limit)
        threads = ThreadPoolExecutor(settings.max_connections, thread_name_prefix="agent-hosted")

        act, journal_describe, close_journal = journalled(
            hosted_policy(hosted, threads, None), hosted.describe, hosted.name, settings.cache_dir, settings.reuse
        )

        def close() -> None:
            threads.shutdown(wait=True)
            close_journal()
            hosted.close()

        def sample(temperature: float) -> Policy:
            return hosted_policy(hosted, threads, temperature)

        def describe() -> dict[str, Any]:
            return {**journal_describe(), "concurrency": limit.describe()}

        return AgentPolicy(act, describe, close, sample)
    raise ModelSetupError(f"--model={settings.model} does not answer the agent track")


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


def hosted_policy(hosted: Any, threads: ThreadPoolExecutor, temperature: float | None) -> Policy:
    """The step's chats sent concurrently, each retried within its budget; a failed call ends its episode (model_error)."""

    def policy(requests: list[PolicyRequest]) -> list[PolicyReply | str]:
        answers = threads.map(lambda request: hosted.answer_messages(request.messages, temperature), requests)
        return [hosted_reply(answer) for answer in answers]

    return policy
