"""The evaluation run's settings: pytest options resolved once, passed inward as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATASET_DIR = Path("slm_swap/02_dataset")
DEFAULT_OUT_DIR = Path("slm_swap/05_eval")


@dataclass(frozen=True)
class EvalSettings:
    model: str | None = field(default=None, metadata={"help": "which model answers: replay, azure or slm"})
    split: str = field(default="test", metadata={"help": "dataset split to evaluate"})
    dataset: Path | None = field(default=None, metadata={"help": "another JSONL file in the row format"})
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N rows"})
    predictions: Path | None = field(default=None, metadata={"help": "predictions JSONL that replay re-scores"})
    tag: str | None = field(default=None, metadata={"help": "suffix for the metric file name"})
    out_dir: Path = field(default=DEFAULT_OUT_DIR, metadata={"help": "where metric and prediction files go"})
    dataset_dir: Path = field(default=DEFAULT_DATASET_DIR, metadata={"help": "root of the prepared splits"})
    gate_against: Path | None = field(default=None, metadata={"help": "reference metric file for the regression gate"})
    delta: float = field(default=0.02, metadata={"help": "allowed drop of a core metric under the gate"})
    cache_dir: Path | None = field(default=None, metadata={"help": "answer journal folder; None turns the cache off"})
    reuse: str = field(default="none", metadata={"help": "which journalled answers to reuse: none, all, successes"})
    max_error_rate: float | None = field(default=None, metadata={"help": "fail when errors exceed this share"})
    adapter: str = field(default="none", metadata={"help": "SLM adapter: PATH, auto (slm_swap/04_ft/adapter_<track>) or none"})
    max_new_tokens: int = field(default=256, metadata={"help": "output-token cap for every model"})
    batch_size: int | None = field(default=None, metadata={"help": "SLM batch size; None chooses from free memory"})
    quantization: str = field(default="nf4", metadata={"help": "SLM weights: nf4 (4-bit) or none"})
    engine: str = field(default="static", metadata={"help": "SLM generation engine: static, padded or continuous"})
    request_timeout_s: float = field(default=60.0, metadata={"help": "hosted request timeout"})
    max_retries: int = field(default=5, metadata={"help": "hosted retries per row for 429, 5xx and timeouts"})
    row_budget_s: float = field(default=120.0, metadata={"help": "hosted time budget per row, retries included"})
    circuit_threshold: int = field(default=10, metadata={"help": "stop after this many identical failures in a row"})
    ft_dir: Path = field(default=Path("slm_swap/04_ft"), metadata={"help": "where adapters live"})
    pytest_args: tuple[str, ...] = ()

    def dataset_path(self, track: str) -> Path:
        if self.dataset is not None:
            return self.dataset
        return self.dataset_dir / track / f"{self.split}.jsonl"

    def split_name(self) -> str:
        return self.dataset.stem if self.dataset is not None else self.split

    def run_name(self, track: str) -> str:
        suffix = f"_{self.tag}" if self.tag else ""
        return f"{track}_{self.model}{suffix}"

    def metric_path(self, track: str) -> Path:
        return self.out_dir / f"{self.run_name(track)}.json"

    def predictions_path(self, track: str) -> Path:
        return self.out_dir / f"{self.run_name(track)}.predictions.jsonl"
