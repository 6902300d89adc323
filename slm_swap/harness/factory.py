"""Builds the model a run asked for, from settings and the environment handed in at the edge."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from slm_swap import layout
from slm_swap.backends.api import Model
from slm_swap.backends.concurrency import AdaptiveLimit, ConcurrentModel
from slm_swap.backends.journal import CachedModel
from slm_swap.data.rows import DatasetError, Row
from slm_swap.harness.progress import ReportedModel, RowProgress
from slm_swap.harness.settings import EvalSettings
from slm_swap.tracks.registry import DECIDABLE_TRACKS, get_track
from slm_swap.tracks.rows.definitions import TRACK_NAMES as ROW_TRACK_NAMES

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
    """The model, behind the answer journal unless it is replay or the cache is off.

    The hosted model with `max_connections` > 1 answers its rows up front through that many connections,
    each answer journalled as it arrives (`ConcurrentModel` outside the journal); `more_rows` says which
    rows come next when it is asked for one it has not answered (a pytest-xdist worker's share).
    """
    if settings.model == "routed":
        return build_routed_model(settings, track, environ, progress)
    limit = AdaptiveLimit(settings.max_connections) if settings.model == "azure" and settings.max_connections > 1 else None
    model = build_model(settings, track, environ, progress, gate=limit)
    if settings.cache_dir is not None and settings.model != "replay":
        model = CachedModel(model, settings.cache_dir, settings.reuse)
    if limit is None:
        # one connection: each row's test asks for its own answer; the progress line comes per row all the same
        return ReportedModel(model, progress) if settings.model == "azure" and progress is not None else model
    return ConcurrentModel(model, limit, more_rows=more_rows, progress=progress)


def build_routed_model(settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None = None) -> Model:
    """`--model=routed`: the SLM first, the hosted model on the rows the validator rejects; each side built (journal,
    batching, connections) exactly as `--model=slm` and `--model=azure` build it."""
    from slm_swap.backends.routed import RoutedModel

    slm = build_cached_model(dataclasses.replace(settings, model="slm"), track, environ, progress)
    hosted = build_cached_model(dataclasses.replace(settings, model="azure"), track, environ)
    return RoutedModel(track, slm, hosted)


def build_model(
    settings: EvalSettings, track: str, environ: Mapping[str, str], progress: Progress | None = None, gate: AdaptiveLimit | None = None
) -> Model:
    """`progress`, if given, hears (rows done, rows in all) from models that generate up front (the SLM)."""
    if settings.model == "replay":
        from slm_swap.backends.replay import ReplayModel

        if settings.predictions is None:
            raise ModelSetupError("--model=replay needs --predictions PATH")
        return ReplayModel(settings.predictions)
    if settings.model == "azure":
        from slm_swap.backends.hosted import HostedModel, HostedSettingsError, hosted_settings_from_env

        try:
            hosted = hosted_settings_from_env(environ)
        except HostedSettingsError as exc:
            raise ModelSetupError(str(exc)) from None
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
    if settings.model == "slm":
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
    raise ModelSetupError(f"unknown model {settings.model!r}")


def slm_model_path(environ: Mapping[str, str]) -> str:
    return environ.get("SLM_MODEL_PATH") or DEFAULT_SLM_PATH


def check_model_config(settings: EvalSettings, environ: Mapping[str, str]) -> None:
    """Fail before any row runs when the chosen model cannot be reached or loaded."""
    if settings.model == "routed":  # both sides, each as when it runs alone
        for side in ("azure", "slm"):
            check_model_config(dataclasses.replace(settings, model=side), environ)
    if settings.model == "azure":
        from slm_swap.backends.hosted import HostedSettingsError, hosted_settings_from_env

        try:
            hosted_settings_from_env(environ)
        except HostedSettingsError as exc:
            raise ModelSetupError(str(exc)) from None
    elif settings.model == "slm":
        from slm_swap.backends.checkpoints import CheckpointError, require_checkpoint

        try:
            require_checkpoint(slm_model_path(environ))
            if settings.adapter not in ("auto", "none"):
                from slm_swap.backends.local_slm import resolve_adapter

                resolve_adapter(settings.adapter, "structured", settings.ft_dir)
        except CheckpointError as exc:
            raise ModelSetupError(f"SLM_MODEL_PATH: {exc}") from None
    elif settings.model == "replay" and settings.predictions is not None:
        check_replayed(settings.predictions)


def check_replayed(path: Path) -> None:
    """Read a replayed predictions file whole before any row runs: a bad line (a number that is not finite or not of
    its field's type, a malformed record) stops the run naming the file and line, not a test or the trace halfway."""
    track = predictions_track(path)
    try:
        # a file that names no track, or one no track has, is read as rows: the loader says what is wrong
        get_track(track if track in DECIDABLE_TRACKS else ROW_TRACK_NAMES[0]).check_predictions(path)
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
