"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1, standard library only.

Answers POST `<any path>/chat/completions` with a deterministic reply per prompt (the
`answers` mapping, else a digest of the prompt) and injects faults three ways:

- `script`: faults for the first requests, in arrival order (then plain replies);
- `per_prompt`: faults for the first attempts at a given prompt, whatever the arrival order,
  so a concurrent run still hits the row it means to (None in either list: a plain reply);
- `rates`: each kind with a probability, drawn from a hash of (seed, prompt, attempt), so
  the same run injects the same faults however requests interleave. `max_faults_per_prompt`
  caps the random faults each prompt gets, so bounded retries can always get through.

Every request is recorded in memory (path, query, headers with the key as sent, body,
arrival time, fault label, and the time its reply began to go out or it ended without one), so
a test can count the requests in flight at any instant (`in_flight_at`, `max_in_flight`).
The server is bounded: past `max_requests` every request gets a 503 with code `over_limit`
(recorded as such), it shuts itself down after `max_seconds`, and stalls end early at shutdown.

    with FaultServer(answers={"hi": "hello"}, per_prompt={"hi": ["rate_limit"]}) as server:
        client_endpoint = server.endpoint      # http://127.0.0.1:PORT/openai/deployments/test-deployment
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = (
    "rate_limit",  # 429 with Retry-After / retry-after-ms
    "quota",  # 429 insufficient_quota
    "server_error",  # 500
    "stall",  # a plain reply, but only after `stall_s` (past the client's timeout in tests)
    "content_filter_400",  # Azure's 400 with code content_filter
    "content_filter_finish",  # 200 whose finish_reason is content_filter
    "malformed",  # 200 whose body is not JSON
    "empty_choices",  # 200 with "choices": []
    "unauthorized",  # 401 quoting the key it was sent, as some providers do: clients must redact it
)


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after_s: float | None = None
    retry_after_ms: int | None = None
    stall_s: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {FAULT_KINDS}")


@dataclass
class RecordedRequest:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    received_at: float
    prompt: str | None
    attempt: int
    fault: str | None
    # when the reply's body began to go out (the client cannot have read it before: timing it after the write
    # would let a busy process record it after the client's next request arrived), or when the request ended
    # without one
    replied_at: float | None = None


@dataclass
class _Plan:
    answers: Mapping[str, str]
    script: list[Fault | None]
    per_prompt: dict[str, list[Fault | None]]
    rates: Mapping[str, float]
    seed: int
    max_faults_per_prompt: int | None
    default_fault: Fault
    max_requests: int
    records: list[RecordedRequest] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    random_faults: dict[str, int] = field(default_factory=dict)


def _as_fault(value: Fault | str | None, default: Fault) -> Fault | None:
    """A fault from its kind name (taking the server's defaults); None is a plain reply."""
    if value is None or isinstance(value, Fault):
        return value
    return Fault(value, default.retry_after_s, default.retry_after_ms, default.stall_s)


