"""The sandbox boundary, parent side: one worker process per episode (`worker`), its limits, and recovery.

What the boundary stops:
- imports beyond the allow-list (`codeact.ALLOWED_IMPORTS` plus smolagents' base list), and with them
  `os`, `sys`, `subprocess`, `socket`: the code reaches no file, process or network call through Python;
- the network, also at the OS level where the kernel allows unprivileged user namespaces: the worker moves
  into its own network namespace, with nothing but a loopback that is down (`network_isolated` says whether
  it did; where it cannot, the import allow-list is the only barrier);
- `open`, `eval`, `exec`, `compile`, `globals`, `__import__` and dunder attributes (the AST interpreter has none);
- endless loops and long computations: smolagents' operation cap, then a per-step CPU-time limit
  (RLIMIT_CPU, SIGXCPU), then a per-step wall-clock limit after which the process is killed;
- unbounded allocation: RLIMIT_AS on the worker (its imports plus `memory_bytes`);
- leaked secrets: the worker starts with an empty environment (no API keys, no endpoints) in a scratch
  folder, which is deleted when the episode ends;
- a crash or a kill costs one step, not the run: a new worker is started and the episode's recorded calls
  are replayed into fresh environment instances (BFCL's environments are deterministic: seeded randomness).

What it does not stop:
- an escape from smolagents' interpreter (it says itself it is not a security sandbox): the process then
  runs with this user's rights: no seccomp, no mount namespace or container, so it could read and write
  whatever this user can. Code from real traffic needs a container or gVisor first (docs/phase2.md).
- a step that only waits (`time.sleep`) costs wall time up to `wall_seconds`, and the memory of one step
  may reach `memory_bytes` per episode process, times the episodes that run at once;
- the code's variables do not survive a restart after a kill (the environment state does).
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slm_swap
from slm_swap.scoring.outcomes import AgentFailure

PACKAGE_ROOT = Path(slm_swap.__file__).resolve().parents[1]
WORKER_IMPORTS = ("bfcl_eval", "smolagents")  # third-party packages the worker imports


def worker_python_path() -> str:
    """The worker's PYTHONPATH: this package's root, and wherever this process found the worker's imports.

    The worker gets none of this process's environment, so packages installed through PYTHONPATH
    (`pip install --target DIR`) would otherwise be missing there while present here.
    """
    roots = [PACKAGE_ROOT]
    for name in WORKER_IMPORTS:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots.append(Path(spec.origin).resolve().parents[1])
    return os.pathsep.join(dict.fromkeys(str(root) for root in roots))


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: int = 5  # CPU time of one step
    wall_seconds: float = 20.0  # wall-clock time of one step, from request to reply
    memory_bytes: int = 512 * 1024 * 1024  # address space one worker may add beyond its imports
    start_seconds: float = 60.0  # for the worker to start and load the environments


class WorkerGone(Exception):
    """The worker sent no reply in time, or died."""


class EpisodeSandbox:
    """One episode's worker. `submit` a step, later `collect` its outcome; meanwhile other episodes' workers run."""

    def __init__(self, classes: list[str], initial_config: dict[str, Any], long_context: bool, arm: str, limits: SandboxLimits) -> None:
        self.start_request = {
            "op": "start",
            "classes": classes,
            "initial_config": initial_config,
            "long_context": long_context,
            "arm": arm,
            "memory_bytes": limits.memory_bytes,
            "cpu_seconds": limits.cpu_seconds,
        }
        self.limits = limits
        self.executed: list[dict[str, Any]] = []  # every call run so far: what a restart replays
        self.restarts = 0
        self.network_isolated = False
        self.scratch = Path(tempfile.mkdtemp(prefix="slm-agent-"))
        self._buffer = b""
        self._deadline = 0.0
        self._limit = 0.0
        self._start()

    def _start(self) -> None:
        self._buffer = b""
        # nothing of this process's environment (keys, endpoints); a fixed hash seed, so that an observation
        # that lists a set comes out in the same order in every run
        env = {"PATH": os.defpath, "PYTHONPATH": worker_python_path(), "HOME": str(self.scratch), "PYTHONHASHSEED": "0"}
        with open(self.scratch / "worker.stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "slm_swap.agent.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=self.scratch,
                env=env,
            )
        self._send(self.start_request, self.limits.start_seconds)
        self._started = False

    def _send(self, request: dict[str, Any], seconds: float) -> None:
        self._limit = seconds
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is gone; the read that follows says so
        self._deadline = time.monotonic() + seconds

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = self._deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerGone(f"no reply within {self._limit:g} s (wall-clock limit)")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerGone(f"the sandbox process ended (exit {self.process.wait()}){self._stderr_tail()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _stderr_tail(self) -> str:
        text = (self.scratch / "worker.stderr").read_text(encoding="utf-8", errors="replace").strip()
        return f": {text[-300:]}" if text else ""

    def _ensure_started(self) -> None:
        if not self._started:
            self.network_isolated = bool(self._receive().get("network_isolated"))
            self._started = True

    def submit(self, request: dict[str, Any]) -> None:
        """Send one step (`{"op": "code", ...}` or `{"op": "calls", ...}`) without waiting for it."""
        try:
            self._ensure_started()
        except WorkerGone:
            self._restart()
        self._send(request, self.limits.wall_seconds)

    def collect(self) -> dict[str, Any]:
        """The submitted step's outcome (`StepRun.to_json()`); a dead or late worker is a `sandbox_error`."""
        try:
            reply = self._receive()
        except WorkerGone as gone:
            self._restart()
            return {
                "calls": [],
                "results": [],
                "printed": "",
                "returned": None,
                "failure": AgentFailure.SANDBOX_ERROR.value,
                "detail": str(gone),
            }
        self.executed.extend(reply["calls"])
        return reply

    def _restart(self) -> None:
        self._kill()
        self.restarts += 1
        self._start()
        self._ensure_started()
        self._send({"op": "replay", "calls": self.executed}, self.limits.start_seconds)
        self._receive()

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self.scratch, ignore_errors=True)
