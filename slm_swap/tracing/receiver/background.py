"""The local receiver in the background, for the commands a user runs by hand after the demo (README, "After
the demo"): `start_background` starts `python -m slm_swap.tracing.receiver.server` in a session of its own, waits
until it answers, and `shell_exports` are the lines that point LANGFUSE_* at it (`eval "$(python
tools/local_langfuse.py)"`). It runs until stopped (`kill $SLM_SWAP_RECEIVER_PID`); never on the product path.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from slm_swap.tracing.receiver.server import DEFAULT_KEYS

PID_VARIABLE = "SLM_SWAP_RECEIVER_PID"


class ReceiverStartError(RuntimeError):
    """The receiver did not come up; the message says why and where its log is."""


@dataclass(frozen=True)
class BackgroundReceiver:
    url: str
    pid: int
    public_key: str
    secret_key: str
    dump_dir: Path


def start_background(dump_dir: Path, port: int = 0, keys: tuple[str, str] = DEFAULT_KEYS, timeout_s: float = 30.0) -> BackgroundReceiver:
    dump_dir.mkdir(parents=True, exist_ok=True)
    ready = dump_dir / "receiver.json"  # the server writes it once it listens
    ready.unlink(missing_ok=True)
    log = dump_dir / "receiver.log"
    command = [sys.executable, "-m", "slm_swap.tracing.receiver.server", "--port", str(port), "--dump-dir", str(dump_dir)]
    command += ["--public-key", keys[0], "--secret-key", keys[1]]
    root = str(Path(__file__).resolve().parents[3])  # run from a clone without installing, as the tools do
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with log.open("ab") as out:
        # a session of its own: Ctrl-C in the shell that started it, or that shell's end, does not stop it
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while not ready.is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise ReceiverStartError(f"the local Langfuse receiver did not start (its log: {log})")
        time.sleep(0.05)
    url = json.loads(ready.read_text())["url"]
    with urllib.request.urlopen(f"{url}/api/public/health", timeout=5) as reply:
        reply.read()
    return BackgroundReceiver(url, process.pid, keys[0], keys[1], dump_dir)


def shell_exports(receiver: BackgroundReceiver) -> list[str]:
    """Lines for `eval`: the LANGFUSE_* variables and the receiver's process id."""
    values = {
        "LANGFUSE_PUBLIC_KEY": receiver.public_key,
        "LANGFUSE_SECRET_KEY": receiver.secret_key,
        "LANGFUSE_HOST": receiver.url,
        PID_VARIABLE: str(receiver.pid),
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
