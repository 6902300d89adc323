"""A task's environment instances and the dispatch of one call to them, by name with parsed arguments.

The instances are BFCL's own classes, built as BFCL's `execute_multi_turn_func_call` builds them: one
per involved class, `_load_scenario(deepcopy(initial_config[class]), long_context=...)` for all but the
stateless ones. Nothing here evaluates text: a call is a name and a dict of values, checked to be JSON
values (so that `render_call` can write it back as Python that BFCL's checker replays) and bound to the
method's signature before the method runs.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import keyword
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING, STATELESS_CLASSES

from slm_swap.scoring.outcomes import AgentFailure


@dataclass(frozen=True)
class RecordedCall:
    """One executed call: the tool's name and its arguments by parameter name, as parsed values."""

    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


class CallRefused(Exception):
    """The call was not run (unknown tool, bad arguments) or the tool raised; `kind` says which."""

    def __init__(self, kind: AgentFailure, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def create_environments(classes: list[str], initial_config: dict[str, Any], long_context: bool) -> dict[str, Any]:
    instances = {}
    for class_name in classes:
        instance = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)()
        if class_name not in STATELESS_CLASSES:
            instance._load_scenario(copy.deepcopy(initial_config.get(class_name, {})), long_context=long_context)
        instances[class_name] = instance
    return instances


def tool_methods(instances: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """Every public method of the instances by name (BFCL's tools; no two classes share a name)."""
    return {
        name: method
        for instance in instances.values()
        for name, method in inspect.getmembers(instance, predicate=inspect.ismethod)
        if not name.startswith("_")
    }


def is_json_value(value: Any) -> bool:
    """Exactly what a JSON document holds: so a recorded call survives a trip through JSON and `repr`."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_json_value(item) for key, item in value.items())
    return False


def is_plain_name(name: Any) -> bool:
    """A Python identifier that is no keyword: the only kind of name `render_call` writes into checker code."""
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and name.isascii()


def checked_call(raw: Any, offered: set[str] | frozenset[str]) -> RecordedCall:
    """A call read back from outside this process (a sandbox worker's reply, a journal, a stored trajectory) as
    a RecordedCall, or CallRefused(BAD_ACTION): it must be `{"name", "arguments"}` with a plain name among
    `offered` and an object of plain parameter names to JSON values. Nothing in it is ever run or evaluated first."""
    if not isinstance(raw, dict) or set(raw) != {"name", "arguments"}:
        raise CallRefused(AgentFailure.BAD_ACTION, "a call must be an object with exactly name and arguments")
    name, arguments = raw["name"], raw["arguments"]
    if not is_plain_name(name) or name not in offered:
        shown = repr(name)[:60]
        raise CallRefused(AgentFailure.BAD_ACTION, f"call name {shown} is not one of the task's tools")
    if not isinstance(arguments, dict) or not all(is_plain_name(key) for key in arguments):
        raise CallRefused(AgentFailure.BAD_ACTION, f"{name}: arguments must be an object keyed by parameter names")
    if not is_json_value(arguments):
        raise CallRefused(AgentFailure.BAD_ACTION, f"{name}: arguments must be JSON values")
    return RecordedCall(name, copy.deepcopy(arguments))


def bind_call(methods: dict[str, Callable[..., Any]], offered: set[str], name: str, args: tuple, kwargs: dict[str, Any]) -> RecordedCall:
    """The call by parameter name, or CallRefused: a tool not offered now, values that are not JSON, a signature mismatch."""
    if name not in offered or name not in methods:
        raise CallRefused(AgentFailure.UNKNOWN_TOOL, f"{name!r} is not one of the tools offered")
    if not all(is_json_value(v) for v in (*args, *kwargs.values())):
        raise CallRefused(AgentFailure.BAD_ARGUMENTS, f"{name}: arguments must be JSON values (str, int, float, bool, None, list, dict)")
    try:
        bound = inspect.signature(methods[name]).bind(*args, **kwargs)
    except TypeError as exc:
        raise CallRefused(AgentFailure.BAD_ARGUMENTS, f"{name}: {exc}") from None
    return RecordedCall(name, copy.deepcopy(dict(bound.arguments)))


def invoke(methods: dict[str, Callable[..., Any]], call: RecordedCall) -> Any:
    """Run a bound call; an exception from the method becomes CallRefused(TOOL_ERROR). The result is a copy,
    so code that mutates it cannot change the environment behind the recorded calls' back."""
    try:
        result = methods[call.name](**copy.deepcopy(call.arguments))
    except Exception as exc:
        raise CallRefused(AgentFailure.TOOL_ERROR, f"{call.name} raised {type(exc).__name__}: {exc}") from None
    return copy.deepcopy(result)


def result_text(result: Any) -> str:
    """A result as BFCL's runner shows it to the model: strings as they are, dicts as JSON, the rest via str."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


def render_call(call: RecordedCall) -> str:
    """`cd(folder='temp')`: the string BFCL's checker evaluates, written from parsed values, never from model text.
    A name or value that `checked_call` would refuse raises ValueError here too: nothing else reaches `eval`."""
    if not is_plain_name(call.name) or not all(is_plain_name(key) for key in call.arguments) or not is_json_value(call.arguments):
        raise ValueError(f"refusing to render a call that is not a plain name with JSON arguments: {call.name!r:.60}")
    return f"{call.name}({', '.join(f'{key}={value!r}' for key, value in call.arguments.items())})"
