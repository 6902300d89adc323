"""What one row's evaluation ends with, typed: why it failed (`FailureKind`; for agent tasks and their steps
`AgentFailure`), why its call failed (`ErrorClass`), and the whole `RowRecord` the harness keeps, writes, traces and reports.

Records are dataclasses inside the process and plain JSON dicts only at the edges: pytest reports
(`report.user_properties` travel between pytest-xdist processes, which carry builtin types only) and the
predictions JSONL. `to_json` and `from_json` are those edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class _Named(str, Enum):
    """A str-valued Enum that prints and formats as its value on every Python version."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # as the plain string: a member and its value find the same dict entry
        return str.__hash__(self)


class FailureKind(_Named):
    """Why a row failed: the first failing cause, counted in the metric file."""

    MODEL_ERROR = "model_error"
    EMPTY_OUTPUT = "empty_output"
    CODE_FENCE = "code_fence"
    TEXT_AROUND_JSON = "text_around_json"
    INVALID_JSON = "invalid_json"
    NOT_A_CALL_OBJECT = "not_a_call_object"
    NO_TOOL_CALL = "no_tool_call"
    MULTIPLE_TOOL_CALLS = "multiple_tool_calls"
    INVALID_ARGUMENTS_JSON = "invalid_arguments_json"
    WRONG_NAME = "wrong_name"
    ARGUMENTS_DIFFER = "arguments_differ"


class AgentFailure(_Named):
    """Why an agent step's action failed, or why a whole task did: the first failing cause of a task is
    counted in the metric file. Action kinds end one step and the episode goes on; task kinds come from
    BFCL's multi-turn checker or from how the episode ended.
    """

    # a step's action
    MALFORMED_ACTION = "malformed_action"  # an unclosed <tool_call> or ```python block
    INVALID_ARGUMENTS_JSON = "invalid_arguments_json"  # a <tool_call> body that is not a JSON object
    CODE_SYNTAX_ERROR = "code_syntax_error"
    UNKNOWN_TOOL = "unknown_tool"  # not among the tools offered in this turn
    BAD_ARGUMENTS = "bad_arguments"  # not JSON values, or not accepted by the tool's signature
    TOOL_ERROR = "tool_error"  # the environment method raised
    CODE_ERROR = "code_error"  # the code raised by itself
    SANDBOX_ERROR = "sandbox_error"  # the boundary stopped it: a refused import or builtin, the operation cap, CPU, memory, wall time
    # a call read back from a worker, a journal or a stored file that is not an offered tool's plain name with
    # JSON arguments: never run, never rendered for BFCL's checker
    BAD_ACTION = "bad_action"
    # a task
    STEP_LIMIT = "step_limit"
    MODEL_ERROR = "model_error"
    EMPTY_TURN = "empty_turn"  # a turn whose ground truth calls tools got no call
    STATE_MISMATCH = "state_mismatch"
    MISSING_RESULT = "missing_result"  # a ground-truth call's result is not among the model's results


class ErrorClass(_Named):
    """Why a row got no answer, counted in the metric file's `error_classes`.

    The hosted classes: `rate_limit`, `server` and `timeout` are transient and retried; the others are
    final at the first attempt, because waiting changes nothing (an exhausted quota, a filtered prompt,
    a reply we cannot read, a request the endpoint rejects). The harness's own: a pytest-xdist worker
    that died on the row, a row whose setup (model load, fixtures) failed.
    """

    RATE_LIMIT = "rate_limit"
    QUOTA = "quota"
    TIMEOUT = "timeout"
    SERVER = "server"
    CONTENT_FILTER = "content_filter"
    BAD_RESPONSE = "bad_response"
    CLIENT_ERROR = "client_error"
    WORKER_CRASH = "worker_crash"
    SETUP = "setup"


# the fields of a predictions JSONL line, in the order they are written
PREDICTION_FIELDS = ("id", "track", "output", "flags", "failure", "latency_s", "error", "error_class", "finish_reason", "usage")


@dataclass(frozen=True)
class RowRecord:
    """One evaluated row: the model's output or error, the scorer's verdict, and what the call cost.

    `output` is None exactly when the call failed; `error` then says why and `error_class` classifies it.
    A record read back from a predictions file lacks what that file does not keep (`passed`, `detail`,
    retries, cache use, start time): those take their defaults.
    """

    id: str
    track: str | None
    output: str | None
    flags: Mapping[str, bool] = field(default_factory=dict)
    passed: bool = False
    failure: FailureKind | None = None
    detail: str = ""
    latency_s: float = 0.0
    error: str | None = None
    error_class: ErrorClass | str | None = None
    finish_reason: str | None = None
    usage: Mapping[str, int] = field(default_factory=dict)
    retries: Mapping[str, int] = field(default_factory=dict)
    cached: bool = False
    started_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Every field, as builtin JSON types."""
        return {
            "id": self.id,
            "track": self.track,
            "output": self.output,
            "flags": dict(self.flags),
            "passed": self.passed,
            "failure": _plain(self.failure),
            "detail": self.detail,
            "latency_s": self.latency_s,
            "error": self.error,
            "error_class": _plain(self.error_class),
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "retries": dict(self.retries),
            "cached": self.cached,
            "started_at": self.started_at,
        }

    def prediction_json(self) -> dict[str, Any]:
        """The predictions JSONL line: what replay, the decision and the report read back."""
        full = self.to_json()
        return {key: full[key] for key in PREDICTION_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RowRecord:
        """A record from `to_json` or a predictions line; ValueError names the first field of a wrong type."""
        if not isinstance(data.get("id"), str):
            raise ValueError("'id' must be a string")
        failure = data.get("failure")
        error_class = data.get("error_class")
        try:
            return cls(
                id=data["id"],
                track=_typed(data, "track", str, None),
                output=_typed(data, "output", str, None),
                flags=dict(_typed(data, "flags", dict, {}) or {}),
                passed=bool(data.get("passed", False)),
                failure=FailureKind(failure) if failure else None,
                detail=_typed(data, "detail", str, "") or "",
                latency_s=float(data.get("latency_s") or 0.0),
                error=_typed(data, "error", str, None),
                error_class=parse_error_class(error_class) if error_class else None,
                finish_reason=_typed(data, "finish_reason", str, None),
                usage=dict(_typed(data, "usage", dict, {}) or {}),
                retries=dict(_typed(data, "retries", dict, {}) or {}),
                cached=bool(data.get("cached", False)),
                started_at=float(data.get("started_at") or 0.0),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None


def _plain(value: Enum | str | None) -> str | None:
    return value.value if isinstance(value, Enum) else value


def parse_error_class(value: str) -> ErrorClass | str:
    """Known classes become the Enum; an unknown one from another version's file is kept as written."""
    try:
        return ErrorClass(value)
    except ValueError:
        return value


def _typed(data: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key, default)
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{key!r} must be {kind.__name__}, not {type(value).__name__}")
    return value
