"""The process environment as the harness hands it inward: read-only, and printed without its values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping


class HiddenEnviron(Mapping[str, str]):
    """The environment, read-only, printed without its values.

    The models are built from it, so it sits in the locals of every frame of a
    failed model setup, and `pytest -l` prints those locals: the API key with them.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    def __repr__(self) -> str:
        return f"<environment: {len(self)} variables, values hidden>"
