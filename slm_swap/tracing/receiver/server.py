"""A local Langfuse-compatible receiver on 127.0.0.1: the part of the Langfuse API that the SDK calls.
Tests point the real `langfuse` SDK at it and assert on what arrived; the offline demo runs it when no
Langfuse is configured and keeps what it got as JSON files:

    python -m slm_swap.tracing.receiver.server --port 3000 --dump-dir slm_swap/05_eval/langfuse-local \
        --public-key pk-lf-local --secret-key sk-lf-local

Served: GET /api/public/health, GET /api/public/projects (Basic auth, 401 on a
wrong key), POST /api/public/otel/v1/traces (OTLP protobuf or JSON, gzip or not)
and POST /api/public/scores (a list of scores; 202, or 207 with the rejected ones).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import signal
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from slm_swap.files import write_json_atomic
from slm_swap.tracing.receiver.otlp import OtlpDecodeError, ReceivedSpan, decode_spans, decompress
from slm_swap.tracing.receiver.store import ReceivedRequest, ReceiverStore, check_score

DEFAULT_KEYS = ("pk-lf-local", "sk-lf-local")
TRACES_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
INGESTION_PATHS = (TRACES_PATH, SCORES_PATH)


class LangfuseReceiver:
    """The receiver: start(), point the SDK at `url`, read what arrived, clear(), stop()."""

    def __init__(
        self,
        keys: Iterable[tuple[str, str]] = (DEFAULT_KEYS,),
        *,
        port: int = 0,
        dump_dir: Path | None = None,
        project_id: str = "slm-swap-local",
    ) -> None:
        self._keys = dict(keys)
        self._port = port
        self.project_id = project_id
        self.store = ReceiverStore(dump_dir)
        self._failure_status: int | None = None
        self._failure_paths: tuple[str, ...] = INGESTION_PATHS
        self._delay_s = 0.0
        self._release, self._modes_lock = threading.Event(), threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> LangfuseReceiver:
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.receiver = self  # type: ignore[attr-defined]
        self._server = server
        self._release = threading.Event()
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="langfuse-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._release.set()  # wakes handlers sleeping in delay mode
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        self.store.close()  # the dump folder's last batch

    def __enter__(self) -> LangfuseReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def accept_key(self, public_key: str, secret_key: str) -> None:
        self._keys[public_key] = secret_key

    def fail_ingestion(self, status: int | None = 500, *, traces: bool = True, scores: bool = True) -> None:
        """Answer trace uploads, score uploads or both with `status` (None: accept again)."""
        self._failure_status = status
        self._failure_paths = tuple(p for p, chosen in ((TRACES_PATH, traces), (SCORES_PATH, scores)) if chosen)

    def delay_ingestion(self, seconds: float) -> None:
        """Hold every trace and score upload for `seconds` before answering (a slow or hung Langfuse)."""
        self._delay_s = seconds

    def injected_status(self, path: str) -> int | None:
        """Apply delay mode to an upload, then say which status failure mode wants for it (None: none)."""
        with self._modes_lock:  # the delay and its event are read together: clear() may swap the event
            delay_s, release = self._delay_s, self._release
        if delay_s:
            release.wait(delay_s)
        return self._failure_status if path in self._failure_paths else None

    def clear(self) -> None:
        """Forget everything received and leave failure and delay modes."""
        self._failure_status = None
        with self._modes_lock:
            self._delay_s = 0.0
            self._release.set()  # wakes handlers sleeping in delay mode; later ones wait on a fresh event
            self._release = threading.Event()
        self.store.clear()

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        return self.store.spans(trace_id)

    def events(self) -> list[ReceivedSpan]:
        return [s for s in self.store.spans() if s.observation_type == "event"]

    def trace_ids(self) -> list[str]:
        return self.store.trace_ids()

    def scores(self) -> list[dict[str, Any]]:
        return self.store.scores()

    def requests(self) -> list[ReceivedRequest]:
        return self.store.requests()

    def public_key_for(self, authorization: str | None) -> str | None:
        """The public key of a valid Basic credential, else None."""
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user if user in self._keys and self._keys[user] == password else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slm-swap-langfuse-receiver"

    @property
    def receiver(self) -> LangfuseReceiver:
        return self.server.receiver  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output and the demo's console are not the place for an access log."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/api/public/health":
            self._reply(200, {"status": "OK", "version": "local"}, b"")
            return
        public_key = self.receiver.public_key_for(self.headers.get("Authorization"))
        if path != "/api/public/projects":
            self._reply(404, {"message": f"no route {path}"}, b"", public_key)
        elif public_key is None:
            self._unauthorized(b"")
        else:
            project = {
                "id": self.receiver.project_id,
                "name": "SLM Swap local",
                "organization": {"id": "local", "name": "local"},
                "metadata": {},
            }
            self._reply(200, {"data": [project]}, b"", public_key)

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        raw = self._read_body()
        if raw is None:
            self.close_connection = True  # without a length the body's end is unknown
            self._reply(411, {"message": "a numeric Content-Length or chunked Transfer-Encoding is required"}, b"")
            return
        public_key = self.receiver.public_key_for(self.headers.get("Authorization"))
        if path not in INGESTION_PATHS:
            self._reply(404, {"message": f"no route {path}"}, raw, public_key)
            return
        if public_key is None:
            self._unauthorized(raw)
            return
        try:
            body = decompress(raw, self.headers.get("Content-Encoding", ""))
        except OtlpDecodeError as exc:
            self._reply(400, {"message": str(exc)}, raw, public_key)
            return
        injected = self.receiver.injected_status(path)
        if injected is not None:
            self._reply(injected, {"message": "injected failure"}, body, public_key)
        elif path == TRACES_PATH:
            self._ingest_spans(body, public_key)
        else:
            self._ingest_scores(body, public_key)

    def _read_body(self) -> bytes | None:
        """The request body: Content-Length bytes, or chunks (OpenTelemetry JS, as in Mastra's Langfuse exporter, streams)."""
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields, none expected
            return b"".join(chunks)
        length = self.headers.get("Content-Length", "")
        return self.rfile.read(int(length)) if length.isdigit() else None

    def _ingest_spans(self, body: bytes, public_key: str) -> None:
        content_type = self.headers.get("Content-Type", "")
        try:
            spans = decode_spans(body, content_type)
        except OtlpDecodeError as exc:
            self._reply(400, {"message": str(exc)}, body, public_key)
            return
        self.receiver.store.add_spans(spans)
        if content_type.startswith("application/json"):
            self._reply(200, {}, body, public_key)
        else:
            self._send(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf", body, public_key)

    def _ingest_scores(self, body: bytes, public_key: str) -> None:
        try:
            scores = json.loads(body)
        except ValueError as exc:
            self._reply(400, {"message": f"body is not JSON ({exc})"}, body, public_key)
            return
        if not isinstance(scores, list):
            self._reply(400, {"message": "expected a JSON list of scores"}, body, public_key)
            return
        errors = [problem for problem in map(check_score, scores) if problem]
        self.receiver.store.add_scores([s for s in scores if not check_score(s)])
        if errors:
            result = {"accepted": len(scores) - len(errors), "rejected": len(errors), "errors": [{"message": e} for e in errors]}
            self._reply(207, result, body, public_key)
        else:
            self._reply(202, {"message": "Accepted"}, body, public_key)

    def _unauthorized(self, body: bytes) -> None:
        self._reply(401, {"message": "Invalid credentials. Confirm that you've configured the correct host."}, body)

    def _reply(self, status: int, payload: Any, body: bytes, public_key: str | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json", body, public_key)

    def _send(self, status: int, data: bytes, content_type: str, body: bytes, public_key: str | None) -> None:
        # Only these fields are kept: never the Authorization header or any other request header.
        kind, encoding = self.headers.get("Content-Type", ""), self.headers.get("Content-Encoding", "")
        request = ReceivedRequest(self.command, self.path, status, public_key, kind, encoding, body)
        self.receiver.store.add_request(request)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (delay mode); nobody is left to answer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m slm_swap.tracing.receiver.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--dump-dir", type=Path, required=True, help="folder for the JSON files of what arrived")
    parser.add_argument("--public-key", default=DEFAULT_KEYS[0], help="the one accepted public key")
    parser.add_argument("--secret-key", default=DEFAULT_KEYS[1], help="the one accepted secret key")
    return parser


def main(args: argparse.Namespace) -> int:
    receiver = LangfuseReceiver([(args.public_key, args.secret_key)], port=args.port, dump_dir=args.dump_dir)
    stopped = threading.Event()
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: stopped.set())
    receiver.start()
    write_json_atomic(args.dump_dir / "receiver.json", {"url": receiver.url, "project_id": receiver.project_id})
    print(f"Langfuse-compatible receiver listening on {receiver.url}; writing what it receives to {args.dump_dir}", flush=True)
    try:
        while not stopped.wait(0.5):  # timed: an untimed wait once missed the SIGTERM handler's event and never ended
            pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
