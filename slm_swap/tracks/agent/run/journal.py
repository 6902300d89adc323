"""The agent track's answer journal: every step's reply appended as it arrives, keyed by the step's chat.

An episode is deterministic given its replies (the environments and the checker are), so a resumed run
(`--resume`, `--retry-errors`) replays each episode from the journal up to the first step it has no reply
for, and asks the model only from there: a run cut short at step 7 of a 10-step batch costs the model
nothing for steps 1 to 6 again. The journal is the v0 tracks' (`backends/journal.py`): one JSONL file per
model identity, lines keyed by the exact messages, appended whole, a line cut by a crash dropped on read.
Sampled teacher trajectories (`--samples`) are not journalled: they are meant to differ run to run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slm_swap.backends.journal import JournalFile, messages_key
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.episodes.episode import Policy, PolicyReply, PolicyRequest


class JournalledPolicy:
    """Wraps a greedy policy: replies found in the journal are reused as `reuse` allows, new ones are journalled."""

    def __init__(self, inner: Policy, name: str, identity: dict[str, Any], cache_dir: Path, reuse: str) -> None:
        self.inner = inner
        self.file = JournalFile(cache_dir, f"{name}-{AGENT.name}", identity, reuse)
        self.reused = 0

    def reusable(self, request: PolicyRequest) -> PolicyReply | None:
        record = self.file.reusable(messages_key(request.messages))
        if record is None:
            return None
        text, usage, error = record.get("text") or "", record.get("usage") or {}, record.get("error")
        # a journal is a file: a line whose fields are not what this class wrote is asked again, never used
        if not isinstance(text, str) or not isinstance(usage, dict) or not (error is None or isinstance(error, str)):
            return None
        if not all(isinstance(k, str) and type(v) is int for k, v in usage.items()):
            return None
        return PolicyReply(text, dict(usage), error)

    def __call__(self, requests: list[PolicyRequest]) -> list[PolicyReply | str]:
        replies: list[PolicyReply | str | None] = [self.reusable(request) for request in requests]
        self.reused += sum(reply is not None for reply in replies)
        missing = [index for index, reply in enumerate(replies) if reply is None]
        if missing:
            for index, reply in zip(missing, self.inner([requests[i] for i in missing]), strict=True):
                replies[index] = reply
                self.append(requests[index], reply)
        return [reply for reply in replies if reply is not None]

    def append(self, request: PolicyRequest, reply: PolicyReply | str) -> None:
        if isinstance(reply, str):
            reply = PolicyReply(reply)
        # as the row tracks' answers: no text where the model gave no reply
        answer = {"text": None if reply.error is not None else reply.text, "usage": reply.usage, "error": reply.error}
        where = {"id": request.task.id, "track": AGENT.name, "turn": request.turn, "step": request.step}
        self.file.journal.append_record({"key": messages_key(request.messages), **where, "answer": answer})

    def describe(self) -> dict[str, Any]:
        return {**self.file.describe(), "journal_steps_reused": self.reused}

    def close(self) -> None:
        self.file.close()


def journalled(
    act: Policy, describe: Callable[[], dict[str, Any]], name: str, cache_dir: Path | None, reuse: str
) -> tuple[Policy, Callable[[], dict[str, Any]], Callable[[], None]]:
    """(policy, describe, close) behind the journal; as given when the cache is off (`--no-cache`)."""
    if cache_dir is None:
        return act, describe, lambda: None
    policy = JournalledPolicy(act, name, describe(), cache_dir, reuse)
    return policy, lambda: {**describe(), **policy.describe()}, policy.close
