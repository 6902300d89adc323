"""Running the decision step: read metric pairs, decide, write decision.json, print, trace."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.decision.compare import DecisionInputError, PredictionsMissing, compare, load_flags, same_rows
from slm_swap.decision.rules import (
    TrackDecision,
    check_comparable,
    decide_track,
    file_identity,
    load_pair,
    rate_intervals,
    significant,
)
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
    rule: str = "point"  # point: the seed's rule over point estimates; interval: fine_tune follows the verdict
    fine_tune_when_inconclusive: bool = False  # interval rule: fine-tune an inconclusive track too


def decision_document(
    track: str, decision: TrackDecision, hosted: Path, slm: Path, after: Path, hosted_doc: Mapping[str, Any]
) -> dict[str, Any]:
    doc = decision.to_json()
    doc["split"] = hosted_doc["split"]
    if "arm" in hosted_doc:
        doc["arm"] = hosted_doc["arm"]  # the agent track decides one arm per file; fine-tuning checks it
    doc["inputs"] = {"hosted": file_identity(hosted), "slm": file_identity(slm)}
    if after.exists():
        add_after(doc, track, slm, after)
    return doc


def add_after(doc: dict[str, Any], track: str, slm: Path, after: Path) -> None:
    """The fine-tuned SLM beside the base: its rates, and its paired gain when both ran on the same rows.
    A metric file that disagrees with its predictions is refused; one without predictions has no paired gain."""
    after_doc = load_metric_file(after)
    try:
        after_flags = load_flags(after, after_doc)
    except PredictionsMissing as exc:
        after_flags, missing = None, str(exc)
    doc["inputs"]["slm_after_fine_tune"] = file_identity(after)
    metrics = tuple(doc["metrics"])
    after_intervals = rate_intervals(after_doc, metrics)
    for metric, pair in doc["metrics"].items():
        pair["slm_after"] = after_doc["metrics"][metric]
        pair["slm_after_ci95"] = after_intervals[metric].as_list()
    if after_flags is None:
        doc["after_comparison_error"] = missing
        return
    try:
        before_flags = load_flags(slm, load_metric_file(slm))
        gains = compare(track, after_flags, before_flags, same_rows(after_flags, before_flags, str(after), str(slm)))
    except DecisionInputError as exc:
        doc["after_comparison_error"] = str(exc)  # the rates still stand beside; only the paired gain is missing
        return
    for metric, gain in gains.items():
        doc["metrics"][metric].update(
            after_gain=round(gain.gap, 6), after_gain_ci95=gain.interval.as_list(), after_mcnemar_p=significant(gain.mcnemar_p)
        )


def fine_tune_variable(track: str, doc: Mapping[str, Any]) -> str:
    """`FINE_TUNE_<TRACK>`; the agent track decides one arm at a time, so its line names the arm (`FINE_TUNE_AGENT_TOOLCALL`)."""
    return "_".join(["FINE_TUNE", track.upper(), *([str(doc["arm"]).upper()] if "arm" in doc else [])])


def track_label(track: str, doc: Mapping[str, Any]) -> str:
    return f"{track} ({doc['arm']})" if "arm" in doc else track


def format_table(documents: dict[str, dict[str, Any]]) -> str:
    header = f"{'track':<11}{'metric':<18}{'hosted':>8}{'slm':>8}{'gap':>8}  {'95% interval':<17}{'p':>7}{'after':>8}  fine_tune"
    lines = [header]
    for track, doc in documents.items():
        for metric, pair in doc["metrics"].items():
            after = f"{pair['slm_after']:.3f}" if "slm_after" in pair else "-"
            ci = "[{:+.3f}, {:+.3f}]".format(*pair["gap_ci95"]) if "gap_ci95" in pair else "-"
            p_value = "-" if "mcnemar_p" not in pair else "<0.001" if pair["mcnemar_p"] < 0.001 else f"{pair['mcnemar_p']:.3f}"
            numbers = f"{pair['hosted']:>8.3f}{pair['slm']:>8.3f}{pair['gap']:>+8.3f}  {ci:<17}{p_value:>7}{after:>8}"
            lines.append(f"{track_label(track, doc):<11}{metric:<18}{numbers}  {doc['fine_tune']} ({doc['rule']} rule)")
        for metric, pair in doc.get("reported", {}).items():
            numbers = "".join(f"{'n/a' if pair[k] is None else format(pair[k], '.3f'):>8}" for k in ("hosted", "slm"))
            gap = "n/a" if pair["gap"] is None else f"{pair['gap']:+.3f}"
            lines.append(f"{track_label(track, doc):<11}{metric:<18}{numbers}{gap:>8}  reported beside the verdict, in no rule")
    lines += [f"{track_label(track, doc)}: {doc['verdict_text']}" for track, doc in documents.items()]
    lines += [f"{track_label(track, doc)}: caveat: {caveat}" for track, doc in documents.items() for caveat in doc.get("caveats", [])]
    return "\n".join(lines)


def decide_all(request: DecisionRequest) -> dict[str, dict[str, Any]]:
    documents = {}
    for track, (hosted_path, slm_path, after_path) in request.pairs.items():
        hosted, slm = load_pair(track, hosted_path, slm_path)
        # the predictions first: every number compared below is checked against them (harness.paired)
        hosted_flags, slm_flags = load_flags(hosted_path, hosted), load_flags(slm_path, slm)
        check_comparable(track, hosted, slm, hosted_path, slm_path)
        rows = same_rows(hosted_flags, slm_flags, str(hosted_path), str(slm_path))
        paired = compare(track, hosted_flags, slm_flags, rows)
        decision = decide_track(track, hosted, slm, request.delta, paired, request.rule, request.fine_tune_when_inconclusive)
        documents[track] = decision_document(track, decision, hosted_path, slm_path, after_path, hosted)
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
    write_json_atomic(request.output, {"delta": request.delta, "rule": request.rule, "tracks": documents, "langfuse": langfuse_ref})
    for track, doc in documents.items():
        print(f"{fine_tune_variable(track, doc)}={doc['fine_tune']}")
    if not request.quiet:
        print(format_table(documents), file=sys.stderr)
        print(f"decision written to {request.output}", file=sys.stderr)
    if "error" in langfuse_ref:
        print(f"error: LANGFUSE FAILED, the decision events were not recorded: {langfuse_ref['error']}", file=sys.stderr)
        return 3
    if not request.quiet:
        print(f"langfuse trace {langfuse_ref['trace_id']}: {langfuse_ref['trace_url']}", file=sys.stderr)
    return 0
