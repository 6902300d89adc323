"""The sandbox boundary, parent side: one worker process per episode (`worker`), its limits, its protocol, recovery.

Model-written code runs only in a worker, and the worker runs inside an operating-system boundary it sets
up on itself before it reads a request (`confine` says what each layer stops): its own user, PID, mount,
network, IPC and UTS namespaces, a read-only view of only what the environments need with an in-memory
`/scratch` as the one writable place, no network, `no_new_privs`, no capabilities, a seccomp filter
against new programs, processes, signals, sockets and mounts, and limits on processes, open files and
file size. Inside it, smolagents' interpreter is a first filter (`codeact`): an allow-list of imports,
no `open`/`eval`/`exec`, no dunder or frame attributes, an operation cap.

This side treats the worker as untrusted:
- **fail closed**: the worker reports which layers it got; the codeact arm refuses to run model-written
  code when a required one is missing (`SandboxUnavailable`, naming it) unless the user passed
  `--unsafe-local-executor` (`require_boundary=False`); each trajectory records the isolation it ran in;
- **a protocol, not trust**: every request has an id; a reply must be one JSON line under
  `MAX_REPLY_BYTES` with exactly the step's keys, that id, calls that name a tool offered in that step with
  JSON arguments (`environments.checked_call`), and a known failure kind. Anything else (a second reply,
  stray bytes, a forged call) kills the worker and makes the step a `sandbox_error`;
- **limits**: a per-step CPU-time limit inside the worker (RLIMIT_CPU), a per-step wall-clock limit here
  after which the worker is killed, RLIMIT_AS (its imports plus `memory_bytes`);
- **the parent survives**: the worker cannot see or signal this process (PID namespace, seccomp); a crash
  or a kill costs one step, not the run: a new worker is started and the episode's recorded calls are
  replayed into fresh environment instances (BFCL's environments are deterministic: seeded randomness);
- **clean up**: each worker's folder (its root's mount point and stderr) lives under one run-owned folder
  (`scratch_root`, by default `05_eval/sandbox/`); `close` removes it, and the first sandbox a process opens
  removes the folders of processes that are gone (a run killed with SIGKILL). Nothing goes to the system's
  temporary folder.

What it does not stop:
- with `--unsafe-local-executor` on a machine without user namespaces, an escape from the interpreter runs
  with this user's rights (seccomp and the limits still hold on x86_64);
- a step that only waits (`time.sleep`) costs wall time up to `wall_seconds`, and the memory of one step may
  reach `memory_bytes` per episode process, times the episodes that run at once; the CPU and memory of the
  machine are shared (no cgroup);
- a worker that escaped the interpreter can still answer its own step with a well-formed reply: its calls
  are then offered tools with JSON arguments, which scoring replays in its own instances, as if the model
  had written them;
- the code's variables do not survive a restart after a kill (the environment state does).

A sandbox must be opened from a thread that outlives it: the worker's parent-death signal follows the thread.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slm_swap
from slm_swap.layout import Layout, sandbox_dir
from slm_swap.tracks.agent.episodes.isolation import boundary_gaps
from slm_swap.tracks.agent.episodes.protocol import (
    MAX_REPLY_BYTES,
    WorkerGone,
    checked_isolation,
    checked_step,
    parse_reply,
    sandbox_failure,
)

PACKAGE_ROOT = Path(slm_swap.__file__).resolve().parents[1]
WORKER_IMPORTS = ("bfcl_eval", "smolagents")  # third-party packages the worker imports
UNSAFE_HINT = "pass --unsafe-local-executor to run it with the interpreter's allow-list alone"


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


class SandboxUnavailable(Exception):
    """The boundary model-written code needs cannot be set up on this machine."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_swept: set[Path] = set()
_counter = itertools.count()


def sweep_scratch(root: Path) -> None:
    """Remove the worker folders of processes that are gone: what a run killed with SIGKILL left behind."""
    if root in _swept or not root.is_dir():
        _swept.add(root)
        return
    _swept.add(root)
    for folder in root.iterdir():
        owner = folder.name.split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)


