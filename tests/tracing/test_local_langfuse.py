"""`eval "$(python tools/local_langfuse.py)"`: one command starts the local receiver in the background and points
the shell's LANGFUSE_* at it, so README's commands after the demo find a Langfuse; the SDK's auth check passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from slm_swap.tracing.client import check_connection, settings_from_env

REPO = Path(__file__).resolve().parents[2]


def test_one_command_starts_a_receiver_the_sdk_accepts(tmp_path: Path) -> None:
    shell = f'eval "$({sys.executable} tools/local_langfuse.py --dump-dir {tmp_path})" && env'
    done = subprocess.run(["bash", "-c", shell], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exported = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith(("LANGFUSE_", "SLM_SWAP_")))
    pid = int(exported["SLM_SWAP_RECEIVER_PID"])
    try:
        assert exported["LANGFUSE_HOST"].startswith("http://127.0.0.1:")
        assert "stop it with `kill $SLM_SWAP_RECEIVER_PID`" in done.stderr
        check_connection(settings_from_env(exported))  # raises when the keys or the host are wrong
        assert (tmp_path / "receiver.json").is_file()
    finally:
        os.kill(pid, signal.SIGTERM)
