"""Training rows as tokens: chat template, completion-only labels, over-length rows, padding-free batches.

A row becomes exactly what the SLM sees at evaluation time, the prompt through the
checkpoint's chat template with `add_generation_prompt=True`, followed by the gold
completion and the template's end-of-turn token. Labels are -100 on every prompt
token, so the loss counts completion tokens only.

Rows longer than the sequence limit are dropped, counted and named, never cut:
a truncated row would teach the model a reply with no end, or a prompt with no question.

Batches are padding-free: a micro-batch is its rows laid end to end in one sequence,
with position ids restarting at 0 for each row. The attention kernels see the row
boundaries through those position ids (transformers builds a block-diagonal causal
mask from them; Unsloth also reads `packed_seq_lengths`), so no token attends across
rows, and since every row opens with masked prompt tokens no loss spans a boundary.

TRL's `SFTTrainer` trains on these exactly: the split becomes a `datasets.Dataset` of `input_ids` and
`labels` (`to_dataset`), `TokenBudgetBatches` plans its micro-batches (at most `batch_size` rows and
`max_batch_tokens` tokens, shuffled by the seed) and `PaddingFreeCollator` lays them end to end with
`collate_padding_free`, so the mask and packing tests of this module test what the trainer sees.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Sampler

from slm_swap.data.rows import DatasetError, Row, load_rows
from slm_swap.files import sha256_file
from slm_swap.prompts import build_messages

IGNORE_INDEX = -100
_PROBE_REPLY = "SLM-SWAP-PROBE-REPLY"


@dataclass(frozen=True)
class TokenizedRow:
    row_id: str
    input_ids: tuple[int, ...]
    n_prompt: int  # the first n_prompt tokens carry no loss
    # A conversation's tokens that carry loss (its assistant turns), where loss is not one completion after a prompt;
    # None for prompt -> completion rows, whose every token after n_prompt carries loss.
    loss_mask: tuple[bool, ...] | None = None

    @property
    def labels(self) -> list[int]:
        if self.loss_mask is not None:
            return [token if keep else IGNORE_INDEX for token, keep in zip(self.input_ids, self.loss_mask, strict=True)]
        return [IGNORE_INDEX] * self.n_prompt + list(self.input_ids[self.n_prompt :])

    @property
    def n_loss(self) -> int:
        return sum(self.loss_mask) if self.loss_mask is not None else len(self) - self.n_prompt

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class PreparedSplit:
    path: Path
    sha256: str
    rows: tuple[TokenizedRow, ...]
    n_read: int  # rows in the file (after --limit-rows)
    over_length: tuple[tuple[str, int], ...]  # (row id, tokens) of the rows dropped for length
    max_seq_length: int

    @property
    def n_tokens(self) -> int:
        return sum(len(r) for r in self.rows)

    @property
    def n_loss_tokens(self) -> int:
        return sum(r.n_loss for r in self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "rows_read": self.n_read,
            "rows_used": len(self.rows),
            "rows_over_length": len(self.over_length),
            "max_seq_length": self.max_seq_length,
            "over_length_rows": [{"id": rid, "tokens": n} for rid, n in self.over_length],
            "tokens": self.n_tokens,
            "loss_tokens": self.n_loss_tokens,
        }


def stop_token_ids(tokenizer: Any, generation_eos: int | Sequence[int] | None) -> list[int]:
    """The ids that end a reply at generation time: the generation config's eos ids, then the tokenizer's."""
    ids = [generation_eos] if isinstance(generation_eos, int) else list(generation_eos or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("the checkpoint names no end-of-sequence token (generation_config.json or tokenizer)")
    return ids


def end_of_turn_id(tokenizer: Any, stop_ids: Sequence[int]) -> int:
    """The token the chat template closes an assistant turn with, if it is one that stops generation.

    Rendered on a probe conversation: whatever the template writes right after the
    reply is tokenized, and its first stop token is the one the model must learn to emit.
    A template that closes turns with no stop token falls back to the first stop id.
    """
    prompt = tokenizer.apply_chat_template(build_messages("probe"), add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(build_messages("probe") + [{"role": "assistant", "content": _PROBE_REPLY}], tokenize=False)
    at = full.rfind(_PROBE_REPLY)
    if full.startswith(prompt) and at >= len(prompt):
        for token in tokenizer(full[at + len(_PROBE_REPLY) :], add_special_tokens=False)["input_ids"]:
            if token in stop_ids:
                return token
    return stop_ids[0]


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt exactly as generation sees it (slm_swap.backends.local_slm encodes the same way):
    the chat template with the assistant turn opened, tokenized without extra special tokens."""
    text = tokenizer.apply_chat_template(build_messages(prompt), add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_row(tokenizer: Any, row: Row, eot_id: int) -> TokenizedRow:
    head = prompt_ids(tokenizer, row.prompt)
    reply = tokenizer(row.completion, add_special_tokens=False)["input_ids"] + [eot_id]
    return TokenizedRow(row.id, tuple(head + reply), len(head))


def prepare_split(path: Path, track: str, tokenizer: Any, eot_id: int, max_seq_length: int, limit: int | None = None) -> PreparedSplit:
    """Load, check and tokenize a split; over-length rows are set aside with their lengths."""
    rows = load_rows(path, track)
    if limit is not None:
        rows = rows[:limit]
    kept, over = [], []
    for row in rows:
        tokens = tokenize_row(tokenizer, row, eot_id)
        if len(tokens) > max_seq_length:
            over.append((row.id, len(tokens)))
        else:
            kept.append(tokens)
    if not kept:
        raise DatasetError(f"{path}: all {len(rows)} rows are longer than {max_seq_length} tokens; nothing to train on")
    return PreparedSplit(Path(path), sha256_file(path), tuple(kept), len(rows), tuple(over), max_seq_length)


def plan_micro_batches(lengths: Sequence[int], batch_size: int, max_tokens: int, seed: int | None) -> list[list[int]]:
    """Row indices per micro-batch: shuffled (None keeps file order), at most batch_size rows and max_tokens tokens each."""
    order = list(range(len(lengths)))
    if seed is not None:
        random.Random(seed).shuffle(order)
    batches: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for index in order:
        if lengths[index] > max_tokens:
            raise ValueError(f"row {index} has {lengths[index]} tokens, more than a micro-batch may hold ({max_tokens})")
        if current and (len(current) == batch_size or tokens + lengths[index] > max_tokens):
            batches.append(current)
            current, tokens = [], 0
        current.append(index)
        tokens += lengths[index]
    if current:
        batches.append(current)
    return batches


def collate_padding_free(rows: Iterable[TokenizedRow]) -> dict[str, torch.Tensor]:
    """One sequence of the rows end to end; position ids restart per row; no padding anywhere."""
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    lengths: list[int] = []
    for row in rows:
        input_ids.extend(row.input_ids)
        labels.extend(row.labels)
        positions.extend(range(len(row)))
        lengths.append(len(row))
    if not lengths:
        raise ValueError("an empty micro-batch")
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "packed_seq_lengths": torch.tensor(lengths, dtype=torch.int32),
    }


