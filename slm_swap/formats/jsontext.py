"""Strict JSON parsing and canonical encoding, shared by data preparation and scoring.

Strict means RFC 8259 as Python's parser reads it, minus its extensions: no NaN or
Infinity, and no duplicate object keys (the RFC leaves their meaning open, so a
reply that repeats a key has no single meaning to compare). Records read back (replayed predictions)
are checked for numbers that are not finite or not of their field's type.
"""

from __future__ import annotations

import json
import math
from typing import Any

import canonicaljson


class StrictJSONError(ValueError):
    """The text is not exactly one strict JSON value."""


def _reject_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not JSON")


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise StrictJSONError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def parse_strict_json(text: str) -> Any:
    """Parse `text` (surrounding whitespace allowed) as exactly one JSON value."""
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            object_pairs_hook=_reject_duplicate_keys,
        )
        # Python reads some grammatical JSON into values with no canonical form (1e400 becomes
        # inf, "\ud800" a lone surrogate); they could never be compared, so they are not strict.
        canonical_bytes(value)
    except StrictJSONError:
        raise
    # ValueError also covers ints past Python's digit limit and the encoder's refusals
    except (ValueError, RecursionError) as exc:
        raise StrictJSONError(str(exc)) from exc
    return value


def canonical_bytes(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8; `1` and `1.0` stay different."""
    return canonicaljson.encode_canonical_json(value)


def canonical_text(value: Any) -> str:
    return canonical_bytes(value).decode("utf-8")


def non_finite_number(value: Any, path: str = "") -> tuple[str, float] | None:
    """The first NaN or infinite number inside a parsed JSON value, with where it sits (`usage.total_tokens`,
    `trajectory.turns[0].steps[1].usage.prompt_tokens`); None when every number is finite. Python's parser reads
    `NaN`, `Infinity` and `1e400` without a word."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "the value", value)
    if isinstance(value, dict):
        inner = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        inner = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return None
    for where, item in inner:
        found = non_finite_number(item, where)
        if found is not None:
            return found
    return None


def is_number(value: Any) -> bool:
    """An int or a float, not a bool (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def typed_problem(record: dict[str, Any], numbers: tuple[str, ...], counts: tuple[str, ...], path: str = "") -> str | None:
    """What is wrong with `record`'s numeric fields, or None: each of `numbers` absent, null or a number; each of
    `counts` absent, null or an object of integer counts (token usage, retries)."""
    prefix = f"{path}." if path else ""
    for name in numbers:
        value = record.get(name)
        if value is not None and not is_number(value):
            return f"{prefix}{name} must be a number, got {value!r}"
    for name in counts:
        found = record.get(name)
        if found is None:
            continue
        if not isinstance(found, dict):
            return f"{prefix}{name} must be an object of integer counts, got {found!r}"
        for key, value in found.items():
            if not isinstance(value, int) or isinstance(value, bool):
                return f"{prefix}{name}.{key} must be an integer count, got {value!r}"
    return None
