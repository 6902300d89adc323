"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import importlib
import importlib.util
import secrets
from collections.abc import Callable, Iterator

import pytest
import scipy.stats  # noqa: F401

from slm_swap.tracing.receiver.server import LangfuseReceiver

# Pytester's in-process runs drop the modules a run imported first, so a module that something longer-lived
# imports lazily must be in place before any inner run:
# - scipy (slm_swap.stats imports it on first use): numpy's extensions cannot be loaded twice in one process;
# - httpcore2 (the openai SDK's httpx2 imports it on the first request and caches a map of its exception
#   classes): re-imported after an inner run, its new ReadTimeout would no longer be in the cached map, and a
#   timeout would escape as a raw httpcore2 error instead of the SDK's APITimeoutError;
# - the Langfuse SDK and OpenTelemetry's exporter (the plugin loads them once a run is under way): a second copy
#   of OpenTelemetry's enums no longer matches the first one's, and spans fail to encode.
for _lazy in ("httpcore2", "slm_swap.harness.trace"):
    if importlib.util.find_spec(_lazy) is not None:
        importlib.import_module(_lazy)

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def langfuse_receiver() -> Iterator[LangfuseReceiver]:
    with LangfuseReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="session")
def fresh_langfuse_env(langfuse_receiver: LangfuseReceiver) -> Callable[[], dict[str, str]]:
    """Gives the LANGFUSE_* variables that point the real SDK at the local receiver, with a fresh key pair the receiver
    accepts (the SDK caches clients per key): for a subprocess's environment, or a module-wide fixture's."""

    def make() -> dict[str, str]:
        public, secret = f"pk-lf-{secrets.token_hex(6)}", f"sk-lf-{secrets.token_hex(6)}"
        langfuse_receiver.accept_key(public, secret)
        return {"LANGFUSE_PUBLIC_KEY": public, "LANGFUSE_SECRET_KEY": secret, "LANGFUSE_HOST": langfuse_receiver.url}

    return make


@pytest.fixture
def langfuse_env(
    langfuse_receiver: LangfuseReceiver, fresh_langfuse_env: Callable[[], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> LangfuseReceiver:
    """Points the real Langfuse SDK at the local receiver with a fresh key pair, and forgets what it received."""
    environment = fresh_langfuse_env()
    langfuse_receiver.clear()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return langfuse_receiver
