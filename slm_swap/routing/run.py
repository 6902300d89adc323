"""Running the offline routing evaluation: read each track's hosted and SLM runs (and the SLM + adapter's, when
there), pair and check them as the decision does, validate the SLM's answers, write `route_<track>.json`, trace.

The refusals are the decision's own (`decision.rules.load_pair`, `check_comparable`, `decision.compare.load_flags`,
`same_rows`): a missing metric file or predictions, a metric file that disagrees with its predictions, other
tracks, splits, datasets or rows. Routing adds one: the prompts must be there (the validator reads the offered
signatures from them), from the path the runs recorded or the committed split, with the runs' sha256.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.data.rows import Row, load_rows
from slm_swap.decision.compare import DecisionInputError, load_flags, predictions_file, same_rows
from slm_swap.decision.rules import check_comparable, file_identity, load_pair
from slm_swap.files import sha256_file, write_json_atomic
from slm_swap.harness.records import read_row_records
from slm_swap.layout import route_path, split_path
from slm_swap.routing.document import evaluation_json
from slm_swap.routing.offline import evaluate_routing
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.tracing.client import LangfuseSettings, TracingError
from slm_swap.tracing.runs import record_routes

VARIANT_LABELS = {"slm": "SLM", "slm_after": "SLM + adapter"}


@dataclass(frozen=True)
class RouteRequest:
    pairs: dict[str, tuple[Path, Path, Path]]  # track -> (hosted, SLM, SLM after fine-tuning)
    delta: float
    output_dir: Path
    dataset_dir: Path
    quiet: bool = False


def dataset_rows(track: str, document: dict[str, Any], metric: Path, dataset_dir: Path) -> dict[str, Row]:
    """The evaluated split's rows by id: where the run read them, else the committed split, if the sha256 matches."""
    sha, split = document["dataset"]["sha256"], str(document.get("split"))
    recorded, committed = Path(document["dataset"]["path"]), split_path(dataset_dir, track, split)
    for path in (recorded, committed):
        if path.is_file() and sha256_file(path) == sha:
            return {row.id: row for row in load_rows(path, track, split)}
    raise DecisionInputError(
        f"{metric}: the dataset it evaluated (sha256 {sha[:12]}) is neither at {recorded} nor at {committed}; "
        "the validator reads the offered signatures from its prompts (pass --dataset-dir)"
    )


def paired_records(
    track: str, hosted_path: Path, slm_path: Path
) -> tuple[dict[str, Any], dict[str, RowRecord], dict[str, RowRecord], list[str]]:
    hosted, slm = load_pair(track, hosted_path, slm_path)
    hosted_flags, slm_flags = load_flags(hosted_path, hosted), load_flags(slm_path, slm)  # checks each metric file
    check_comparable(track, hosted, slm, hosted_path, slm_path)
    ids = same_rows(hosted_flags, slm_flags, str(hosted_path), str(slm_path))
    records = [read_row_records(predictions_file(path, doc)) for path, doc in ((hosted_path, hosted), (slm_path, slm))]
    return hosted, records[0], records[1], ids


def route_track(track: str, hosted_path: Path, slm_path: Path, after_path: Path, request: RouteRequest) -> dict[str, Any]:
    hosted_doc, hosted, slm, ids = paired_records(track, hosted_path, slm_path)
    rows = dataset_rows(track, hosted_doc, hosted_path, request.dataset_dir)
    variants = {"slm": evaluation_json(evaluate_routing(track, rows, hosted, slm, request.delta, ids))}
    inputs = {"hosted": file_identity(hosted_path), "slm": file_identity(slm_path)}
    if after_path.exists():
        inputs["slm_after"] = file_identity(after_path)
        try:
            _, hosted, after, after_ids = paired_records(track, hosted_path, after_path)
            variants["slm_after"] = evaluation_json(evaluate_routing(track, rows, hosted, after, request.delta, after_ids))
        except DecisionInputError as exc:
            variants["slm_after"] = {"error": str(exc)}  # the base SLM's routing still stands
    return {"track": track, "split": hosted_doc["split"], "delta": request.delta, "inputs": inputs, "variants": variants}


def variant_lines(label: str, variant: dict[str, Any]) -> list[str]:
    """The variant's share, its strictest metric (the track's last core metric) for each system, and its verdict."""
    if "error" in variant:
        return [f"{label}: not routed: {variant['error']}"]
    metric = list(variant["gap_to_hosted_only"])[-1]
    rates = " ".join(f"{system} {variant['rates'][system][metric]['rate']:.3f}" for system in variant["rates"])
    gap = variant["gap_to_hosted_only"][metric]
    precision = "n/a" if variant["precision"] is None else f"{variant['precision']:.3f}"
    return [
        f"{label}: the SLM serves {variant['slm_rows']}/{variant['n']} rows (validator precision {precision}); "
        f"{metric}: {rates}; gap to hosted-only {gap['gap']:+.3f} [{gap['ci95'][0]:+.3f}, {gap['ci95'][1]:+.3f}]",
        f"{label}: {variant['verdict_text']}",
    ]


def format_lines(documents: dict[str, dict[str, Any]]) -> list[str]:
    return [
        line
        for track, document in documents.items()
        for name, variant in document["variants"].items()
        for line in variant_lines(f"{track} ({VARIANT_LABELS[name]})", variant)
    ]


def run_routing(request: RouteRequest, langfuse: LangfuseSettings, secrets: Sequence[str] = ()) -> int:
    """Exit status: 0 written and traced, 2 bad inputs (nothing written), 3 written but the trace was lost."""
    try:
        documents = {track: route_track(track, *paths, request) for track, paths in request.pairs.items()}
    except (DecisionInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        trace = record_routes(langfuse, documents, at=time.time(), secrets=secrets)
        langfuse_ref = {"trace_id": trace.trace_id, "trace_url": trace.url}
    except TracingError as exc:
        langfuse_ref = {"error": str(exc)}
    for track, document in documents.items():
        path = route_path(request.output_dir, track)
        write_json_atomic(path, {**document, "langfuse": langfuse_ref})
        if not request.quiet:
            print(f"routing written to {path}", file=sys.stderr)
    print("\n".join(format_lines(documents)))
    if "error" in langfuse_ref:
        print(f"error: LANGFUSE FAILED, the routing events were not recorded: {langfuse_ref['error']}", file=sys.stderr)
        return 3
    return 0
