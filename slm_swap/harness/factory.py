"""Builds the answerer a run asked for, from settings and the environment handed in at the edge.

`ANSWERERS` is the one mapping from `--model` to what answers (inspect_ai's model providers by name): each kind's
factory imports its backend on first use, so a replay run never loads torch or the hosted client. A kind also says
what to check before any case runs and how the row tracks wrap it (the answer journal, the hosted connections).
The row tracks take the answerer as a model of rows (`build_cached_model`); the agent track adapts the same answerer
to its step policy inside its slice (`slm_swap.tracks.agent.run.policy.build_policy`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from slm_swap import layout
from slm_swap.backends.api import Answerer, Model
from slm_swap.backends.concurrency import AdaptiveLimit, ConcurrentModel
from slm_swap.backends.journal import CachedModel
from slm_swap.data.rows import DatasetError, Row
from slm_swap.harness.progress import ReportedModel, RowProgress
from slm_swap.harness.settings import EvalSettings
from slm_swap.tracks.registry import get_track, track_names
from slm_swap.tracks.rows.definitions import TRACK_NAMES as ROW_TRACK_NAMES

if TYPE_CHECKING:  # the hosted client loads with the hosted model only
    from slm_swap.backends.hosted import HostedSettings

DEFAULT_SLM_PATH = str(layout.Layout().default_slm_path)  # relative to the folder pytest runs in


Progress = Callable[..., None]  # (rows done, rows in all[, errors by class])


class ModelSetupError(RuntimeError):
    """The model cannot be used as configured; the message says what to do."""


def build_cached_model(
    settings: EvalSettings,
    track: str,
    environ: Mapping[str, str],
    progress: Progress | None = None,
    more_rows: Callable[[], Sequence[Row]] | None = None,
) -> Model:
    """The row tracks' model: the answerer, behind the answer journal where its kind is journalled and the cache is on.

    The hosted model with `max_connections` > 1 answers its rows up front through that many connections,
    each answer journalled as it arrives (`ConcurrentModel` outside the journal); `more_rows` says which
    rows come next when it is asked for one it has not answered (a pytest-xdist worker's share).
    """
    kind = answerer_kind(settings.model)
    limit = AdaptiveLimit(settings.max_connections) if kind.hosted and settings.max_connections > 1 else None
    # an answerer of rows: the row tracks refuse the kinds that answer only the agent track (gold) before any is built
    model = cast(Model, build_answerer(settings, track, environ, progress, gate=limit))
    if settings.cache_dir is not None and kind.journalled:
        model = CachedModel(model, settings.cache_dir, settings.reuse)
    if limit is None:
        # one connection: each row's test asks for its own answer; the progress line comes per row all the same
        return ReportedModel(model, progress) if kind.hosted and progress is not None else model
    return ConcurrentModel(model, limit, more_rows=more_rows, progress=progress)


def build_answerer(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None = None, gate: AdaptiveLimit | None = None
) -> Answerer:
    """The answerer `--model` names, bare: no journal, no connections of its own. `progress`, if given, hears
    (rows done, rows in all) from answerers that generate up front (the SLM); `gate` limits the hosted model's calls."""
    return answerer_kind(settings.model).build(settings, track, environ, progress, gate)


def answerer_kind(model: str | None) -> AnswererKind:
    if model not in ANSWERERS:
        raise ModelSetupError(f"unknown model {model!r}; expected one of {', '.join(ANSWERERS)}")
    return ANSWERERS[model]


def replay_model(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None, gate: AdaptiveLimit | None
) -> Answerer:
    from slm_swap.backends.replay import ReplayModel

    if settings.predictions is None:
        raise ModelSetupError("--model=replay needs --predictions PATH")
    return ReplayModel(settings.predictions)


def hosted_model(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None, gate: AdaptiveLimit | None
) -> Answerer:
    from slm_swap.backends.hosted import HostedModel

    hosted = hosted_settings(environ)
    return HostedModel(
        hosted.endpoint,
        hosted.api_key,
        api_version=hosted.api_version,
        model=environ.get("AZURE_MODEL") or None,
        max_tokens=settings.max_new_tokens,
        timeout_s=settings.request_timeout_s,
        max_retries=settings.max_retries,
        row_budget_s=settings.row_budget_s,
        circuit_threshold=settings.circuit_threshold,
        gate=gate,
    )


def hosted_settings(environ: Mapping[str, str]) -> HostedSettings:
    from slm_swap.backends.hosted import HostedSettingsError, hosted_settings_from_env

    try:
        return hosted_settings_from_env(environ)
    except HostedSettingsError as exc:
        raise ModelSetupError(str(exc)) from None


def local_slm(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None, gate: AdaptiveLimit | None
) -> Answerer:
    from slm_swap.backends.checkpoints import CheckpointError
    from slm_swap.backends.local_slm import LocalSLM, resolve_adapter

    try:
        adapter = resolve_adapter(settings.adapter, track, settings.ft_dir)
        return LocalSLM(
            slm_model_path(environ),
            adapter=adapter,
            track=track,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            quantization=settings.quantization,
            engine=settings.engine,
            progress=progress,
            batch_invariant=settings.batch_invariant,
            token_progress=progress.tokens if isinstance(progress, RowProgress) else None,
        )
    except CheckpointError as exc:
        raise ModelSetupError(str(exc)) from None


class GroundTruth:
    """`--model=gold`: the ground truth, never a model; the track that has one answers from it (the agent track's
    gold policy, in its slice)."""

    name = "gold"

    def describe(self) -> dict[str, Any]:
        return {"name": "gold", "note": "ground-truth calls with a fixed labelled thought; not a model"}

    def close(self) -> None:
        return None


def gold_answerer(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None, gate: AdaptiveLimit | None
) -> Answerer:
    return GroundTruth()


def routed_model(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None, gate: AdaptiveLimit | None
) -> Answerer:
    """`--model=routed`: the SLM first, the hosted model on the rows the validator rejects; each side built (journal,
    batching, connections) exactly as `--model=slm` and `--model=azure` build it."""
    from slm_swap.backends.routed import RoutedModel

    slm = build_cached_model(dataclasses.replace(settings, model="slm"), track, environ, progress)
    hosted = build_cached_model(dataclasses.replace(settings, model="azure"), track, environ)
    return RoutedModel(track, slm, hosted)


def slm_model_path(environ: Mapping[str, str]) -> str:
    return environ.get("SLM_MODEL_PATH") or DEFAULT_SLM_PATH


def check_model_config(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    """Fail before any row runs when the chosen model cannot be reached or loaded."""
    answerer_kind(settings.model).check(settings, environ)


def check_hosted(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    hosted_settings(environ)


def check_slm(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    from slm_swap.backends.checkpoints import CheckpointError, require_checkpoint

    try:
        require_checkpoint(slm_model_path(environ))
        if settings.adapter not in ("auto", "none"):
            from slm_swap.backends.local_slm import resolve_adapter

            resolve_adapter(settings.adapter, "structured", settings.ft_dir)
    except CheckpointError as exc:
        raise ModelSetupError(f"SLM_MODEL_PATH: {exc}") from None


def check_replay(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    if settings.predictions is not None:
        check_replayed(settings.predictions)


def check_routed(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    for side in ("azure", "slm"):  # both sides, each as when it runs alone
        check_model_config(dataclasses.replace(settings, model=side), environ)


def check_nothing(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    return None  # gold reads only the dataset, which the run reads anyway


@dataclass(frozen=True)
class AnswererKind:
    """One `--model` value: its factory, what to check before any case runs, and how the row tracks wrap it."""

    build: Callable[[EvalSettings, str, Mapping[str, str], Progress | None, AdaptiveLimit | None], Answerer]
    check: Callable[[EvalSettings, Mapping[str, str]], None]
    journalled: bool = False  # behind the answer journal unless the cache is off (`--no-cache`)
    hosted: bool = False  # sent through `--max-connections` connections, its progress line per answer


ANSWERERS: dict[str, AnswererKind] = {
    "azure": AnswererKind(hosted_model, check_hosted, journalled=True, hosted=True),
    "slm": AnswererKind(local_slm, check_slm, journalled=True),
    "replay": AnswererKind(replay_model, check_replay),  # answers from a file: nothing to journal
    "gold": AnswererKind(gold_answerer, check_nothing),  # the agent track's ground truth: nothing to journal
    "routed": AnswererKind(routed_model, check_routed),  # each side journalled as it is alone
}


def check_replayed(path: Path) -> None:
    """Read a replayed predictions file whole before any row runs: a bad line (a number that is not finite or not of
    its field's type, a malformed record) stops the run naming the file and line, not a test or the trace halfway."""
    track = predictions_track(path)
    try:
        # a file that names no track, or one no track has, is read as rows: the loader says what is wrong
        get_track(track if track in track_names() else ROW_TRACK_NAMES[0]).check_predictions(path)
    except DatasetError as exc:
        raise ModelSetupError(str(exc)) from None


def predictions_track(path: Path) -> str | None:
    """The track its first line names (each track reads its own lines); None if it names none."""
    try:
        with open(path, encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        track = json.loads(first).get("track") if first else None
    except (OSError, ValueError, AttributeError):
        return None  # the loader then says what is wrong, naming the file
    return track if isinstance(track, str) else None
