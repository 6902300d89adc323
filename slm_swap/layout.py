"""Where every artefact lives, written once.

The seed's folders under `slm_swap/`: `02_dataset/` (splits and manifest), `04_ft/` (adapters),
`05_eval/` (metric files, predictions, decision, report, pipeline state, answer journal; the Phase II
loop's task lists, teacher capture, per-arm decisions and report) and
`models/` (checkpoints). `Layout(root)` gives them under a checkout; `Layout()` relative to the
working folder, as pytest options and defaults read them. Every other module asks this one.
"""

from __future__ import annotations

from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
DEFAULT_SLM = "phi-4-mini"


class Layout:
    """The seed's artefact folders under a checkout's `root` (default: the working folder)."""

    def __init__(self, root: str | Path = Path()) -> None:
        self.root = Path(root)
        package = self.root / "slm_swap"
        self.dataset_dir, self.ft_dir = package / "02_dataset", package / "04_ft"
        self.eval_dir, self.models_dir = package / "05_eval", package / "models"
        self.default_slm_path = self.models_dir / DEFAULT_SLM


def split_path(dataset_dir: Path, track: str, split: str) -> Path:
    return Path(dataset_dir) / track / f"{split}.jsonl"


def dataset_manifest_path(dataset_dir: Path) -> Path:
    return Path(dataset_dir) / "manifest.json"


def run_name(track: str, model: str | None, tag: str | None = None) -> str:
    """`<track>_<model>[_<tag>]`: the stem of a run's metric and predictions files."""
    return f"{track}_{model}" + (f"_{tag}" if tag else "")


def agent_run_tag(arm: str, tag: str | None = None) -> str:
    """The agent track's tag: its arm, then the run's own tag (`agent_<model>_<arm>[_<tag>]`)."""
    return arm + (f"_{tag}" if tag else "")


def metric_path(eval_dir: Path, track: str, model: str | None, tag: str | None = None) -> Path:
    return Path(eval_dir) / f"{run_name(track, model, tag)}.json"


def predictions_path(eval_dir: Path, track: str, model: str | None, tag: str | None = None) -> Path:
    return Path(eval_dir) / f"{run_name(track, model, tag)}.predictions.jsonl"


def predictions_for_metric(metric: Path) -> Path:
    """The predictions file written beside a metric file: `<stem>.json` -> `<stem>.predictions.jsonl`."""
    metric = Path(metric)
    return metric.with_name(f"{metric.stem}.predictions.jsonl")


def metric_for_predictions(predictions: Path) -> Path:
    """The metric file written beside a predictions file: `<stem>.predictions.jsonl` -> `<stem>.json`."""
    predictions = Path(predictions)
    return predictions.with_name(predictions.name.removesuffix(".predictions.jsonl") + ".json")


def trajectories_path(eval_dir: Path, track: str, model: str | None, tag: str | None = None) -> Path:
    """`<run name>.trajectories.jsonl`: every trajectory a `--capture` run wrote, accepted or rejected by the verifier."""
    return Path(eval_dir) / f"{run_name(track, model, tag)}.trajectories.jsonl"


def journal_dir(eval_dir: Path) -> Path:
    return Path(eval_dir) / "cache"


def sandbox_dir(eval_dir: Path) -> Path:
    """The run-owned folder of the agent sandbox's worker folders (removed when their process is gone)."""
    return Path(eval_dir) / "sandbox"


def decision_path(eval_dir: Path) -> Path:
    return Path(eval_dir) / "decision.json"


def route_path(output_dir: Path, track: str) -> Path:
    """`route_<track>.json`: the offline routing evaluation of one track (`tools/route.py`)."""
    return Path(output_dir) / f"route_{track}.json"


# The Phase II loop (slm_swap.tracks.agent.loop.phase2) on the agent track. Its metric files, adapters and training records
# keep the names above, so tools/decide.py, tools/report.py and --adapter auto find them as after a manual run.
AGENT_TRACK = "agent"  # slm_swap.tracks.AGENT.name, which sits above this module


def agent_task_list_path(eval_dir: Path, purpose: str) -> Path:
    """`<eval_dir>/agent_tasks_<purpose>.jsonl`: the tasks one loop step ran (`teacher` or `test`), as split-file lines."""
    return Path(eval_dir) / f"{AGENT_TRACK}_tasks_{purpose}.jsonl"


def teacher_dir(eval_dir: Path) -> Path:
    """The teacher's capture run: its metric file is the teacher on training tasks, not an evaluation to report."""
    return Path(eval_dir) / "teacher"


def teacher_capture_path(eval_dir: Path, teacher: str, arm: str) -> Path:
    return trajectories_path(teacher_dir(eval_dir), AGENT_TRACK, teacher, agent_run_tag(arm))


def agent_metric_path(eval_dir: Path, model: str, arm: str, tag: str | None = None) -> Path:
    return metric_path(eval_dir, AGENT_TRACK, model, agent_run_tag(arm, tag))


def agent_decision_path(eval_dir: Path, arm: str) -> Path:
    """`tools/decide.py --tracks agent` decides one arm per call; the loop keeps each arm's decision in its own file."""
    return Path(eval_dir) / f"decision_{AGENT_TRACK}_{arm}.json"


def phase2_report_path(eval_dir: Path) -> Path:
    """The loop's report (the agent track per arm); v0's `report.md` is left as it is."""
    return Path(eval_dir) / "report_phase2.md"


def phase2_step_times_path(eval_dir: Path) -> Path:
    """The loop's step wall times, `{"step name": seconds}`, as `tools/report.py --step-times` reads them."""
    return Path(eval_dir) / "step_times_phase2.json"


def report_path(eval_dir: Path) -> Path:
    """The report's markdown; its chart goes beside it as `.png`."""
    return Path(eval_dir) / "report.md"


def pipeline_state_path(eval_dir: Path) -> Path:
    return Path(eval_dir) / "pipeline_state.json"


def serve_parity_path(eval_dir: Path, track: str) -> Path:
    return Path(eval_dir) / f"serve_parity_{track}.json"


def adapter_dir(ft_dir: Path, track: str) -> Path:
    return Path(ft_dir) / f"adapter_{track}"


def training_checkpoints_dir(ft_dir: Path, track: str) -> Path:
    """`<ft_dir>/checkpoints_<track>/`: a run's `--save-steps` checkpoints, kept until its adapter is published."""
    return Path(ft_dir) / f"checkpoints_{track}"


def is_adapter(folder: Path) -> bool:
    """A published PEFT adapter folder holds its `adapter_config.json`."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def merged_model_dir(models_dir: Path, base: str | Path, track: str) -> Path:
    """`<models_dir>/<base folder name>-<track>-merged`."""
    return Path(models_dir) / f"{Path(base).name}-{track}-merged"