class FaultServer:
    """Start with `with FaultServer(...) as server:` or `start()` / `stop()`."""

    def __init__(
        self,
        *,
        answers: Mapping[str, str] | None = None,
        script: Iterable[Fault | str | None] = (),
        per_prompt: Mapping[str, Iterable[Fault | str | None]] | None = None,
        rates: Mapping[str, float] | None = None,
        seed: int = 0,
        max_faults_per_prompt: int | None = None,
        retry_after_s: float | None = None,
        retry_after_ms: int | None = None,
        stall_s: float = 30.0,
        max_requests: int = 5000,
        max_seconds: float = 300.0,
        deployment: str = "test-deployment",
    ) -> None:
        default = Fault("rate_limit", retry_after_s, retry_after_ms, stall_s)
        rates = dict(rates or {})
        for kind, rate in rates.items():
            Fault(kind)
            if not 0 <= rate <= 1:
                raise ValueError(f"rate for {kind} must be within [0, 1], got {rate}")
        if sum(rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.plan = _Plan(
            answers=dict(answers or {}),
            script=[_as_fault(item, default) for item in script],
            per_prompt={prompt: [_as_fault(item, default) for item in items] for prompt, items in (per_prompt or {}).items()},
            rates=rates,
            seed=seed,
            max_faults_per_prompt=max_faults_per_prompt,
            default_fault=default,
            max_requests=max_requests,
        )
        self.max_seconds = max_seconds
        self.deployment = deployment
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultServer:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        watchdog = threading.Thread(target=self._stop_after_deadline, daemon=True)
        self._threads = [serve, watchdog]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stop_after_deadline(self) -> None:
        if not self._stopping.wait(self.max_seconds):
            self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("fault server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def endpoint(self) -> str:
        """An Azure-style deployment endpoint on this server."""
        return f"{self.url}/openai/deployments/{self.deployment}"

    # -- what happened -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.plan.records)

    def requests_for(self, prompt: str) -> list[RecordedRequest]:
        return [record for record in self.requests if record.prompt == prompt]

    def fault_counts(self) -> dict[str, int]:
        """How many requests got each fault label ("none" for plain replies)."""
        counts: dict[str, int] = {}
        for record in self.requests:
            label = record.fault or "none"
            counts[label] = counts.get(label, 0) + 1
        return counts

    def in_flight_at(self, instant: float) -> int:
        """How many requests had arrived and not yet been answered at `instant` (time.monotonic())."""
        return sum(record.received_at <= instant and (record.replied_at is None or record.replied_at > instant) for record in self.requests)

    def max_in_flight(self, first: int = 0) -> int:
        """The most requests in flight at once: arrived, their reply not yet going out (a reply sent at the
        instant another request arrives is counted as gone first, so back-to-back requests count once).
        `first`: count only requests from that arrival index on (one run's, when several ran)."""
        events = []
        for record in self.requests[first:]:
            events.append((record.received_at, 1))
            if record.replied_at is not None:
                events.append((record.replied_at, -1))
        most = current = 0
        for _, step in sorted(events):  # at equal times -1 sorts before +1
            current += step
            most = max(most, current)
        return most

    def retry_gaps(self) -> list[tuple[float, float]]:
        """(asked wait, actual gap) for each request that told the client when to retry and was retried."""
        by_prompt: dict[str | None, list[RecordedRequest]] = {}
        for record in sorted(self.requests, key=lambda record: record.received_at):
            by_prompt.setdefault(record.prompt, []).append(record)
        gaps = []
        for records in by_prompt.values():
            for earlier, later in zip(records, records[1:]):
                asked = _asked_wait(earlier.fault)
                if asked is not None:
                    gaps.append((asked, later.received_at - earlier.received_at))
        return gaps

    # -- deciding a reply --------------------------------------------------------------------

    def reply_text(self, prompt: str) -> str:
        if prompt in self.plan.answers:
            return self.plan.answers[prompt]
        return "reply " + hashlib.sha256(prompt.encode()).hexdigest()[:12]

    def _choose_fault(self, prompt: str | None) -> tuple[int, Fault | None, bool]:
        """(attempt number for this prompt, the fault or None, whether the request is over the limit)."""
        plan = self.plan
        with self._lock:
            key = prompt or ""
            attempt = plan.attempts.get(key, 0)
            plan.attempts[key] = attempt + 1
            if len(plan.records) >= plan.max_requests:
                return attempt, None, True
            if plan.script:
                return attempt, plan.script.pop(0), False
            if key in plan.per_prompt and plan.per_prompt[key]:
                return attempt, plan.per_prompt[key].pop(0), False
            capped = plan.max_faults_per_prompt is not None and plan.random_faults.get(key, 0) >= plan.max_faults_per_prompt
            if plan.rates and not capped:
                draw = _uniform(plan.seed, key, attempt)
                for kind, rate in plan.rates.items():
                    if draw < rate:
                        plan.random_faults[key] = plan.random_faults.get(key, 0) + 1
                        return attempt, _as_fault(kind, plan.default_fault), False
                    draw -= rate
            return attempt, None, False

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.plan.records.append(record)

    def _replied(self, record: RecordedRequest) -> None:
        with self._lock:
            if record.replied_at is None:
                record.replied_at = time.monotonic()


def _uniform(seed: int, prompt: str, attempt: int) -> float:
    digest = hashlib.sha256(f"{seed}\0{attempt}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _asked_wait(fault: str | None) -> float | None:
    """The wait a recorded fault label such as `rate_limit:ms=50` or `rate_limit:s=1` asked for."""
    if not fault or ":" not in fault:
        return None
    unit, _, value = fault.split(":", 1)[1].partition("=")
    return float(value) / 1000 if unit == "ms" else float(value)


def _last_user_text(body: Any) -> str | None:
    try:
        content = [message for message in body["messages"] if message.get("role") == "user"][-1]["content"]
    except (TypeError, KeyError, IndexError, AttributeError):
        return None
    return content if isinstance(content, str) else None


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog of 5 drops connections when many clients connect at once (a
    # concurrent run): the client's SYN is retried a second later, past a short request timeout.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    owner: FaultServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        owner = self.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        url = urlsplit(self.path)
        prompt = _last_user_text(body)
        attempt, fault, over_limit = owner._choose_fault(prompt)
        label = "over_limit" if over_limit else _label(fault)
        record = RecordedRequest(url.path, parse_qs(url.query), dict(self.headers), body, time.monotonic(), prompt, attempt, label)
        owner._record(record)
        self.record = record
        try:
            if over_limit:
                return self._send(503, {"error": {"message": "fault server request limit reached", "code": "over_limit"}})
            if not url.path.endswith("/chat/completions") or prompt is None:
                return self._send(
                    404 if prompt is not None else 400, {"error": {"message": "expected POST .../chat/completions with messages"}}
                )
            self._answer(body, prompt, fault)
        finally:
            owner._replied(record)

    def _answer(self, body: dict[str, Any], prompt: str, fault: Fault | None) -> None:
        kind = fault.kind if fault else None
        if fault is not None and kind == "rate_limit":
            headers = {}
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = str(fault.retry_after_ms)
            if fault.retry_after_s is not None:
                headers["retry-after"] = f"{fault.retry_after_s:g}"
            message = "Requests have exceeded the token rate limit of your current pricing tier."
            return self._send(429, {"error": {"code": "429", "message": message}}, headers)
        if kind == "quota":
            message = "You exceeded your current quota, please check your plan and billing details."
            return self._send(
                429, {"error": {"message": message, "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
            )
        if kind == "server_error":
            return self._send(500, {"error": {"message": "The server had an error while processing your request.", "code": "500"}})
        if fault is not None and kind == "stall" and self.owner._stopping.wait(fault.stall_s):
            return None
        if kind == "content_filter_400":
            error = {
                "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}},
                },
            }
            return self._send(400, {"error": error})
        if kind == "unauthorized":
            sent = self.headers.get("api-key", "")
            return self._send(401, {"error": {"message": f"Incorrect API key provided: {sent}.", "code": "invalid_api_key"}})
        if kind == "malformed":
            return self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
        text = self.owner.reply_text(prompt)
        choices = (
            []
            if kind == "empty_choices"
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "content_filter" if kind == "content_filter_finish" else "stop",
                }
            ]
        )
        prompt_tokens, completion_tokens = len(prompt.split()), len(text.split())
        self._send(
            200,
            {
                "id": "chatcmpl-" + hashlib.sha256(prompt.encode()).hexdigest()[:16],
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model") or self.owner.deployment,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _send(self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if getattr(self, "record", None) is not None:
                self.owner._replied(self.record)
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a timeout test); nothing is left to tell it.
            pass


def _label(fault: Fault | None) -> str | None:
    if fault is None:
        return None
    if fault.kind == "rate_limit" and fault.retry_after_ms is not None:
        return f"rate_limit:ms={fault.retry_after_ms}"
    if fault.kind == "rate_limit" and fault.retry_after_s is not None:
        return f"rate_limit:s={fault.retry_after_s:g}"
    return fault.kind
