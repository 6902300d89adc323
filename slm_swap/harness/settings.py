"""The evaluation run's settings: pytest options resolved once, passed inward as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from slm_swap import layout, options
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracks.registry import get_track

DEFAULT_LAYOUT = layout.Layout()


# gold: the agent track's ground truth, labelled, never a model; routed: the SLM first, the hosted model where the
# validator rejects its answer (row tracks)
MODEL_CHOICES = ("azure", "slm", "replay", "gold", "routed")
ARM_CHOICES = AGENT_ARMS
ENGINE_CHOICES = ("static", "padded", "continuous")
QUANTIZATION_CHOICES = ("nf4", "none")
GATE_RULE_CHOICES = ("point", "interval")


def option(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


def shared(spec: options.Option) -> Any:
    """A setting other commands offer too: its default, help and rule come from `slm_swap.options`."""
    return option(spec.default, spec.described())


@dataclass(frozen=True)
class EvalSettings:
    """Every choice of one evaluation run; each field's default and help are also its pytest option's."""

    model: str | None = option(None, "which model answers the rows")
    split: str = option("test", "dataset split: train, val or test")
    dataset: Path | None = option(None, "evaluate another JSONL file in the row format")
    limit: int | None = option(None, "evaluate only the first N rows of the split")
    predictions: Path | None = option(None, "predictions JSONL for --model=replay")
    tag: str | None = option(None, "suffix of the metric file: <track>_<model>_<tag>.json")
    out_dir: Path = option(DEFAULT_LAYOUT.eval_dir, "where metric files go")
    dataset_dir: Path = option(DEFAULT_LAYOUT.dataset_dir, "root of the prepared splits")
    gate_against: Path | None = option(None, "reference metric file: exit status follows the gate")
    delta: float = shared(options.DELTA)  # under the gate: the largest allowed drop
    gate_rule: str = option("point", "point: fail on a drop above delta; interval: fail when the paired drop's interval is above delta")
    cache_dir: Path | None = option(layout.journal_dir(DEFAULT_LAYOUT.eval_dir), "answer journal folder; None keeps no journal")
    reuse: str = option("none", "which journalled answers to reuse: none, all, successes")
    max_error_rate: float | None = option(None, "fail the session when errors exceed this share of rows")
    adapter: str = option("none", "SLM adapter: PATH, auto (slm_swap/04_ft/adapter_<track> if present) or none")
    max_new_tokens: int = shared(options.MAX_NEW_TOKENS)
    batch_size: int | None = option(None, "SLM batch size (None: chosen from free memory; 8 on CPU)")
    quantization: str = option("nf4", "SLM weights: 4-bit NF4 or unquantised (none)")
    engine: str = option("static", "SLM generation engine (static: static KV cache, CUDA graphs on CUDA)")
    batch_invariant: bool = shared(options.BATCH_INVARIANT)
    check_batch_invariance: int = shared(options.CHECK_BATCH_INVARIANCE)
    request_timeout_s: float = option(60.0, "hosted request timeout in seconds")
    max_retries: int = option(5, "hosted retries per row (429, 5xx, timeouts)")
    row_budget_s: float = option(120.0, "hosted seconds per row, retries and waits included")
    circuit_threshold: int = option(10, "stop the run after this many identical failures in a row")
    max_connections: int = shared(options.MAX_CONNECTIONS)
    arm: str = option("codeact", "agent track: the action format, a ```python block (codeact) or <tool_call> elements (toolcall)")
    max_steps_per_turn: int = shared(options.MAX_STEPS_PER_TURN)
    max_active: int = shared(options.MAX_ACTIVE)
    unsafe_local_executor: bool = option(
        False,
        "agent track, codeact arm: run model-written code even where the operating-system sandbox cannot be set up "
        "(no user namespaces); the interpreter's allow-list is then the only barrier",
    )
    capture: bool = option(
        False, "agent track: also write every trajectory, accepted or rejected by the verifier, to <run>.trajectories.jsonl"
    )
    samples: int = shared(options.SAMPLES)
    temperature: float = option(0.7, "agent track: the sampling temperature of --samples (evaluation is always greedy)")
    ft_dir: Path = option(DEFAULT_LAYOUT.ft_dir, "where adapters live")
    pytest_args: tuple[str, ...] = ()

    def dataset_path(self, track: str) -> Path:
        if self.dataset is not None:
            return self.dataset
        return layout.split_path(self.dataset_dir, track, self.split)

    def split_name(self) -> str:
        return self.dataset.stem if self.dataset is not None else self.split

    def run_tag(self, track: str) -> str | None:
        """The tag in the run's file names, as the track writes it (`Track.run_tag`: the agent track's names the arm)."""
        return get_track(track).run_tag(self)

    def run_name(self, track: str) -> str:
        return layout.run_name(track, self.model, self.run_tag(track))

    def metric_path(self, track: str) -> Path:
        return layout.metric_path(self.out_dir, track, self.model, self.run_tag(track))

    def predictions_path(self, track: str) -> Path:
        return layout.predictions_path(self.out_dir, track, self.model, self.run_tag(track))

    def trajectories_path(self, track: str) -> Path:
        return layout.trajectories_path(self.out_dir, track, self.model, self.run_tag(track))


def default(name: str) -> Any:
    """A setting's default, for the pytest option that sets it: the defaults are written once, above."""
    return next(f.default for f in fields(EvalSettings) if f.name == name)


def help_text(name: str) -> str:
    """A setting's help text, with its default where it has one, for the pytest option that sets it."""
    spec = next(f for f in fields(EvalSettings) if f.name == name)
    return spec.metadata["help"] + ("" if spec.default is None else f" (default {spec.default})")