class EpisodeSandbox:
    """One episode's worker. `submit` a step, later `collect` its outcome; meanwhile other episodes' workers run."""

    def __init__(
        self,
        classes: list[str],
        initial_config: dict[str, Any],
        long_context: bool,
        arm: str,
        limits: SandboxLimits,
        scratch_root: Path | None = None,
        require_boundary: bool = True,
    ) -> None:
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
        self.require_boundary = require_boundary and arm == "codeact"  # only codeact runs model-written code
        self.executed: list[dict[str, Any]] = []  # every call run so far: what a restart replays
        self.restarts = 0
        self.isolation: dict[str, Any] = {}
        root = Path(scratch_root) if scratch_root is not None else sandbox_dir(Layout(PACKAGE_ROOT).eval_dir)
        root.mkdir(parents=True, exist_ok=True)
        sweep_scratch(root)
        self.scratch = root / f"{os.getpid()}-{next(_counter)}-{os.urandom(4).hex()}"
        (self.scratch / "root").mkdir(parents=True)
        (self.scratch / "home").mkdir()
        self._ids = itertools.count(1)
        self._request_id = 0
        self._offered: set[str] = set()
        self._refused: dict[str, Any] | None = None
        self._buffer = b""
        self._deadline = 0.0
        self._limit = 0.0
        try:
            self._start()
            self._ensure_started()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self._buffer = b""
        # nothing of this process's environment (keys, endpoints); a fixed hash seed, so that an observation
        # that lists a set comes out in the same order in every run
        home = str(self.scratch / "home")  # the worker moves HOME to /scratch once it is confined
        env = {"PATH": os.defpath, "PYTHONPATH": worker_python_path(), "HOME": home, "TMPDIR": home, "PYTHONHASHSEED": "0"}
        with open(self.scratch / "worker.stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "slm_swap.tracks.agent.episodes.worker", str(self.scratch / "root")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=home,
                env=env,
                start_new_session=True,  # its own process group, so a kill reaches what it started
            )
        self._send(self.start_request, self.limits.start_seconds)
        self._started = False

    def _send(self, request: dict[str, Any], seconds: float) -> None:
        self._limit = seconds
        self._request_id = next(self._ids)
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps({**request, "id": self._request_id}) + "\n").encode("utf-8"))
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is gone; the read that follows says so
        self._deadline = time.monotonic() + seconds

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        buffer = bytearray(self._buffer)  # appended in place: a pipe gives 64 KiB a read, a reply may be megabytes
        while (end := buffer.find(b"\n")) < 0:
            if len(buffer) > MAX_REPLY_BYTES:
                raise WorkerGone(f"protocol: a reply longer than {MAX_REPLY_BYTES} bytes")
            left = self._deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WorkerGone(f"no reply within {self._limit:g} s (wall-clock limit)")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise WorkerGone(f"the sandbox process ended (exit {self.process.wait()}){self._stderr_tail()}")
            buffer += chunk
        line, self._buffer = bytes(buffer[:end]), bytes(buffer[end + 1 :])
        if len(line) > MAX_REPLY_BYTES:
            raise WorkerGone(f"protocol: a reply longer than {MAX_REPLY_BYTES} bytes")
        if self._buffer:
            raise WorkerGone("protocol: more than one reply to a request")
        return parse_reply(line, self._request_id)

    def _stray_output(self) -> bool:
        """Bytes the worker wrote after its reply: a second reply, or anything else."""
        assert self.process.stdout is not None
        return bool(self._buffer) or bool(select.select([self.process.stdout.fileno()], [], [], 0)[0])

    def _stderr_tail(self) -> str:
        path = self.scratch / "worker.stderr"
        text = path.read_text(encoding="utf-8", errors="replace").strip() if path.exists() else ""
        return f": {text[-300:]}" if text else ""

    def _ensure_started(self) -> None:
        if self._started:
            return
        self.isolation = checked_isolation(self._receive())
        self._started = True
        gaps = boundary_gaps(self.isolation)
        if self.require_boundary and gaps:
            missing = "; ".join(self.isolation.get("missing", [])) or ", ".join(gaps)
            raise SandboxUnavailable(
                f"the codeact arm runs model-written code only inside the sandbox boundary, and this machine "
                f"lacks {', '.join(gaps)} ({missing}): {UNSAFE_HINT}"
            )

    def submit(self, request: dict[str, Any]) -> None:
        """Send one step (`{"op": "code", ...}` or `{"op": "calls", ...}`) without waiting for it."""
        self._offered = set(request["offered"])
        if self._stray_output():  # the step is not run: the worker that would run it lied before
            self._restart()
            self._refused = sandbox_failure("protocol: the worker wrote outside a reply; it was killed")
            return
        self._send(request, self.limits.wall_seconds)

    def collect(self) -> dict[str, Any]:
        """The submitted step's outcome (`StepRun.to_json()`, checked); a dead, late or lying worker is a `sandbox_error`."""
        if self._refused is not None:
            refused, self._refused = self._refused, None
            return refused
        try:
            reply = checked_step(self._receive(), self._offered)
        except WorkerGone as gone:
            self._restart()
            return sandbox_failure(str(gone))
        self.executed.extend(reply["calls"])
        return reply

    def _restart(self) -> None:
        self._kill()
        self.restarts += 1
        self._start()
        self._ensure_started()
        self._send({"op": "replay", "calls": self.executed}, self.limits.start_seconds)
        reply = self._receive()
        if reply != {"id": self._request_id, "ok": True}:
            raise WorkerGone("protocol: a replay reply that is not ok")

    def _kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        if hasattr(self, "process"):
            self._kill()
        shutil.rmtree(self.scratch, ignore_errors=True)
