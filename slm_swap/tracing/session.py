"""One Langfuse client for recording a finished run: real start and end times, a bounded flush, proof of delivery.

The SDK logs and drops what Langfuse refuses, so this module counts instead of
trusting it: every span ended here must be reported exported by the OTLP
exporter, and every score created here must be acknowledged by
`POST /api/public/scores` (202, or the `accepted` count of a 207). Anything
short of that, or a flush past its time bound, is a `TracingError`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import httpx
import requests
from langfuse import Langfuse, LangfuseEvent, LangfuseGeneration, LangfuseSpan, propagate_attributes
from langfuse import __version__ as langfuse_version
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator

from slm_swap.tracing.client import LangfuseSettings, TracingError, claim_public_key, redact, release_public_key, run_bounded

SPANS_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
BATCH_SIZE = 200  # spans per OTLP request and scores per scores request
# The OTel batch queue holds 2048 spans and drops beyond that; long runs flush on the way.
FLUSH_EVERY_SPANS = 1000
Observation = LangfuseSpan | LangfuseGeneration | LangfuseEvent


class EntropyIdGenerator(IdGenerator):
    """Trace and span ids from the OS, not the global `random`: training seeds that one, and two
    runs with the same seed would otherwise write into the same trace."""

    def generate_span_id(self) -> int:
        return secrets.randbits(64) or 1

    def generate_trace_id(self) -> int:
        return secrets.randbits(128) or 1


class DeliveryLedger:
    """What Langfuse confirmed, fed by the exporter and by HTTP response hooks; never holds a header."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans_exported = 0
        self.scores_accepted = 0
        self.problems: list[str] = []

    def note(self, problem: str) -> None:
        with self._lock:
            if problem not in self.problems:
                self.problems.append(problem)

    def count_spans(self, n: int) -> None:
        with self._lock:
            self.spans_exported += n

    def on_span_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code >= 400:
            self.note(f"POST {SPANS_PATH} answered HTTP {response.status_code}")

    def on_api_response(self, response: httpx.Response) -> None:
        request = response.request
        if request.method != "POST" or not request.url.path.endswith(SCORES_PATH):
            return
        try:
            sent = len(json.loads(request.content))
            if response.status_code == 207:
                response.read()
                result = response.json()
                accepted = int(result.get("accepted", 0))
                for error in result.get("errors", []):
                    self.note(f"a score was rejected: {error.get('message', error)}")
            else:
                accepted = sent if 200 <= response.status_code < 300 else 0
                if not accepted:
                    self.note(f"POST {SCORES_PATH} answered HTTP {response.status_code}")
        except Exception as exc:  # a hook that raises would break the SDK's upload; note it instead
            self.note(f"unreadable answer from {SCORES_PATH} ({type(exc).__name__})")
            return
        with self._lock:
            self.scores_accepted += accepted


class CountingExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, ledger: DeliveryLedger) -> None:
        self._inner = inner
        self._ledger = ledger

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self._ledger.count_spans(len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def sdk_headers(settings: LangfuseSettings) -> dict[str, str]:
    """The headers the SDK's own exporter sends (langfuse/_client/span_processor.py)."""
    token = base64.b64encode(f"{settings.public_key}:{settings.secret_key}".encode()).decode("ascii")
    return {
        "Authorization": f"Basic {token}",
        "x-langfuse-sdk-name": "python",
        "x-langfuse-sdk-version": langfuse_version,
        "x-langfuse-public-key": settings.public_key,
        "x-langfuse-ingestion-version": "4",
    }


def to_ns(epoch_s: float) -> int:
    """Nanoseconds since the epoch; a time that is not finite (never one of our clocks', only a bad record's) goes
    out as 0, so one odd value cannot take the whole trace down with it."""
    return round(epoch_s * 1_000_000_000) if math.isfinite(epoch_s) else 0


class TracingSession:
    """A Langfuse client for one recording. Use `with`; call `finish()` once everything is recorded."""

    def __init__(self, settings: LangfuseSettings, secrets: Sequence[str] = ()) -> None:
        claim_public_key(settings.public_key)
        self.settings = settings
        self.ledger = DeliveryLedger()
        self._secrets = [settings.secret_key, *secrets]
        self._ended = 0
        self._scored = 0
        self._flushed_at = 0
        self._deadline: float | None = None
        self._timed_out = False
        self._parents: dict[str, Any] = {}
        spans_http = requests.Session()
        spans_http.hooks["response"].append(self.ledger.on_span_response)
        exporter = OTLPSpanExporter(
            endpoint=settings.host + SPANS_PATH,
            headers=sdk_headers(settings),
            timeout=settings.request_timeout_s,
            compression=Compression.Gzip,
            session=spans_http,
        )
        self._http = httpx.Client(timeout=settings.request_timeout_s, event_hooks={"response": [self.ledger.on_api_response]})
        # A provider of our own keeps the process-wide OTel provider untouched and lets close() stop its thread.
        self._provider = TracerProvider(shutdown_on_exit=False, id_generator=EntropyIdGenerator())
        self.client = Langfuse(
            public_key=settings.public_key,
            secret_key=settings.secret_key,
            base_url=settings.host,
            timeout=max(1, round(settings.request_timeout_s)),
            httpx_client=self._http,
            flush_at=BATCH_SIZE,
            tracer_provider=self._provider,
            span_exporter=CountingExporter(exporter, self.ledger),
            mask=self._mask,
        )
        # start_observation() has no start time; a run recorded after the fact needs its real one,
        # so spans start on the client's own tracer and the SDK's public wrappers dress them.
        self._tracer = self.client._otel_tracer

    def __enter__(self) -> TracingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clean(self, value: Any) -> Any:
        return redact(value, self._secrets)

    def _mask(self, *, data: Any, **kwargs: Any) -> Any:
        return self.clean(data)

    @contextmanager
    def trace(self, name: str, tags: Sequence[str] = ()) -> Iterator[None]:
        """Spans started inside belong to a trace called `name`."""
        with propagate_attributes(trace_name=self.clean(name)[:200], tags=[self.clean(t)[:200] for t in tags] or None):
            yield

    def start(self, kind: type[Observation], name: str, *, at: float, parent: Observation | None = None, **fields: Any) -> Observation:
        context = otel_trace.set_span_in_context(self._parents[parent.id]) if parent is not None else None
        span = self._tracer.start_span(self.clean(name), context=context, start_time=to_ns(at))
        if not span.is_recording():
            raise TracingError(
                "the Langfuse SDK is not recording in this process (LANGFUSE_TRACING_ENABLED=false or OTEL_SDK_DISABLED=true?)"
            )
        observation = kind(otel_span=span, langfuse_client=self.client, **{k: self.clean(v) for k, v in fields.items()})
        self._parents[observation.id] = span
        return observation

    def end(self, observation: Observation, *, at: float) -> None:
        observation.end(end_time=to_ns(at))
        self._parents.pop(observation.id, None)
        self._ended += 1
        if self._ended - self._flushed_at >= FLUSH_EVERY_SPANS:
            self.flush()

    def score(
        self,
        *,
        trace_id: str,
        name: str,
        value: float,
        data_type: str,
        at: float,
        observation_id: str | None = None,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.client.create_score(
            name=self.clean(name),
            value=float(value),
            trace_id=trace_id,
            observation_id=observation_id,
            data_type=data_type,  # type: ignore[arg-type]
            comment=self.clean(comment) if comment else None,
            metadata=self.clean(metadata) if metadata else None,
            timestamp=datetime.fromtimestamp(at, tz=timezone.utc),
        )
        self._scored += 1

    def trace_url(self, trace_id: str) -> str:
        try:
            url = run_bounded(
                lambda: self.client.get_trace_url(trace_id=trace_id),
                self.settings.request_timeout_s + 5.0,
                "looking up the Langfuse project",
            )
        except Exception:
            url = None  # the link is a convenience; whether the data arrived is for finish() to say
        return url or f"{self.settings.host}/trace/{trace_id}"

    def flush(self) -> None:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.settings.flush_timeout_s
        self._flushed_at = self._ended
        remaining = max(self._deadline - time.monotonic(), 0.0)
        try:
            run_bounded(self.client.flush, remaining, "flushing to Langfuse")
        except TracingError:
            self._timed_out = True
            seen = f" (so far: {'; '.join(self.ledger.problems)})" if self.ledger.problems else ""
            raise TracingError(
                f"Langfuse at {self.settings.host} did not take the data within the {self.settings.flush_timeout_s:g} s flush bound{seen}"
            ) from None

    def finish(self) -> None:
        """Flush within the bound, then raise TracingError unless Langfuse took every span and score."""
        self.flush()
        missing = []
        if self.ledger.spans_exported < self._ended:
            missing.append(f"{self._ended - self.ledger.spans_exported} of {self._ended} spans")
        if self.ledger.scores_accepted < self._scored:
            missing.append(f"{self._scored - self.ledger.scores_accepted} of {self._scored} scores")
        if missing:
            causes = "; ".join(self.ledger.problems) or "no answer: unreachable, timed out or dropped"
            raise TracingError(f"Langfuse at {self.settings.host} did not take {' and '.join(missing)} ({causes})")

    def close(self) -> None:
        """Shut the client down (briefly bounded: after a failed flush nothing more is owed) and free its public key."""

        def shutdown() -> None:
            self.client.shutdown()
            self._provider.shutdown()
            self._http.close()

        # After a timed-out flush nothing more is owed: the shutdown goes on in a daemon thread,
        # which finishes or dies with the process; the verdict came from finish().
        with contextlib.suppress(Exception):
            run_bounded(shutdown, 0.0 if self._timed_out else 5.0, "closing the Langfuse client")
        release_public_key(self.settings.public_key, self.client)
