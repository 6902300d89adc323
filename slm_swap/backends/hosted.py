"""The hosted model (`--model=azure`): an Azure OpenAI deployment or any OpenAI-compatible server.

Requests go to `{endpoint}/chat/completions` through the official `openai` SDK, with the
key in the `api-key` header and `api-version` as a query parameter when one is set. The
SDK's own retries are off: `slm_swap.backends.retry` decides, so that every retry is bounded by
the row's budget and counted per error class. `answer` never raises for a failed call;
the row comes back as an error Answer, and only `CircuitOpen` stops the run.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# The request threads of a run with --max-connections touch these SDKs, so they are whole before the first thread
# starts. openai answers on httpx2 but looks up `sys.modules["httpx"]` on every request (openai/_httpx2.py) without
# importing it; the Langfuse SDK, imported while the first requests are in flight (harness/writer.py), imports httpx,
# and a thread that found it half-initialised lost its row (issue 30: 4 runs of 15). Langfuse would import httpx
# anyway: done here it moves about 0.07 s from beside the requests to before them (docs/benchmarks.md).
import httpx  # noqa: F401
import openai

from slm_swap.backends.api import Answer
from slm_swap.backends.concurrency import AdaptiveLimit, Unlimited
from slm_swap.backends.retry import RETRYABLE, CircuitBreaker, RetryPolicy, parse_retry_after
from slm_swap.data.rows import Row
from slm_swap.prompts import build_messages
from slm_swap.scoring.outcomes import ErrorClass

ENDPOINT_VAR, KEY_VAR, VERSION_VAR = "AZURE_ENDPOINT", "AZURE_API_KEY", "AZURE_API_VERSION"
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
_MESSAGE_LIMIT = 300


class Secret(str):
    """A key that works as a string but prints as [hidden]: `pytest -l` shows the locals of every frame in a traceback."""

    def __repr__(self) -> str:
        return "'[hidden]'"


class HostedSettingsError(ValueError):
    """The hosted endpoint is not configured; the message names the variable to set."""


@dataclass(frozen=True)
class HostedSettings:
    endpoint: str
    api_key: str = field(repr=False)
    api_version: str | None = None


def hosted_settings_from_env(environ: Mapping[str, str]) -> HostedSettings:
    """Endpoint, key and API version from the environment; an empty value counts as missing."""
    for name in (ENDPOINT_VAR, KEY_VAR):
        if not environ.get(name, "").strip():
            raise HostedSettingsError(
                f"{name} is not set; --model=azure needs {ENDPOINT_VAR} "
                "(https://<resource>/openai/deployments/<deployment>, or an OpenAI-compatible base URL "
                f"such as http://127.0.0.1:8000/v1) and {KEY_VAR}; {VERSION_VAR} is optional"
            )
    return HostedSettings(
        endpoint=check_endpoint(environ[ENDPOINT_VAR].strip()),
        api_key=Secret(environ[KEY_VAR].strip()),
        api_version=environ.get(VERSION_VAR, "").strip() or None,
    )


def check_endpoint(endpoint: str) -> str:
    """The endpoint without a trailing slash; refuse what would build a wrong request URL."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise HostedSettingsError(f"{ENDPOINT_VAR} must be an http(s) URL, got {public_endpoint(endpoint)!r}")
    endpoint = endpoint.rstrip("/")
    if endpoint.endswith("/chat/completions"):
        raise HostedSettingsError(f"{ENDPOINT_VAR} must stop before /chat/completions (the client appends it)")
    return endpoint


