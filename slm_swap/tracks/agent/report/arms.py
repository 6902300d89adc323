"""The agent track before and after fine-tuning, per arm: the hosted side, the SLM and the SLM + adapter on
task success, valid actions, turn success and steps, each rate with its 95 % interval, and, from the arm's
decision file (`tools/decide.py --tracks agent --arm <arm>`), the verdict and the paired gains on the same tasks.

`agent_report` is the Phase II loop's report: this section, the loop's step times and every agent run's own
section (`agent.agent_section`: failures by kind, each shown at the step where its episode went wrong).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slm_swap.layout import agent_run_tag, metric_path, predictions_for_metric
from slm_swap.report.inputs import ROLES, RunNames, check_against_predictions, read_json
from slm_swap.report.markdown import code, escape, table
from slm_swap.report.sections import steps_section
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.report.section import agent_section

RATES = ("task_success_rate", "valid_action_rate", "turn_success_rate")
GOLD_NOTE = "gold: BFCL's ground-truth calls with a fixed labelled thought, not a model (the offline demo's teacher and hosted side)"


def read_document(path: Path) -> dict[str, Any] | None:
    """A run's or a decision's JSON, None when it was not written (a step that did not run); unreadable: ReportInputError."""
    return read_json(path) if Path(path).exists() else None


def rate_cell(document: Mapping[str, Any], rate: str) -> str:
    metrics, interval = document.get("metrics", {}), document.get("intervals", {}).get(rate)
    if rate not in metrics:
        return "-"
    value = metrics[rate]
    if value is None:
        return "n/a"  # a rate over a zero denominator (no actions): no rate at all
    return f"{value:.3f}" + (" [{:.3f}, {:.3f}]".format(*interval) if interval else "")


def gain_cell(pair: Mapping[str, Any], key: str) -> str:
    if key not in pair:
        return "-"
    if pair[key] is None:
        return "n/a"
    interval = pair.get(f"{key}_ci95")
    return f"{pair[key]:+.3f}" + (" [{:+.3f}, {:+.3f}]".format(*interval) if interval else "")


def arm_section(eval_dir: Path, arm: str, names: RunNames, decision: Mapping[str, Any] | None) -> list[str]:
    runs = [
        (f"hosted side ({names.hosted_model})", names.hosted_model, None),
        ("SLM, before", names.slm_model, None),
        ("SLM + adapter, after", names.slm_model, names.after_tag),
    ]
    rows, adapter = [], None
    for label, model, tag in runs:
        path = metric_path(eval_dir, AGENT.name, model, agent_run_tag(arm, tag))
        document = read_document(path)
        if document is not None:
            check_against_predictions(path, document, predictions_for_metric(path))
        if document is None:
            rows.append([escape(label), *(["not run"] * (len(RATES) + 3))])
            continue
        steps, written = document.get("mean_steps_per_task"), document.get("written_observations")
        cells = [rate_cell(document, rate) for rate in RATES]
        cells += [
            "-" if steps is None else f"{steps:.2f}",
            f"{written['steps_writing_observations']} of {written['steps']}" if written else "-",
        ]
        rows.append([escape(label), *cells, str(document.get("n", "-"))])
        adapter = document.get("model_description", {}).get("adapter") if tag else adapter
    lines = [f"### Arm {code(arm)}", ""]
    header = ["run", "task success [95 %]", "valid actions [95 %]", "turn success [95 %]", "mean steps per task"]
    lines += table([*header, "steps writing an observation", "n"], rows)
    if adapter:
        lines += ["", f"The after run applied the adapter {code(adapter)}."]
    entry = (decision or {}).get("tracks", {}).get(AGENT.name)
    if not entry:
        return lines + ["", "Decision: not run for this arm.", ""]
    lines += ["", f"Verdict: {escape(entry.get('verdict_text', 'no verdict recorded'))}", ""]
    gains = [[code(m, in_table=True), gain_cell(p, "gap"), gain_cell(p, "after_gain")] for m, p in entry.get("metrics", {}).items()]
    gains += [[code(m, in_table=True) + " (beside the verdict)", gain_cell(p, "gap"), "-"] for m, p in entry.get("reported", {}).items()]
    lines += table(["metric", "gap hosted \u2212 SLM before [paired 95 %]", "gain after \u2212 before [paired 95 %]"], gains)
    return lines + [""]


def arms_section(eval_dir: Path, names: RunNames, decisions: Mapping[str, Path]) -> list[str]:
    """`decisions`: arm -> its decision file; one subsection per arm."""
    lines = ["## Agent track: before and after fine-tuning", ""]
    if names.hosted_model == "gold":
        lines += [escape(GOLD_NOTE) + ".", ""]
    for arm, path in decisions.items():
        lines += arm_section(eval_dir, arm, names, read_document(path))
    return lines


def agent_report(eval_dir: Path, names: RunNames, decisions: Mapping[str, Path], step_times: Mapping[str, float] | None) -> str:
    lines = [
        "# SLM Swap report: the agent track (Phase II loop)",
        "",
        "Rates are shares of the evaluated tasks (higher is better), brackets 95 % intervals: Wilson's for a rate, "
        "the paired (Bonett & Price) interval for a gap or gain between two runs on the same tasks.",
        "",
    ]
    # the loop's own runs only: per arm the hosted side, the SLM and the SLM + adapter (never a run made by hand)
    own = [
        metric_path(eval_dir, AGENT.name, model, agent_run_tag(arm, tag))
        for arm in decisions
        for model, tag in map(names.model_and_tag, ROLES)
    ]
    lines += arms_section(eval_dir, names, decisions) + steps_section(step_times) + agent_section(eval_dir, own)
    return "\n".join(lines).rstrip("\n") + "\n"