def count_loss_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens the loss is taken on: a label at i is predicted from position i-1, so the first label never counts."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def row_from_example(input_ids: Sequence[int], labels: Sequence[int]) -> TokenizedRow:
    """A dataset example back as a row: a prompt mask where the labels are one, else a conversation's loss mask.
    Refuses labels that are neither -100 nor the input id at any position."""
    if len(labels) != len(input_ids) or any(label not in (IGNORE_INDEX, token) for token, label in zip(input_ids, labels)):
        raise ValueError("labels must be -100 or equal to input_ids at every position")
    n_prompt = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(labels))
    if all(label != IGNORE_INDEX for label in labels[n_prompt:]):
        return TokenizedRow("", tuple(input_ids), n_prompt)
    return TokenizedRow("", tuple(input_ids), n_prompt, tuple(label != IGNORE_INDEX for label in labels))


class PaddingFreeCollator:
    """The trainer's collator: dataset examples (`input_ids`, `labels`) to one padding-free micro-batch, with only
    the keys the model's forward takes."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = (row_from_example(f["input_ids"], f["labels"]) for f in features)
        batch = collate_padding_free(rows)
        return {key: value for key, value in batch.items() if key in self.keys}


class TokenBudgetBatches(Sampler[list[int]]):
    """Micro-batches of row indices, planned once by `plan_micro_batches`: the same for a seed, so a resumed run
    skips exactly the batches it already trained."""

    def __init__(self, lengths: Sequence[int], batch_size: int, max_tokens: int, seed: int | None) -> None:
        self.batches = plan_micro_batches(lengths, batch_size, max_tokens, seed)

    def __iter__(self):
        return iter([list(b) for b in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


def to_dataset(rows: Sequence[TokenizedRow]) -> Any:
    """A `datasets.Dataset` of the rows' `input_ids` and `labels` (already tokenized and masked: TRL leaves it as is)."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [list(r.input_ids) for r in rows], "labels": [r.labels for r in rows]})
