"""Running the decision step: read metric pairs, decide, write decision.json, print, trace."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.decision.rules import DecisionInputError, TrackDecision, decide_track, file_identity, load_pair
from slm_swap.files import write_json_atomic
from slm_swap.harness.records import load_metric_file
from slm_swap.tracing.client import LangfuseSettings, TracingError
from slm_swap.tracing.runs import record_decisions


@dataclass(frozen=True)
class DecisionRequest:
    pairs: dict[str, tuple[Path, Path, Path]]  # track -> (hosted, slm, slm after fine-tuning)
    delta: float
    output: Path
    quiet: bool = False


def decision_document(track: str, decision: TrackDecision, hosted: Path, slm: Path, after: Path, split: str) -> dict[str, Any]:
    doc = decision.to_json()
    doc["split"] = split
    doc["inputs"] = {"hosted": file_identity(hosted), "slm": file_identity(slm)}
    if after.exists():
        after_doc = load_metric_file(after)
        doc["inputs"]["slm_after_fine_tune"] = file_identity(after)
        for metric, pair in doc["metrics"].items():
            pair["slm_after"] = after_doc["metrics"][metric]
    return doc


def format_table(documents: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'track':<11}{'metric':<18}{'hosted':>8}{'slm':>8}{'gap':>8}{'after':>8}  decision"]
    for track, doc in documents.items():
        verdict = "FINE_TUNE" if doc["fine_tune"] else "keep"
        for metric, pair in doc["metrics"].items():
            after = f"{pair['slm_after']:.3f}" if "slm_after" in pair else "-"
            lines.append(f"{track:<11}{metric:<18}{pair['hosted']:>8.3f}{pair['slm']:>8.3f}{pair['gap']:>+8.3f}{after:>8}  {verdict}")
    return "\n".join(lines)


def decide_all(request: DecisionRequest) -> dict[str, dict[str, Any]]:
    documents = {}
    for track, (hosted_path, slm_path, after_path) in request.pairs.items():
        hosted, slm = load_pair(track, hosted_path, slm_path)
        decision = decide_track(track, hosted, slm, request.delta)
        documents[track] = decision_document(track, decision, hosted_path, slm_path, after_path, hosted["split"])
    return documents


def run_decision(request: DecisionRequest, langfuse: LangfuseSettings, secrets: Sequence[str] = ()) -> int:
    """Exit status: 0 decided and traced, 2 bad inputs (nothing written), 3 decided but the trace was lost."""
    try:
        documents = decide_all(request)
    except (DecisionInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    decided_at = time.time()
    try:
        trace = record_decisions(langfuse, documents, at=decided_at, secrets=secrets)
        langfuse_ref = {"trace_id": trace.trace_id, "trace_url": trace.url}
    except TracingError as exc:
        langfuse_ref = {"error": str(exc)}
    write_json_atomic(request.output, {"delta": request.delta, "tracks": documents, "langfuse": langfuse_ref})
    for track, doc in documents.items():
        print(f"FINE_TUNE_{track.upper()}={doc['fine_tune']}")
    if not request.quiet:
        print(format_table(documents), file=sys.stderr)
        print(f"decision written to {request.output}", file=sys.stderr)
    if "error" in langfuse_ref:
        print(f"error: LANGFUSE FAILED, the decision events were not recorded: {langfuse_ref['error']}", file=sys.stderr)
        return 3
    if not request.quiet:
        print(f"langfuse trace {langfuse_ref['trace_id']}: {langfuse_ref['trace_url']}", file=sys.stderr)
    return 0
