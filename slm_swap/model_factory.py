"""Builds the model a run asked for, from settings and the environment handed in at the edge."""

from __future__ import annotations

from collections.abc import Mapping

from slm_swap.answer_cache import CachedModel
from slm_swap.eval_settings import EvalSettings
from slm_swap.model_api import Model


class ModelSetupError(RuntimeError):
    """The model cannot be used as configured; the message says what to do."""


def build_cached_model(settings: EvalSettings, track: str, environ: Mapping[str, str]) -> Model:
    """The model, behind the answer journal unless it is replay or the cache is off."""
    model = build_model(settings, track, environ)
    if settings.cache_dir is None or settings.model == "replay":
        return model
    return CachedModel(model, settings.cache_dir, settings.reuse)


def build_model(settings: EvalSettings, track: str, environ: Mapping[str, str]) -> Model:
    if settings.model == "replay":
        from slm_swap.replay import ReplayModel

        if settings.predictions is None:
            raise ModelSetupError("--model=replay needs --predictions PATH")
        return ReplayModel(settings.predictions)
    raise ModelSetupError(f"unknown model {settings.model!r}")
