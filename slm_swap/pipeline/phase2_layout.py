"""Where the Phase II loop's own files go, beside the artefacts `slm_swap.layout` already names.

The loop writes its task lists, the teacher's capture run, one decision file per arm and its report under the
eval folder; the metric files, adapters and training records keep the names `slm_swap.layout` gives them, so
`tools/decide.py`, `tools/report.py` and `--adapter auto` find them as they would after a manual run.
"""

from __future__ import annotations

from pathlib import Path

from slm_swap.layout import agent_run_tag, metric_path, trajectories_path
from slm_swap.tracks import AGENT


def task_list_path(eval_dir: Path, purpose: str) -> Path:
    """`<eval_dir>/agent_tasks_<purpose>.jsonl`: the tasks one step ran (`teacher` or `test`), as split-file lines."""
    return Path(eval_dir) / f"{AGENT.name}_tasks_{purpose}.jsonl"


def teacher_dir(eval_dir: Path) -> Path:
    """The capture run's folder: its metric file is the teacher on training tasks, not an evaluation to report."""
    return Path(eval_dir) / "teacher"


def capture_path(eval_dir: Path, teacher: str, arm: str) -> Path:
    return trajectories_path(teacher_dir(eval_dir), AGENT.name, teacher, agent_run_tag(arm))


def agent_metric_path(eval_dir: Path, model: str, arm: str, tag: str | None = None) -> Path:
    return metric_path(eval_dir, AGENT.name, model, agent_run_tag(arm, tag))


def arm_decision_path(eval_dir: Path, arm: str) -> Path:
    """`tools/decide.py --tracks agent` decides one arm per call; each arm keeps its own file."""
    return Path(eval_dir) / f"decision_{AGENT.name}_{arm}.json"


def phase2_report_path(eval_dir: Path) -> Path:
    """The loop's report (agent track only); v0's `report.md` is left as it is. Its chart goes beside it."""
    return Path(eval_dir) / "report_phase2.md"
