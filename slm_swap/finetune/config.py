"""Fine-tuning settings: the fixed QLoRA recipe, the knobs around it, and the choice of backend.

The recipe (4-bit NF4 base, LoRA r=64 / alpha=16 / dropout=0.1, learning rate 2e-4,
one epoch, sequences up to 2048 tokens, loss on completion tokens only) is the same
for every run and every backend, so an adapter's quality says something about the
data and the model, not about a tuning sweep. The knobs change speed and memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slm_swap import layout
from slm_swap.layout import Layout
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracks.agent.data.trajectory_build import training_set_name
from slm_swap.tracks.rows.definitions import TRACK_NAMES

BACKENDS = ("auto", "unsloth", "hf")
DEFAULT_MODEL_PATH = Layout().default_slm_path
DEFAULT_DATASET_DIR = Layout().dataset_dir
DEFAULT_FT_DIR = Layout().ft_dir
DEFAULT_DECISION = layout.decision_path(Layout().eval_dir)
MANIFEST_NAME = "training_manifest.json"
# The agent track trains per arm on conversations (tools/build_trajectories.py), loss on assistant turns only.
CONVERSATION_TRACKS = tuple(training_set_name(arm) for arm in AGENT_ARMS)
TRAINING_TRACKS = (*TRACK_NAMES, *CONVERSATION_TRACKS)


@dataclass(frozen=True)
class FixedRecipe:
    """Not flags: every adapter of this project is trained with exactly these."""

    load_in_4bit: bool = True
    quant_type: str = "nf4"
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    learning_rate: float = 2e-4
    num_epochs: int = 1
    max_seq_length: int = 2048
    completion_only_loss: bool = True
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"


RECIPE = FixedRecipe()


@dataclass(frozen=True)
class Knobs:
    """Speed, memory and reproducibility; each has a flag on tools/finetune.py."""

    batch_size: int = field(default=8, metadata={"help": "rows per micro-batch on each process (padding-free: rows are concatenated)"})
    max_batch_tokens: int = field(
        default=8192, metadata={"help": "cap on the tokens of one micro-batch; a row that would pass it starts the next one"}
    )
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step on each process"})
    seed: int = field(default=0, metadata={"help": "shuffling, LoRA initialisation and dropout"})
    limit_rows: int | None = field(
        default=None, metadata={"help": "train on the first N rows only (quick runs); validation uses at most N too"}
    )
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of optimizer steps spent warming the learning rate up from 0"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "recompute activations in the backward pass (default: on for CUDA, off on CPU)"}
    )
    save_steps: int | None = field(
        default=None, metadata={"help": "write a checkpoint every N optimizer steps (tools/finetune.py --resume continues from the last)"}
    )
    eval_steps: int | None = field(default=None, metadata={"help": "validation loss every N optimizer steps, besides the one at the end"})
    max_seq_len: int | None = field(
        default=None,
        metadata={
            "help": "longest row kept, in tokens (default: the recipe's 2048; agent trajectories need more); longer rows are dropped"
        },
    )

    @property
    def seq_limit(self) -> int:
        return self.max_seq_len if self.max_seq_len is not None else RECIPE.max_seq_length

    def check(self) -> None:
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("--batch-size and --grad-accum must be at least 1")
        if self.max_seq_len is not None and self.max_seq_len < 1:
            raise ValueError("--max-seq-len must be at least 1")
        if self.max_batch_tokens < self.seq_limit:
            raise ValueError(
                f"--max-batch-tokens must be at least the sequence limit {self.seq_limit}, so that every kept row fits a micro-batch"
            )
        if self.limit_rows is not None and self.limit_rows < 1:
            raise ValueError("--limit-rows must be at least 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("--warmup-ratio must be in [0, 1)")
        for name in ("save_steps", "eval_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")


@dataclass(frozen=True)
class FinetuneRequest:
    """Everything one training run needs, resolved at the edge (flags and environment)."""

    track: str
    model_path: Path
    dataset_dir: Path = DEFAULT_DATASET_DIR
    out_dir: Path = DEFAULT_FT_DIR
    decision_path: Path = DEFAULT_DECISION
    backend: str = "auto"
    force: bool = False
    overwrite: bool = False
    resume: bool = False  # continue from the last checkpoint of an interrupted run with the same inputs
    knobs: Knobs = Knobs()

    @property
    def train_path(self) -> Path:
        return layout.split_path(self.dataset_dir, self.track, "train")

    @property
    def val_path(self) -> Path:
        return layout.split_path(self.dataset_dir, self.track, "val")

    @property
    def adapter_dir(self) -> Path:
        return layout.adapter_dir(self.out_dir, self.track)

    @property
    def checkpoints_dir(self) -> Path:
        return layout.training_checkpoints_dir(self.out_dir, self.track)


@dataclass(frozen=True)
class BackendChoice:
    name: str  # "unsloth" or "hf"
    reason: str


def choose_backend(requested: str, *, cuda: bool, world_size: int, unsloth_installed: bool) -> BackendChoice:
    """Which backend trains, and why; raises ValueError for a request that cannot run here."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; expected one of {BACKENDS}")
    if requested == "hf":
        return BackendChoice("hf", "requested with --backend hf")
    if requested == "unsloth":
        if not cuda:
            raise ValueError("--backend unsloth needs a CUDA GPU; use --backend hf (or auto) on this machine")
        if not unsloth_installed:
            raise ValueError("--backend unsloth: the unsloth package is not installed (pip install unsloth)")
        note = " (data-parallel Unsloth is not verified in this project)" if world_size > 1 else ""
        return BackendChoice("unsloth", "requested with --backend unsloth" + note)
    if not cuda:
        return BackendChoice("hf", "no CUDA GPU: Unsloth needs one")
    if world_size > 1:
        # Unsloth's data-parallel training is new and was never run on this project's machines;
        # the PEFT path trains under DDP with stock transformers, bitsandbytes and peft.
        return BackendChoice("hf", f"{world_size} processes: the data-parallel path uses the PEFT backend")
    if not unsloth_installed:
        return BackendChoice("hf", "unsloth is not installed")
    return BackendChoice("unsloth", "CUDA GPU with unsloth installed")


def describe_recipe(knobs: Knobs) -> dict[str, Any]:
    """The recipe as this run used it: `fixed.max_seq_length` is the length applied (`--max-seq-len` when given)."""
    return {"fixed": asdict(RECIPE) | {"max_seq_length": knobs.seq_limit}, "knobs": asdict(knobs)}
