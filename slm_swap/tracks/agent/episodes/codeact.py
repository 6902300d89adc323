"""One codeact step inside the sandbox process: the code runs in smolagents' `LocalPythonExecutor`, with
the environment's tools bound as functions that record every call.

The executor is an AST interpreter, not CPython's `exec`: imports outside `ALLOWED_IMPORTS` are refused,
builtins such as `open`, `eval`, `exec`, `compile`, `globals` and `__import__` are not reachable, dunder
attributes are refused, and it stops after `MAX_OPERATIONS` evaluated nodes. Its thread-based timeout is
off: a timed-out thread would keep running and keep changing the environment, so time is the process's
job (`worker`, `sandbox`). Variables persist from one step to the next, as in smolagents' agents.

Before the executor sees the code, `screen_code` refuses what smolagents lets through and an escape needs:
`getattr` and its kin, attributes that start with `_` or reach frames, code objects and tracebacks (`g.gi_frame.f_locals` opens
smolagents' own state in three lines), and `str.format` fields that read attributes or items
(`'{0.__class__}'.format(x)`). This is a first filter only; the boundary is the operating system (`confine`).

The tools bound are every public method of the environment instances; one not offered in the current turn
(a held-out function of `miss_func`) refuses with `unknown_tool`. The first refusal decides the step's
failure even when the code catches the exception, so `try: ... except Exception: pass` hides nothing.
"""

from __future__ import annotations

import ast
import builtins
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slm_swap.scoring.outcomes import AgentFailure
from slm_swap.tracks.agent.episodes.environments import CallRefused, RecordedCall, bind_call, invoke, result_text

# smolagents adds its own base list (collections, datetime, itertools, math, queue, random, re, stat,
# statistics, time, unicodedata) to these
ALLOWED_IMPORTS = ["json"]
# messages of smolagents' InterpreterError that mean the boundary refused something, not that the code was wrong
_BOUNDARY_MESSAGES = (
    "Import of ",
    "Import from ",
    "Reached the max number of operations",
    "Maximum number of ",
    "Forbidden access to dunder",
    "Forbidden call to dunder",
    "Invoking a builtin function",
)


# attributes of generators, coroutines, frames, code objects, tracebacks and functions that lead to interpreter state
INTERNAL_ATTRIBUTES = frozenset(
    {
        "gi_frame",
        "gi_code",
        "gi_yieldfrom",
        "gi_running",
        "gi_suspended",
        "cr_frame",
        "cr_code",
        "cr_await",
        "cr_origin",
        "ag_frame",
        "ag_code",
        "ag_await",
        "f_back",
        "f_builtins",
        "f_code",
        "f_globals",
        "f_locals",
        "f_lasti",
        "f_trace",
        "tb_frame",
        "tb_next",
        "tb_lasti",
        "co_code",
        "co_consts",
        "func_globals",
        "func_code",
        "mro",
    }
)
# builtins that reach attributes by a name computed at run time, which no screen of the syntax can check
INDIRECT_ACCESS = frozenset({"getattr", "setattr", "delattr", "vars", "globals", "locals", "dir"})


def screen_code(tree: ast.AST) -> str | None:
    """Why the code is refused before it runs, or None. Looks only at the syntax tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in INDIRECT_ACCESS:
            return f"Forbidden function {node.id!r}: attributes are read by name only"
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_") or node.attr in INTERNAL_ATTRIBUTES:
                return f"Forbidden access to dunder, private or interpreter attribute {node.attr!r}"
            if node.attr in ("format", "format_map"):
                if not isinstance(node.value, ast.Constant) or not isinstance(node.value.value, str):
                    return f"Forbidden call to .{node.attr} on a value that is not a string literal (use an f-string)"
                try:
                    fields = [f for _, f, _, _ in string.Formatter().parse(node.value.value) if f]
                except ValueError as exc:
                    return f"Forbidden format string: {exc}"
                if any("." in f or "[" in f for f in fields):
                    return "Forbidden format string: fields may not read attributes or items"
    return None


@dataclass
class StepRun:
    """What a step did: the calls it ran (in order), their results as text, and how it ended."""

    calls: list[RecordedCall] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    printed: str = ""
    returned: str | None = None
    failure: AgentFailure | None = None
    detail: str = ""

    def fail(self, kind: AgentFailure, detail: str) -> None:
        if self.failure is None:
            self.failure, self.detail = kind, detail

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": [c.to_json() for c in self.calls],
            "results": self.results,
            "printed": self.printed,
            "returned": self.returned,
            "failure": self.failure.value if self.failure else None,
            "detail": self.detail,
        }


def make_executor() -> Any:
    from smolagents.local_python_executor import LocalPythonExecutor  # only the codeact arm pays for the import

    return LocalPythonExecutor(additional_authorized_imports=ALLOWED_IMPORTS, timeout_seconds=None)


def bound_tools(methods: dict[str, Callable[..., Any]], offered: set[str], run: StepRun) -> dict[str, Callable[..., Any]]:
    def bind(name: str) -> Callable[..., Any]:
        def tool(*args: Any, **kwargs: Any) -> Any:
            try:
                call = bind_call(methods, offered, name, args, kwargs)
                run.calls.append(call)  # recorded before it runs: a call that raises has still run
                result = invoke(methods, call)
            except CallRefused as refused:
                run.fail(refused.kind, str(refused))
                raise
            run.results.append(result_text(result))
            return result

        tool.__name__ = name
        return tool

    return {name: bind(name) for name in methods}


def classify(exc: BaseException) -> tuple[AgentFailure, str]:
    """The failure kind of an exception out of the executor; its cause is chained as `__context__`."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, MemoryError):
            return AgentFailure.SANDBOX_ERROR, "memory limit reached"
        if isinstance(cause, RecursionError):
            return AgentFailure.SANDBOX_ERROR, "recursion limit reached"
        cause = cause.__context__
    message = str(exc)
    marker = "Forbidden function evaluation: '"
    if marker in message:
        name = message.split(marker, 1)[1].split("'", 1)[0]
        kind = AgentFailure.SANDBOX_ERROR if hasattr(builtins, name) else AgentFailure.UNKNOWN_TOOL
        return kind, message
    if any(marker in message for marker in _BOUNDARY_MESSAGES):
        return AgentFailure.SANDBOX_ERROR, message
    return AgentFailure.CODE_ERROR, message


def run_code(executor: Any, methods: dict[str, Callable[..., Any]], offered: set[str], code: str, run: StepRun) -> None:
    """Run the code, filling `run` as it goes: when the CPU-time signal cuts it short, `run` still lists the
    calls that ran, so the record matches the environment's state."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        run.fail(AgentFailure.CODE_SYNTAX_ERROR, f"line {exc.lineno}: {exc.msg}")
        return
    refused = screen_code(tree)
    if refused is not None:
        run.fail(AgentFailure.SANDBOX_ERROR, refused)
        return
    executor.send_tools(bound_tools(methods, offered, run))
    try:
        output = executor(code)
    except Exception as exc:  # BaseExceptions (the CPU-time signal) belong to the worker
        kind, detail = classify(exc)
        run.fail(kind, detail)
        run.printed = str(executor.state.get("_print_outputs", ""))
        return
    run.printed = output.logs
    run.returned = None if output.output is None else result_text(output.output)
