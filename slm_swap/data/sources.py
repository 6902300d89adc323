"""The record every data source yields: one user request answered by exactly one call.

Sources (`bfcl_source`, `xlam_source`) read their own file formats and hand back
`SourceData`; `splits` turns it into the track files. A source stops with a
`DatasetError` naming file and row when its input is broken, and counts, by
reason, the rows it skips on purpose (several calls, a system message, ...).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    source_id: str
    user_text: str
    tools: list[dict[str, Any]]
    name: str
    arguments: dict[str, Any]


@dataclass
class SourceData:
    """What a source read, plus what the manifest needs to say where it came from."""

    source: str
    examples: list[Example]
    rows_read: int
    dropped: Counter[str] = field(default_factory=Counter)
    categories: list[str] | None = None
    version: str | None = None
    # file name (relative to the source's folder) -> sha256, so a manifest pins its input
    source_files: dict[str, str] = field(default_factory=dict)
