"""The most common failure kinds of a track, counted per run, with one failed row of each shown in full."""

from __future__ import annotations

from pathlib import Path

from slm_swap.data.rows import Row
from slm_swap.prompts import load_templates
from slm_swap.report.cells import NOT_RUN
from slm_swap.report.inputs import ROLE_LABELS, ROLES, Run, TrackInputs, load_dataset_rows
from slm_swap.report.markdown import code, escape, table

TOP_FAILURES = 5
EXCERPT_CHARS = {"request": 200, "gold": 200, "output": 240}
# role -> (rows by id, why they cannot be shown): each run's dataset is read and hashed once
DatasetCache = dict[str, tuple[dict[str, Row], str | None]]


def request_excerpt(prompt: str, track: str) -> str:
    """The user's request, which ends every prompt; the tool list before it is the same for many rows."""
    marker = load_templates()[track].split("{user_text}")[0].split("{tools}")[-1]
    position = prompt.rfind(marker) if marker.strip() else -1
    return prompt[position + len(marker) :] if position >= 0 else "\u2026" + prompt[-EXCERPT_CHARS["request"] :]


def example_run(inputs: TrackInputs, kind: str) -> Run:
    """The run with the most rows of this kind; ties go to the SLM side, which the decision is about."""
    order = [inputs.runs[role] for role in reversed(ROLES) if role in inputs.runs]
    return max(order, key=lambda run: run.failures.get(kind, 0))


def failure_example(inputs: TrackInputs, kind: str, datasets: DatasetCache, root: Path | None) -> list[str]:
    """One failed row of this kind; `datasets` caches each run's rows, so a dataset is read and hashed once."""
    run = example_run(inputs, kind)
    if run.predictions is None:
        return [f"- example: not available ({code(run.predictions_path.name)} not found)"]
    record = next((p for p in sorted(run.predictions, key=lambda p: p.id) if p.failure == kind), None)
    if record is None:
        return ["- example: not available (no prediction row carries this failure)"]
    lines = [f"- example from {run.label}, row {code(record.id)}:"]
    if run.role not in datasets:
        datasets[run.role] = load_dataset_rows(run, root)
    rows, problem = datasets[run.role]
    row = rows.get(record.id)
    if row is not None:
        lines.append(f"  - request: {code(request_excerpt(row.prompt, inputs.track), limit=EXCERPT_CHARS['request'])}")
        lines.append(f"  - gold: {code(row.completion, limit=EXCERPT_CHARS['gold'])}")
    else:
        lines.append(f"  - request and gold: not available ({escape(problem or 'row not in the dataset')})")
    if record.output is None:
        error = code(record.error or "no detail", limit=EXCERPT_CHARS["output"])
        lines.append(f"  - output: none \u2014 {escape(record.error_class or 'error')}: {error}")
    else:
        lines.append(f"  - output: {code(record.output, limit=EXCERPT_CHARS['output'])}")
    return lines


def failures_section(inputs: TrackInputs, root: Path | None) -> list[str]:
    totals: dict[str, int] = {}
    for run in inputs.runs.values():
        for kind, count in run.failures.items():
            totals[kind] = totals.get(kind, 0) + count
    if not totals:
        return ["No failed rows in any run." if inputs.runs else NOT_RUN + "."]
    ranked = sorted(totals, key=lambda kind: (-totals[kind], kind))[:TOP_FAILURES]
    rows = [
        [code(kind, in_table=True), *(str(run.failures.get(kind, 0)) if (run := inputs.runs.get(role)) else NOT_RUN for role in ROLES)]
        for kind in ranked
    ]
    lines = [
        f"Failure kinds over this track's runs, most common first (at most {TOP_FAILURES}; "
        "each failed row counts once, by its first failing cause):",
        "",
        *table(["failure kind", *ROLE_LABELS.values()], rows),
        "",
    ]
    datasets: DatasetCache = {}
    for kind in ranked:
        lines += [f"**{escape(kind)}**", "", *failure_example(inputs, kind, datasets, root), ""]
    return lines
