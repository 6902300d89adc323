"""Starting and stopping `transformers serve`: a local OpenAI-compatible server for one checkpoint.

The server is pinned to the checkpoint (its positional FORCE_MODEL argument), which loads
the weights before the server reports healthy, so `/health` answering means ready. A
request may then leave out `model` or name the same path; any other `model` gets a 400
("Server is pinned to ..."). An unpinned server would instead need every request to name a
local path and answers 500 when `model` is missing, which a client would retry as an
outage; hence the pin.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ServeError(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    root_url: str
    model_id: str
    log_path: Path

    @property
    def base_url(self) -> str:
        """What to give an OpenAI client (or AZURE_ENDPOINT): it appends /chat/completions."""
        return f"{self.root_url}/v1"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within `timeout_s`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_transformers_serve(
    model_path: str | Path,
    port: int | None = None,
    *,
    environ: Mapping[str, str],
    host: str = "127.0.0.1",
    device: str = "auto",
    dtype: str = "auto",
    quantization: str | None = None,
    cpu_threads: int | None = None,
    ready_timeout_s: float = 180.0,
    log_path: Path | None = None,
    extra_args: Sequence[str] = (),
) -> ServeProcess:
    """Start the server and return once `/health` answers; raise ServeError (server stopped) otherwise.

    `environ` is the environment the server runs with (pass `os.environ` from the caller's
    edge); the hub is switched off in it, since the checkpoint is a local folder.
    `cpu_threads` caps torch's CPU threads per request. On a small or shared CPU pass 1:
    OpenMP threads spin while they wait, so a server whose threads outnumber the free cores
    (concurrent requests, other processes) slowed from 4 s to 95 s for four rows here.
    """
    path = Path(model_path).resolve()
    if not (path / "config.json").is_file():
        raise ServeError(f"{path}: no checkpoint here (no config.json); fetch it first with tools/fetch_model.py")
    port = free_port(host) if port is None else port
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="transformers-serve-")) / "serve.log"
    command = [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        str(path),
        "--host",
        host,
        "--port",
        str(port),
        "--device",
        device,
        "--dtype",
        dtype,
        "--log-level",
        "warning",
    ]
    if quantization:
        command += ["--quantization", quantization]
    command += list(extra_args)
    env = {**environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    if cpu_threads is not None:
        env.update(OMP_NUM_THREADS=str(cpu_threads), MKL_NUM_THREADS=str(cpu_threads))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    server = ServeProcess(process, f"http://{host}:{port}", str(path), log_path)
    try:
        wait_until_ready(server, ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def wait_until_ready(server: ServeProcess, timeout_s: float) -> None:
    # The probe goes straight to 127.0.0.1, never through a proxy set in the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServeError(
                f"transformers serve exited with code {server.process.returncode} before it was ready; "
                f"log {server.log_path}:\n{server.log_tail()}"
            )
        try:
            with opener.open(f"{server.root_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise ServeError(f"transformers serve was not ready within {timeout_s:.0f}s; log {server.log_path}:\n{server.log_tail()}")