def public_endpoint(endpoint: str) -> str:
    """The endpoint without user info, query or fragment, where credentials could hide."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def deployment_of(endpoint: str) -> str | None:
    """`gpt-4o` for `https://x.openai.azure.com/openai/deployments/gpt-4o`, else None."""
    segments = urlsplit(endpoint).path.strip("/").split("/")
    if len(segments) >= 2 and segments[-2] == "deployments":
        return segments[-1]
    return None


@dataclass
class _Attempt:
    """One HTTP exchange: a reply (`text` set) or a classified failure."""

    text: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    error_class: ErrorClass | None = None
    error: str | None = None
    retry_after_s: float | None = None


class HostedModel:
    """Answers rows one call each; safe to share between threads."""

    name = "azure"

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        *,
        api_version: str | None = None,
        model: str | None = None,
        max_tokens: int = 512,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        row_budget_s: float = 120.0,
        base_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
        circuit_threshold: int = 10,
        seed: int | None = None,
        gate: AdaptiveLimit | Unlimited | None = None,
    ) -> None:
        if not api_key:
            raise HostedSettingsError(f"{KEY_VAR} is empty")
        if max_tokens < 1 or timeout_s <= 0:
            raise ValueError("max_tokens must be >= 1 and timeout_s > 0")
        self.endpoint = check_endpoint(endpoint)
        self.api_version = api_version
        # Azure reads the deployment from the path and ignores the body's `model`; a server pinned
        # to one model (`transformers serve <path>`) uses it when the field is absent. So the field
        # is sent only when asked for.
        self.model = model
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.policy = RetryPolicy(max_retries=max_retries, row_budget_s=row_budget_s, base_wait_s=base_wait_s, max_wait_s=max_wait_s)
        self.breaker = CircuitBreaker(circuit_threshold)
        self.gate = gate or Unlimited()  # each HTTP attempt holds one of its slots
        self._secret = api_key
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._client = openai.OpenAI(
            base_url=self.endpoint,
            api_key=api_key,
            default_headers={"api-key": api_key},
            default_query={"api-version": api_version} if api_version else None,
            max_retries=0,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "endpoint": public_endpoint(self.endpoint),
            "deployment": deployment_of(self.endpoint),
            "model": self.model,
            "api_version": self.api_version,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "timeout_s": self.timeout_s,
            "max_retries": self.policy.max_retries,
            "row_budget_s": self.policy.row_budget_s,
            "base_wait_s": self.policy.base_wait_s,
            "max_wait_s": self.policy.max_wait_s,
            "circuit_threshold": self.breaker.threshold,
        }

    def prepare(self, rows: Sequence[Row]) -> None:
        return None

    def answer(self, row: Row) -> Answer:
        """One row, retried within its budget; `latency_s` is the row's whole time, waits included."""
        return self.answer_messages(build_messages(row.prompt))

    def answer_messages(self, messages: list[dict[str, str]], temperature: float | None = None) -> Answer:
        """One chat's reply, retried within the row budget; greedy (temperature 0) unless `temperature` says otherwise
        (the agent track's teacher samples)."""
        self.breaker.check()
        started = time.monotonic()
        retries: dict[str, int] = {}
        while True:
            remaining = self.policy.row_budget_s - (time.monotonic() - started)
            with self.gate.slot() as settle:
                attempt = self._attempt(messages, max(0.001, min(self.timeout_s, remaining)), temperature)
                settle(attempt.error_class)
            if attempt.error_class not in RETRYABLE:
                break
            with self._rng_lock:
                wait = self.policy.next_wait(
                    sum(retries.values()), attempt.retry_after_s, self.policy.row_budget_s - (time.monotonic() - started), self._rng
                )
            if wait is None:
                attempt.error = f"{attempt.error} ({self._why_given_up(sum(retries.values()), attempt.retry_after_s)})"
                break
            retries[attempt.error_class.value] = retries.get(attempt.error_class.value, 0) + 1
            time.sleep(wait)
        error = attempt.error
        self.breaker.record(attempt.error_class, error)
        return Answer(
            text=attempt.text,
            latency_s=time.monotonic() - started,
            error=error,
            error_class=attempt.error_class,
            finish_reason=attempt.finish_reason,
            usage=attempt.usage,
            retries=retries,
        )

    def close(self) -> None:
        self._client.close()

    def _why_given_up(self, retries_done: int, retry_after_s: float | None) -> str:
        if retries_done >= self.policy.max_retries:
            return f"after {retries_done} retries"
        budget = f"the row budget of {self.policy.row_budget_s:g}s"
        if retry_after_s is not None:
            return f"after {retries_done} retries; the server asked to wait {retry_after_s:g}s, beyond {budget}"
        return f"after {retries_done} retries; {budget} is spent"

    def _attempt(self, messages: list[dict[str, str]], timeout_s: float, temperature: float | None = None) -> _Attempt:
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                messages=messages,
                model=self.model if self.model else openai.NOT_GIVEN,
                temperature=0 if temperature is None else temperature,
                max_tokens=self.max_tokens,
                timeout=timeout_s,
                # Azure answers 400 when a request carries both `api-key` and a bearer token.
                extra_headers={"Authorization": openai.Omit()},
            )
        except openai.APITimeoutError:
            return _Attempt(error_class=ErrorClass.TIMEOUT, error=f"no reply within {timeout_s:.1f}s")
        except openai.APIConnectionError as exc:
            return _Attempt(error_class=ErrorClass.SERVER, error=self._redact(f"connection failed: {exc.__cause__ or exc}"))
        except openai.APIStatusError as exc:
            return self._status_failure(exc)
        except openai.APIError as exc:
            return _Attempt(error_class=ErrorClass.BAD_RESPONSE, error=self._redact(f"unusable reply: {exc}"))
        return self._parse_reply(raw.http_response.text)

    def _status_failure(self, exc: openai.APIStatusError) -> _Attempt:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") if isinstance(body.get("message"), str) else str(exc.body or "")
        inner = body.get("innererror") if isinstance(body.get("innererror"), dict) else {}
        codes = {str(body.get("code")), str(body.get("type")), str(inner.get("code"))}
        if status == 429:
            error_class = ErrorClass.QUOTA if "insufficient_quota" in codes else ErrorClass.RATE_LIMIT
        elif status >= 500:
            error_class = ErrorClass.SERVER
        elif status == 408:
            error_class = ErrorClass.TIMEOUT
        elif status == 400 and codes & {"content_filter", "ResponsibleAIPolicyViolation"}:
            error_class = ErrorClass.CONTENT_FILTER
        else:
            error_class = ErrorClass.CLIENT_ERROR
        message = self._redact(f"HTTP {status}: {detail[:_MESSAGE_LIMIT]}")
        return _Attempt(error_class=error_class, error=message, retry_after_s=parse_retry_after(exc.response.headers))

    def _parse_reply(self, body: str) -> _Attempt:
        """Read a 200 reply by hand, so that any malformed body becomes `bad_response`, never a crash."""
        try:
            data = _json_object(body)
            choice = data["choices"][0]
            content, finish_reason = choice["message"].get("content"), choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return _Attempt(error_class=ErrorClass.BAD_RESPONSE, error=self._redact(f"unreadable reply ({exc}): {body[:_MESSAGE_LIMIT]!r}"))
        if not isinstance(content, str):
            if finish_reason != "content_filter":
                return _Attempt(error_class=ErrorClass.BAD_RESPONSE, error=f"reply has no message text (finish_reason {finish_reason!r})")
            # A filtered completion may carry no text at all; it is still scored, as the empty string.
            content = ""
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        counts = {key: usage[key] for key in _USAGE_KEYS if isinstance(usage.get(key), int)}
        return _Attempt(text=content, finish_reason=finish_reason if isinstance(finish_reason, str) else None, usage=counts)

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]")


def _json_object(body: str) -> dict[str, Any]:
    """A chat completion body as a dict; ValueError when it is not a JSON object."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data
