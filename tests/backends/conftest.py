"""The hosted-model bench shared by the reliability and concurrency tests: a pytester project with the
real conftest, evals and plugin, the fault server that answers it, and readers for what a run left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fault_server import FaultServer
from harness_support import REPO, make_project

KEY = "canary-key-7d3e9a51c04b"
TOOLCALL = "evals/test_toolcall.py"


class Bench:
    """A pytester project with `n` rows per track, the fault server that answers them, and readers for what a run left."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, receiver, n: int, connections: str | None) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.receiver = receiver
        self.rows = make_project(pytester, n=n)
        self.connections = connections  # passed as --max-connections to every run; None: the option's default
        self.server: FaultServer | None = None

    @property
    def prompts(self) -> list[str]:
        return [row["prompt"] for row in self.rows["toolcall"]]

    @property
    def out(self) -> Path:
        return self.pytester.path / "slm_swap" / "05_eval"

    def prompt_of(self, row_id: str) -> str:
        return self.prompts[int(row_id.removeprefix("test-"))]

    def serve(self, **faults) -> FaultServer:
        """A fresh endpoint (stopping the last one): every prompt of both tracks is answered with its gold completion
        unless a fault says otherwise."""
        if self.server is not None:
            self.server.stop()
        answers = {row["prompt"]: row["completion"] for rows in self.rows.values() for row in rows}
        faults.setdefault("max_seconds", 150)
        self.server = FaultServer(answers=answers, **faults).start()
        self.monkeypatch.setenv("AZURE_ENDPOINT", self.server.endpoint)
        return self.server

    def args(self, *extra: str) -> list[str]:
        connections = ["--max-connections", self.connections] if self.connections is not None else []
        return [TOOLCALL, "--model=azure", "-p", "no:randomly", *connections, *extra]

    def run(self, *extra: str, xdist: bool = False) -> pytest.RunResult:
        if xdist:
            return self.pytester.runpytest_subprocess(*self.args(*extra), timeout=150)
        return self.pytester.runpytest(*self.args(*extra))

    def metric(self, name: str = "toolcall_azure.json") -> dict:
        return json.loads((self.out / name).read_text(encoding="utf-8"))

    def predictions(self, name: str = "toolcall_azure.predictions.jsonl") -> list[dict]:
        return [json.loads(line) for line in (self.out / name).read_text(encoding="utf-8").splitlines()]

    def journal(self) -> Path:
        (path,) = (self.out / "cache").glob("*.jsonl")
        return path


@pytest.fixture
def bench(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, langfuse_env):
    """`bench(n, connections=None)` makes a Bench; every endpoint it started is stopped afterwards."""
    # xdist workers are fresh interpreters: they find slm_swap (and crash plugins) through PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", f"{REPO}:{pytester.path}")
    monkeypatch.setenv("AZURE_API_KEY", KEY)
    monkeypatch.delenv("AZURE_API_VERSION", raising=False)
    monkeypatch.delenv("AZURE_MODEL", raising=False)
    benches: list[Bench] = []

    def make(n: int, connections: str | None = None) -> Bench:
        benches.append(Bench(pytester, monkeypatch, langfuse_env, n, connections))
        return benches[-1]

    yield make
    for made in benches:
        if made.server is not None:
            made.server.stop()
