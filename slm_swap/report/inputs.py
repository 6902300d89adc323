"""What the report reads: metric files, predictions, the decision and training manifests, found by name.

A missing file is a normal state (a track that was not fine-tuned has no adapter run)
and comes back as None. A file that exists but cannot be read raises
`ReportInputError` naming it and the line, so a broken run never reads as "not run"; so does a metric
file whose numbers disagree with its predictions or are not finite (`check_against_predictions`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError, Row, load_rows
from slm_swap.files import sha256_file
from slm_swap.harness.paired import check_metric_file, verified_flags
from slm_swap.layout import adapter_dir, decision_path, metric_path, predictions_path
from slm_swap.scoring.outcomes import RowRecord
from slm_swap.stats.intervals import wilson_interval
from slm_swap.tracks.rows.definitions import get_track

ROLES = ("hosted", "slm", "slm_ft")
ROLE_LABELS = {"hosted": "hosted", "slm": "SLM", "slm_ft": "SLM + adapter"}


class ReportInputError(ValueError):
    """An input file of the report exists but is unusable; the message names it."""


@dataclass(frozen=True)
class RunNames:
    """The model and tag that name each of the three runs' files (`slm_swap.layout.run_name`)."""

    hosted_model: str = "azure"
    slm_model: str = "slm"
    after_tag: str = "ft"

    def model_and_tag(self, role: str) -> tuple[str, str | None]:
        return {
            "hosted": (self.hosted_model, None),
            "slm": (self.slm_model, None),
            "slm_ft": (self.slm_model, self.after_tag),
        }[role]


@dataclass(frozen=True)
class Run:
    """One finished evaluation run: its metric document and, when present, its predictions."""

    role: str
    path: Path
    doc: dict[str, Any]
    predictions_path: Path
    predictions: tuple[RowRecord, ...] | None  # None: the predictions file is missing

    @property
    def label(self) -> str:
        return ROLE_LABELS[self.role]

    @property
    def metrics(self) -> dict[str, float]:
        return self.doc["metrics"]

    @property
    def failures(self) -> dict[str, int]:
        return self.doc.get("failures") or {}

    def interval(self, metric: str) -> tuple[float, float]:
        """The rate's 95 % interval: the metric file's own, or, for files written before it had one, Wilson's
        from round(rate * n) passing rows out of n."""
        recorded = (self.doc.get("intervals") or {}).get(metric)
        if recorded is not None:
            return float(recorded[0]), float(recorded[1])
        n = self.doc.get("n")
        n = n if isinstance(n, int) and n > 0 else 0
        # rounded as the harness writes them, so an old file shows the digits a new one would
        low, high = wilson_interval(min(max(round(self.metrics[metric] * n), 0), n), n).as_list()
        return low, high


@dataclass(frozen=True)
class TrackInputs:
    track: str
    runs: dict[str, Run]  # role -> run, only runs whose metric file exists
    decision: dict[str, Any] | None  # this track's entry of decision.json
    delta: float | None
    manifest_path: Path | None
    manifest: dict[str, Any] | None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportInputError(f"{path}: not readable JSON ({exc})") from exc


