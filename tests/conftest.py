"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import scipy.stats  # noqa: F401

from slm_swap.tracing.receiver.server import LangfuseReceiver

# slm_swap.stats imports scipy on first use (it costs the plugin 0.85 s otherwise). Pytester's in-process runs
# drop the modules a run imported, and numpy's extensions cannot be loaded twice in one process: imported here,
# scipy is in place before any inner run.

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def langfuse_receiver() -> Iterator[LangfuseReceiver]:
    with LangfuseReceiver() as receiver:
        yield receiver


@pytest.fixture
def langfuse_env(langfuse_receiver: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch) -> LangfuseReceiver:
    """Points the real Langfuse SDK at the local receiver with a fresh key pair (the SDK caches clients per key)."""
    public, secret = f"pk-lf-{secrets.token_hex(6)}", f"sk-lf-{secrets.token_hex(6)}"
    langfuse_receiver.accept_key(public, secret)
    langfuse_receiver.clear()
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", public)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", secret)
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_receiver.url)
    return langfuse_receiver
