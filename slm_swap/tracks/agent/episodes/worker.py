"""The sandbox process of one episode: holds the task's environment instances and runs its steps.

Started by `sandbox.EpisodeSandbox` as `python -m slm_swap.tracks.agent.episodes.worker MOUNTPOINT` with an empty
environment (no keys, no endpoints). Before it reads anything it confines itself (`confine`: namespaces,
a read-only view of the file system with `/scratch` as the one writable place, no network, seccomp).
It speaks JSON lines: requests on stdin, replies on the duplicated original stdout; fd 1 itself points at
stderr, so an environment that prints cannot corrupt the protocol. Every request carries an `id` that its
one reply repeats (`sandbox` checks both, and the reply's shape, as untrusted data). Requests:

    {"op": "start", "classes": [...], "initial_config": {...}, "long_context": bool, "arm": "codeact"|"toolcall",
     "memory_bytes": int, "cpu_seconds": int}        -> {"ok": true, "isolation": {...}}
    {"op": "calls", "offered": [...], "calls": [{"name": ..., "arguments": {...}}]}    one toolcall step
    {"op": "code", "offered": [...], "code": "..."}                                     one codeact step
    {"op": "replay", "calls": [...]}                     rebuild the state after a restart, recording nothing

Limits it sets on itself after its imports: RLIMIT_AS at what it uses then plus `memory_bytes`, and before
each step a soft RLIMIT_CPU `cpu_seconds` past the CPU time used so far; the kernel's SIGXCPU ends the step
as a `sandbox_error`. Wall time, and code stuck inside one C call, are the parent's to stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import slm_swap
from slm_swap.layout import Layout
from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.episodes.codeact import StepRun, make_executor, run_code
from slm_swap.tracks.agent.episodes.confine import confine
from slm_swap.tracks.agent.episodes.environments import (
    CallRefused,
    RecordedCall,
    bind_call,
    create_environments,
    invoke,
    result_text,
    tool_methods,
)

# the whole episode's CPU time, in steps' worth of the per-step limit
EPISODE_CPU_STEPS = 200


class CpuTimeExceeded(BaseException):
    """Raised by the SIGXCPU handler; a BaseException, so neither the executor nor the code catches it."""


def _on_cpu_limit(signum: int, frame: Any) -> None:
    raise CpuTimeExceeded()


PACKAGE_ROOT = Path(slm_swap.__file__).resolve().parents[1]
PRINTED_CHARS = 256 * 1024  # what a step may print or return; the rest is cut, so a reply stays under the parent's cap
_statm: int | None = None  # /proc/self/statm, opened before the old root went away


def limit_memory(extra_bytes: int) -> None:
    pages = int((os.pread(_statm, 256, 0) if _statm is not None else b"0").split()[0])
    limit = pages * resource.getpagesize() + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def cpu_used() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return int(usage.ru_utime + usage.ru_stime) + 1


def set_cpu_limit(soft: int | None) -> None:
    """A soft limit for the next step, or None to lift it between steps (up to the process's hard limit)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard if soft is None else min(soft, hard), hard))


def run_calls(methods: dict[str, Any], offered: set[str], calls: list[dict[str, Any]], run: StepRun) -> None:
    """A toolcall step: each call in order; the first refused one ends the step."""
    for raw in calls:
        try:
            call = bind_call(methods, offered, raw["name"], (), raw["arguments"])
            run.calls.append(call)
            run.results.append(result_text(invoke(methods, call)))
        except CallRefused as refused:
            run.fail(refused.kind, str(refused))
            break


class Session:
    def __init__(self, request: dict[str, Any]) -> None:
        self.instances = create_environments(request["classes"], request["initial_config"], request["long_context"])
        self.methods = tool_methods(self.instances)
        self.executor = make_executor() if request["arm"] == "codeact" else None
        self.cpu_seconds = int(request["cpu_seconds"])
        # the hard limit, which a process can lower but never raise again: a cap for the whole episode, so a
        # worker whose parent is gone cannot spin for ever; SIGKILL comes when it is reached
        episode_cap = cpu_used() + EPISODE_CPU_STEPS * self.cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (episode_cap, episode_cap))
        limit_memory(int(request["memory_bytes"]))  # after every import, which the step's budget does not pay for

    def step(self, request: dict[str, Any]) -> dict[str, Any]:
        offered = set(request["offered"])
        set_cpu_limit(cpu_used() + self.cpu_seconds)
        run = StepRun()  # filled as the step goes, so a step cut short still lists the calls that ran
        try:
            if request["op"] == "code":
                run_code(self.executor, self.methods, offered, request["code"], run)
            else:
                run_calls(self.methods, offered, request["calls"], run)
        except CpuTimeExceeded:
            run.fail(AgentFailure.SANDBOX_ERROR, f"CPU time limit of {self.cpu_seconds} s reached")
        except MemoryError:
            run.fail(AgentFailure.SANDBOX_ERROR, "memory limit reached")
        finally:
            set_cpu_limit(None)
        reply = run.to_json()
        for key in ("printed", "returned", "detail"):
            if isinstance(reply[key], str) and len(reply[key]) > PRINTED_CHARS:
                reply[key] = reply[key][:PRINTED_CHARS] + f"... [cut at {PRINTED_CHARS} characters]"
        return reply

    def replay(self, calls: list[dict[str, Any]]) -> dict[str, Any]:
        for raw in calls:
            # a call that raised the first time raises again; what it changed before raising is changed again
            with contextlib.suppress(CallRefused):
                invoke(self.methods, RecordedCall(raw["name"], raw["arguments"]))
        return {"ok": True}


def serve(requests: Any, replies: Any, isolation: dict[str, Any]) -> None:
    session: Session | None = None
    for line in requests:
        request = json.loads(line)
        if request["op"] == "start":
            session = Session(request)
            reply: dict[str, Any] = {"ok": True, "isolation": isolation}
        elif session is None:
            reply = {"error": "no session: the first request must be start"}
        elif request["op"] == "replay":
            reply = session.replay(request["calls"])
        else:
            reply = session.step(request)
        replies.write(json.dumps({"id": request["id"], **reply}) + "\n")
        replies.flush()


def main() -> None:
    global _statm
    layout = Layout(PACKAGE_ROOT)
    hidden = [str(folder) for folder in (layout.dataset_dir, layout.ft_dir, layout.eval_dir, layout.models_dir)]
    # first: before anything could start a thread, and before any request is read
    isolation, _statm = confine(PACKAGE_ROOT, sys.argv[1], hidden)
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    serve(sys.stdin, replies, isolation.to_json())


if __name__ == "__main__":
    main()
