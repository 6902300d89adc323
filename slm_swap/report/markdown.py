"""Markdown text that stays what it says: escaped prose, code spans that survive any content, tables."""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")
_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def escape(text: object) -> str:
    """Plain Markdown text: every character that could start markup is backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).translate(_CONTROL)


def code(text: object, in_table: bool = False, limit: int | None = None) -> str:
    """An inline code span that survives any content: backticks, newlines, `|` in tables, `<tags>`."""
    value = str(text).translate(_CONTROL)
    if limit is not None and len(value) > limit:
        value = value[:limit] + "\u2026"
    if not value.strip():
        return "(empty)"
    longest = max((len(run) for run in re.findall(r"`+", value)), default=0)
    fence = "`" * (longest + 1)
    if in_table:
        value = value.replace("|", "\\|")
    return f"{fence} {value} {fence}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
