"""The report's "Partial swaps" section: per track the routing evaluation `tools/route.py` wrote
(`route_<track>.json`), for the base SLM and the SLM + adapter: the share the SLM serves behind the validator, the
routed system's rates against hosted-only and SLM-only with 95 % intervals, the paired gap to hosted-only, the
validator's precision, what rejections cost, and the verdict in words. Absent when no track was routed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from slm_swap.layout import route_path
from slm_swap.report.inputs import read_json
from slm_swap.report.markdown import escape, table

VARIANTS = {"slm": "SLM", "slm_after": "SLM + adapter"}
SYSTEMS = {"hosted_only": "hosted only", "slm_only": "SLM only", "routed": "routed"}


def rate_cell(entry: Mapping[str, Any]) -> str:
    low, high = entry["ci95"]
    return f"{entry['rate']:.3f} [{low:.3f}, {high:.3f}]"


def variant_lines(track: str, name: str, variant: Mapping[str, Any]) -> list[str]:
    label = f"{track}, {VARIANTS.get(name, name)}"
    if "error" in variant:
        return [f"**{escape(label)}**: not routed: {escape(variant['error'])}", ""]
    metrics = list(variant["gap_to_hosted_only"])
    share = f"{variant['slm_share'] * 100:.0f} %"
    rows = [
        [SYSTEMS[system], share if system == "routed" else ("100 %" if system == "slm_only" else "0 %")]
        + [rate_cell(variant["rates"][system][m]) for m in metrics]
        for system in SYSTEMS
    ]
    gaps = variant["gap_to_hosted_only"]
    rows.append(
        ["gap hosted only - routed", ""]
        + [f"{gaps[m]['gap']:+.3f} [{gaps[m]['ci95'][0]:+.3f}, {gaps[m]['ci95'][1]:+.3f}]" for m in metrics]
    )
    cost = variant["rejection_cost"]
    precision = "n/a" if variant["precision"] is None else f"{variant['precision']:.3f}"
    rejections = ", ".join(f"{kind} {count}" for kind, count in variant["rejections"].items()) or "none"
    return [
        f"**{escape(label)}** ({variant['n']} rows): {escape(variant['verdict_text'])}.",
        "",
        *table(["system", "SLM serves", *metrics], rows),
        "",
        f"Validator precision {precision} (accepted SLM answers that are exactly right). Rejections: {escape(rejections)}; "
        f"they cost {cost['hosted_calls']} hosted calls, {cost['slm_was_right']} of them for an SLM answer that was right "
        f"({cost['passes_lost']} rows lost a pass, {cost['passes_gained']} gained one).",
        "",
    ]


def routing_section(eval_dir: Path, tracks: Sequence[str]) -> list[str]:
    found = {track: read_json(route_path(eval_dir, track)) for track in tracks if route_path(eval_dir, track).is_file()}
    if not found:
        return []
    lines = [
        "## Partial swaps",
        "",
        "The SLM answers first; the validator checks its answer against the offered signatures and the hosted model answers "
        "what it rejects (`tools/route.py`, from the runs above). Brackets are 95 % intervals; the gap is paired by row.",
        "",
    ]
    for track, document in found.items():
        for name, variant in document.get("variants", {}).items():
            lines += variant_lines(track, name, variant)
    return lines
