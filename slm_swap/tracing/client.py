"""Langfuse settings, the connection check and secret redaction, shared by evaluation, training and the decision step.

The environment is read only by `settings_from_env`, called at the edge (a tool's
main, the pytest plugin); everything else takes a `LangfuseSettings`. Recording
runs lives in `slm_swap.tracing.recorder` and `runs`, the client's lifecycle in `slm_swap.tracing.session`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from langfuse import Langfuse

# The Langfuse SDK (and the HTTP stacks below it) are imported where a check or a recording needs them, not with
# this module: reading the settings must stay cheap, since an evaluation reads them at start and checks the keys
# only once its first hosted requests are in flight (the SDK takes about 0.55 s to import on the 2-core machine).

ENV_VARS = ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST")
REDACTED = "[redacted]"
T = TypeVar("T")


class TracingError(RuntimeError):
    """Langfuse is not configured, not reachable, refused the keys, or did not take all the data."""


@dataclass(frozen=True)
class LangfuseSettings:
    public_key: str
    secret_key: str = field(repr=False)
    host: str
    request_timeout_s: float = 10.0
    flush_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.public_key or not self.secret_key:
            raise TracingError("Langfuse public and secret keys must not be empty")
        if not self.host.startswith(("http://", "https://")):
            raise TracingError(f"LANGFUSE_HOST must be an http(s) URL, got {self.host!r}")
        object.__setattr__(self, "host", self.host.rstrip("/"))
        if self.request_timeout_s <= 0 or self.flush_timeout_s <= 0:
            raise TracingError("Langfuse timeouts must be positive")


@dataclass(frozen=True)
class TraceRef:
    """What a caller keeps of a recorded run: for the metric file and the closing message."""

    trace_id: str
    url: str


def settings_from_env(environ: Mapping[str, str], *, flush_timeout_s: float = 30.0) -> LangfuseSettings:
    missing = [name for name in ENV_VARS if not environ.get(name, "").strip()]
    if missing:
        raise TracingError(
            f"Langfuse is not configured: set {', '.join(missing)} "
            "(project keys from the Langfuse project settings, and the Langfuse base URL)"
        )
    return LangfuseSettings(
        public_key=environ["LANGFUSE_PUBLIC_KEY"].strip(),
        secret_key=environ["LANGFUSE_SECRET_KEY"].strip(),
        host=environ["LANGFUSE_HOST"].strip(),
        flush_timeout_s=flush_timeout_s,
    )


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """A copy of `value` with every secret replaced, in strings, dict keys and nested lists.

    Other leaves (numbers, booleans, None) stay; any other object becomes its
    redacted `str()`, since the trace holds JSON anyway. Never raises.
    """
    active = sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True)

    def clean(node: Any) -> Any:
        if isinstance(node, str):
            for secret in active:
                node = node.replace(secret, REDACTED)
            return node
        if node is None or isinstance(node, (bool, int, float)):
            return node
        if isinstance(node, Mapping):
            return {clean(str(k)): clean(v) for k, v in node.items()}
        if isinstance(node, (list, tuple, set, frozenset)):
            return [clean(v) for v in node]
        try:
            return clean(str(node))
        except Exception:
            return REDACTED

    return clean(value)


def run_bounded(action: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run `action` in a daemon thread and give up after `timeout_s` (the SDK's calls have no overall bound)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"langfuse-{what}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TracingError(f"{what} did not finish within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def claim_public_key(public_key: str) -> None:
    """Make sure the next `Langfuse(public_key=...)` builds a fresh client with our settings.

    The SDK keeps one client per public key per process and hands it back to any
    later construction, even one with another secret or host. A client that was
    shut down is forgotten here; a live one we did not make is an error.
    """
    from langfuse._client.resource_manager import LangfuseResourceManager

    with LangfuseResourceManager._lock:
        existing = LangfuseResourceManager._instances.get(public_key)
        if existing is None:
            return
        if not existing._shutdown:
            raise TracingError(
                "another Langfuse client with the same public key is open in this process; close it before recording SLM Swap runs"
            )
        del LangfuseResourceManager._instances[public_key]


def release_public_key(public_key: str, client: Langfuse) -> None:
    from langfuse._client.resource_manager import LangfuseResourceManager

    with LangfuseResourceManager._lock:
        if LangfuseResourceManager._instances.get(public_key) is client._resources:
            del LangfuseResourceManager._instances[public_key]


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def describe_api_failure(exc: BaseException, host: str) -> str:
    import httpcore
    import httpx
    from langfuse.api.core import ApiError

    chain = causes(exc)
    api = next((e for e in chain if isinstance(e, ApiError)), None)
    if api is not None and api.status_code in (401, 403):
        return (
            f"Langfuse at {host} refused the keys (HTTP {api.status_code}): "
            "check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY and that they belong to this host"
        )
    if api is not None:
        return f"Langfuse at {host} answered HTTP {api.status_code}"
    timeout = next((e for e in chain if isinstance(e, (httpx.TimeoutException, httpcore.TimeoutException, TimeoutError))), None)
    if timeout is not None:
        return f"Langfuse at {host} did not answer in time ({type(timeout).__name__})"
    # the SDK's HTTP client may hand on the transport's own error or an OSError, not httpx's wrapper
    network = next((e for e in chain if isinstance(e, (httpx.TransportError, httpcore.NetworkError, OSError))), None)
    if network is not None:
        return f"cannot reach Langfuse at {host} ({type(network).__name__}: {network})"
    return f"Langfuse check against {host} failed ({type(exc).__name__}: {exc})"


def check_connection(settings: LangfuseSettings, timeout_s: float | None = None) -> None:
    """The SDK's auth check, bounded in time; raises TracingError with a clear message on any failure."""
    from langfuse import Langfuse

    bound = timeout_s if timeout_s is not None else settings.request_timeout_s + 5.0
    claim_public_key(settings.public_key)
    client = Langfuse(
        public_key=settings.public_key,
        secret_key=settings.secret_key,
        base_url=settings.host,
        timeout=max(1, round(settings.request_timeout_s)),
        tracing_enabled=False,
    )
    try:
        accepted = run_bounded(client.auth_check, bound, f"the Langfuse check against {settings.host}")
    except TracingError:
        raise
    except Exception as exc:
        raise TracingError(describe_api_failure(exc, settings.host)) from None
    finally:
        with contextlib.suppress(Exception):  # a slow shutdown must not hide the check's own verdict
            run_bounded(client.shutdown, 5.0, "closing the Langfuse check client")
        release_public_key(settings.public_key, client)
    if not accepted:
        raise TracingError(f"the Langfuse client for {settings.host} could not be set up")