def load_predictions(path: Path) -> tuple[RowRecord, ...] | None:
    if not path.exists():
        return None
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReportInputError(f"{path}: line {number} is not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or "id" not in data:
            raise ReportInputError(f"{path}: line {number} is not a prediction record (no 'id')")
        try:
            records.append(RowRecord.from_json(data))
        except ValueError as exc:
            raise ReportInputError(f"{path}: line {number} is not a prediction record ({exc})") from exc
    return tuple(records)


def is_interval(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value) and value[0] <= value[1]


def check_against_predictions(path: Path, doc: dict[str, Any], predictions: Path) -> None:
    """The predictions are the source of truth: a metric file whose rates or counts disagree with them, or that holds
    a non-finite number, is refused. Without predictions only the second can be checked."""
    try:
        if predictions.exists():
            verified_flags(path, doc, predictions)
        else:
            check_metric_file(path, doc, {}, predictions)
    except ValueError as exc:
        raise ReportInputError(str(exc)) from None


def load_run(eval_dir: Path, track: str, role: str, names: RunNames) -> Run | None:
    model, tag = names.model_and_tag(role)
    path = metric_path(eval_dir, track, model, tag)
    if not path.exists():
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or doc.get("track") != track:
        raise ReportInputError(f"{path}: not an SLM Swap metric file for track {track!r}")
    missing = [m for m in get_track(track).core_metrics if not isinstance(doc["metrics"].get(m), (int, float))]
    if missing:
        raise ReportInputError(f"{path}: no value for core metric(s) {', '.join(missing)}")
    intervals = doc.get("intervals") or {}
    broken = [m for m in get_track(track).core_metrics if isinstance(intervals, dict) and m in intervals and not is_interval(intervals[m])]
    if not isinstance(intervals, dict) or broken:
        raise ReportInputError(f"{path}: 'intervals' is not a [low, high] pair for {', '.join(broken) or 'any metric'}")
    # the predictions sit beside their metric file, so a copied evaluation folder still reports
    predictions = predictions_path(eval_dir, track, model, tag)
    records = load_predictions(predictions)
    check_against_predictions(path, doc, predictions)
    return Run(role, path, doc, predictions, records)


def load_decision(eval_dir: Path) -> dict[str, Any] | None:
    path = decision_path(eval_dir)
    if not path.exists():
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("tracks"), dict):
        raise ReportInputError(f"{path}: not a decision file (no 'tracks')")
    return doc


def find_manifest(ft_dir: Path, track: str) -> Path | None:
    found = sorted(adapter_dir(ft_dir, track).glob("*manifest*.json"))
    return found[0] if found else None


def load_track(eval_dir: Path, ft_dir: Path, track: str, decision_doc: dict[str, Any] | None, names: RunNames) -> TrackInputs:
    runs = {role: run for role in ROLES if (run := load_run(eval_dir, track, role, names)) is not None}
    decision = (decision_doc or {}).get("tracks", {}).get(track)
    delta = None
    if decision is not None:
        delta = decision.get("delta", decision_doc.get("delta"))
        if not isinstance(delta, (int, float)):
            raise ReportInputError(f"{decision_path(eval_dir)}: track {track!r} has no numeric delta")
    manifest_path = find_manifest(ft_dir, track)
    manifest = read_json(manifest_path) if manifest_path else None
    if manifest is not None and not isinstance(manifest, dict):
        raise ReportInputError(f"{manifest_path}: expected a JSON object")
    return TrackInputs(track, runs, decision, delta, manifest_path, manifest)


def stale_decision_notes(inputs: TrackInputs) -> list[str]:
    """Say so when decision.json was made from other metric files than the ones reported."""
    if inputs.decision is None:
        return []
    notes = []
    recorded = inputs.decision.get("inputs") or {}
    for role, key in (("hosted", "hosted"), ("slm", "slm"), ("slm_ft", "slm_after_fine_tune")):
        run = inputs.runs.get(role)
        identity = recorded.get(key)
        if run is None or not identity:
            continue
        if identity.get("sha256") != sha256_file(run.path):
            notes.append(f"decision.json was made from a different {run.label} metric file than {run.path.name} (re-run the decision)")
    return notes


def resolve(path_text: str, root: Path | None) -> Path:
    path = Path(path_text)
    return path if path.is_absolute() or root is None else root / path


def load_dataset_rows(run: Run, root: Path | None) -> tuple[dict[str, Row], str | None]:
    """The rows a run evaluated, by id, or why they cannot be shown (the file changed or is gone)."""
    dataset = run.doc.get("dataset") or {}
    if not dataset.get("path"):
        return {}, "the metric file names no dataset"
    path = resolve(dataset["path"], root)
    if not path.exists():
        return {}, f"dataset {path} not found"
    if dataset.get("sha256") and sha256_file(path) != dataset["sha256"]:
        # showing today's row beside yesterday's output would pair the wrong gold with it
        return {}, f"dataset {path} changed since the run (sha256 differs)"
    try:
        rows = load_rows(path, run.doc["track"], split=run.doc.get("split"))
    except DatasetError as exc:
        return {}, str(exc)
    return {row.id: row for row in rows}, None
