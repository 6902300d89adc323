"""Recording an offline routing evaluation (`tools/route.py`) in Langfuse: one trace `route`, one event per track."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langfuse import LangfuseEvent, LangfuseSpan

from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracing.runs import record_trace
from slm_swap.tracing.session import TracingSession


def summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """A track's document without its per-row routes, which stay in the file."""
    variants = {
        name: {key: value for key, value in variant.items() if key != "routes"} for name, variant in document.get("variants", {}).items()
    }
    return {**{key: value for key, value in document.items() if key != "variants"}, "variants": variants}


def record_routes(
    settings: LangfuseSettings, documents: Mapping[str, Mapping[str, Any]], *, at: float, secrets: Sequence[str] = ()
) -> TraceRef:
    """One trace `route` holding one event `route:<track>` per track, each carrying its shares, rates and verdicts."""

    def build(session: TracingSession) -> str:
        with session.trace("route"):
            root = session.start(LangfuseSpan, "route", at=at, input={"tracks": sorted(documents)})
            for track, document in documents.items():
                event = session.start(LangfuseEvent, f"route:{track}", at=at, parent=root, input={"track": track}, output=summary(document))
                session.end(event, at=at)
            session.end(root, at=at)
        return root.trace_id

    return record_trace(settings, secrets, build)
