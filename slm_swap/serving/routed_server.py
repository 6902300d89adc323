"""The routed endpoint's HTTP side: a threaded server on 127.0.0.1 answering `POST <any path>/chat/completions` with
`serving.routed.route_request`, and `GET /health`. Each request is traced after its reply is sent, one at a time
(the Langfuse SDK keeps one client per key). `stop` waits for every request already taken, its trace included, so
nothing a caller was answered goes untraced when the server closes right after."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slm_swap.backends.retry import CircuitOpen
from slm_swap.serving.routed import Ask, RequestError, route_request, trace_request
from slm_swap.tracing.client import LangfuseSettings, TracingError


class RoutedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, track: str, slm: Ask, hosted: Ask, langfuse: LangfuseSettings, secrets: Sequence[str] = (), port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), RoutedHandler)
        self.track, self.slm, self.hosted = track, slm, hosted
        self.langfuse, self.secrets = langfuse, list(secrets)
        self.trace_lock = threading.Lock()
        self.traced: list[str] = []  # trace ids, in the order the requests finished
        self.in_flight = 0
        self.idle = threading.Condition()
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> RoutedServer:
        self.thread = threading.Thread(target=self.serve_forever, name="routed-endpoint", daemon=True)
        self.thread.start()
        return self

    def stop(self, drain_s: float = 120.0) -> None:
        """Stop taking requests, then wait (at most `drain_s`) for those taken to be answered and traced."""
        self.shutdown()
        with self.idle:
            if not self.idle.wait_for(lambda: self.in_flight == 0, timeout=drain_s):
                print(f"error: {self.in_flight} routed request(s) still running after {drain_s:.0f} s", file=sys.stderr, flush=True)
        self.server_close()

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Counts a request from the moment it is read until its trace is recorded. (ThreadingMixIn's own
        `block_on_close` joins connection threads instead, and a keep-alive client holds its thread open.)"""
        with self.idle:
            self.in_flight += 1
        try:
            yield
        finally:
            with self.idle:
                self.in_flight -= 1
                self.idle.notify_all()

    def __enter__(self) -> RoutedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def trace(self, body: Mapping[str, Any], reply: Any) -> None:
        with self.trace_lock:
            try:
                self.traced.append(trace_request(self.langfuse, self.secrets, self.track, body, reply))
            except TracingError as exc:
                print(f"error: LANGFUSE FAILED, a routed request was not traced: {exc}", file=sys.stderr, flush=True)


class RoutedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RoutedServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the route of each request is in its trace."""

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/").endswith("/health"):
            self.reply(200, {"status": "ok", "track": self.server.track})
        else:
            self.reply(404, error("not found: GET /health, POST /v1/chat/completions"))

    def do_POST(self) -> None:
        with self.server.handling():
            self.answer()

    def answer(self) -> None:
        if not self.path.split("?")[0].rstrip("/").endswith("/chat/completions"):
            self.reply(404, error("not found: POST /v1/chat/completions"))
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
            if not isinstance(body, dict):
                raise RequestError("the body must be a JSON object")
            reply = route_request(self.server.track, body, self.server.slm, self.server.hosted)
        except (RequestError, json.JSONDecodeError) as exc:
            self.reply(400, error(str(exc)))
            return
        except CircuitOpen as exc:
            self.reply(503, error(f"the hosted deployment is failing: {exc}"))
            return
        if reply.text is None:
            self.reply(502, error(f"the hosted deployment did not answer: {reply.answer.error}"))
        else:
            self.reply(200, reply.to_json(self.server.track))
        self.server.trace(body, reply)

    def reply(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error"}}
