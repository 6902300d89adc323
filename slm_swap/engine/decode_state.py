"""The tensors of a static-engine batch's decode loop (`DecodeState`): advanced in place by each decode step, so a
CUDA graph can replay the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slm_swap.engine.cache import BatchCache


class DecodeState:
    """The tensors one decode step reads and advances in place, so a CUDA graph can replay it."""

    def __init__(
        self, rows: int, max_new_tokens: int, min_new_tokens: int, eos_ids: Sequence[int], pad_id: int, cache: BatchCache, device: Any
    ) -> None:
        import torch

        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.pad_id = pad_id
        self.cache = cache
        long = dict(dtype=torch.long, device=device)
        self.eos = torch.tensor(list(eos_ids), **long)
        self.tokens = torch.zeros(rows, 1, **long)  # the token each row feeds next
        self.positions = torch.zeros(rows, 1, **long)  # also the cache slot each row writes next
        self.generated = torch.ones(1, **long)  # tokens generated so far (prefill makes the first)
        self.unfinished = torch.ones(rows, dtype=torch.bool, device=device)
        self.out = torch.full((rows, max_new_tokens), pad_id, **long)
        cache.slot = self.positions.view(-1)
        # Any 4-D mask is handed to the attention function as is: transformers builds none of its own.
        self.no_mask = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device)

    def pick(self, logits: Any, generated: Any, unfinished: Any) -> Any:
        """Greedy token per row; end-of-turn tokens are barred while fewer than min_new_tokens exist; finished rows pad."""
        import torch

        if self.min_new_tokens:
            barred = torch.where(generated < self.min_new_tokens, float("-inf"), 0.0).to(logits.dtype)
            logits = logits.index_copy(1, self.eos, logits.index_select(1, self.eos) + barred)
        return torch.where(unfinished, logits.argmax(dim=-1), self.pad_id)

    def finish(self, rows: slice, tokens: Any) -> None:
        self.unfinished[rows] &= ~(tokens[:, None] == self.eos[None, :]).any(dim=-1)

    def start_rows(self, first: int, last: int, logits: Any, lengths: Any) -> None:
        """Rows [first, last) take their first token from `logits`; `lengths` (on the device) are their prompt lengths."""
        import torch

        rows = slice(first, last)
        tokens = self.pick(logits, torch.zeros_like(self.generated), self.unfinished[rows])
        self.out[rows, 0] = tokens
        self.finish(rows, tokens)
        self.tokens[rows, 0] = tokens
        self.positions[rows, 0] = lengths

    def step(self, model: Any) -> None:
        """One decode step, entirely on the device: no host sync, so it can be captured."""
        import torch

        torch.add(self.cache.starts, self.cache.slot, out=self.cache.write)
        logits = model(
            input_ids=self.tokens, position_ids=self.positions, attention_mask=self.no_mask, use_cache=False, logits_to_keep=1
        ).logits[:, -1]
        tokens = self.pick(logits, self.generated, self.unfinished)
        self.out.index_copy_(1, self.generated, tokens[:, None])
        self.finish(slice(None), tokens)
        self.tokens.copy_(tokens[:, None])
        self.positions.add_(1)
        self.generated.add_(1)
