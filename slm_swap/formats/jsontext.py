"""Strict JSON parsing and canonical encoding, shared by data preparation and scoring.

Strict means RFC 8259 as Python's parser reads it, minus its extensions: no NaN or
Infinity, and no duplicate object keys (the RFC leaves their meaning open, so a
reply that repeats a key has no single meaning to compare).
"""

from __future__ import annotations

import json
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
