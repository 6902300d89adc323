"""The inputs of the static engine's prefill passes, on the device: rows right-padded to a common width, or
rows packed one after another for variable-length attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from slm_swap.engine.planning import aligned


@dataclass
class PrefillPass:
    """The inputs of one prefill pass over rows [first, last) of a batch, on the device.

    Right-padded: ids (rows, width), each row's tokens from column 0. Packed: ids (1, tokens),
    the rows one after another, `sequence_starts` their offsets (and the total) for
    variable-length attention. Either way `logits[row_of_logits, column_of_logits]` are the rows'
    next-token logits, `logits` being the model's output for `logits_to_keep=keep`, and
    `destination` is the cache slot of every token of `ids`, row-major.
    """

    first: int
    last: int
    ids: Any
    positions: Any
    keep: Any
    row_of_logits: Any
    column_of_logits: Any
    destination: Any
    sequence_starts: Any = None
    longest: int = 0
    # prefix reuse: per row (first query token in `ids`, tokens prefilled, tokens already in its slots, first slot)
    suffix_rows: list[tuple[int, int, int, int]] | None = None


def padded_pass(prompts: Sequence[Sequence[int]], first: int, last: int, starts: Sequence[int], pad_id: int, device: Any) -> PrefillPass:
    """Rows [first, last) padded on the right to a common width, row r's slots from starts[r - first].

    `keep` is the distinct columns where some row's prompt ends.
    """
    import numpy as np
    import torch

    width = aligned(max(len(p) for p in prompts))
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
    ends = sorted({len(p) - 1 for p in prompts})
    column = {end: index for index, end in enumerate(ends)}
    return PrefillPass(
        first, last, to_device(ids, device),
        positions=to_device(torch.arange(width)[None].expand(len(prompts), -1), device),
        keep=to_device(torch.tensor(ends, dtype=torch.long), device),
        row_of_logits=to_device(torch.arange(len(prompts)), device),
        column_of_logits=to_device(torch.tensor([column[len(p) - 1] for p in prompts], dtype=torch.long), device),
        destination=to_device(torch.from_numpy((np.asarray(starts)[:, None] + np.arange(width)[None, :]).reshape(-1)), device),
    )  # fmt: skip


def packed_pass(
    prompts: Sequence[Sequence[int]], first: int, last: int, starts: Sequence[int], device: Any, reused: Sequence[int] | None = None
) -> PrefillPass:
    """Rows [first, last) one after another in one sequence, no padding, row r's slots from starts[r - first].

    `keep` is each row's last token. With `reused` (prefix reuse) row r's first reused[r - first] tokens are in its
    slots already: only the tokens after them are fed, at their own positions, and attend over the row's slots.
    """
    import numpy as np
    import torch

    skip = np.asarray(reused if reused is not None else [0] * len(prompts))
    lengths = np.asarray([len(p) for p in prompts]) - skip
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    positions = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - skip, lengths)
    ids = [token for prompt, n in zip(prompts, skip) for token in prompt[n:]]
    suffix_rows = None
    if reused is not None:
        suffix_rows = [(int(o), int(n), int(m), int(s)) for o, n, m, s in zip(offsets, lengths, skip, starts)]
    return PrefillPass(
        first, last, to_device(torch.tensor(ids, dtype=torch.long)[None], device),
        positions=to_device(torch.from_numpy(positions)[None], device),
        keep=to_device(torch.from_numpy(offsets[1:] - 1), device),
        row_of_logits=0,
        column_of_logits=to_device(torch.arange(len(prompts)), device),
        destination=to_device(torch.from_numpy(np.repeat(np.asarray(starts), lengths) + positions), device),
        sequence_starts=to_device(torch.from_numpy(offsets).to(torch.int32), device),
        longest=int(lengths.max()),
        suffix_rows=suffix_rows,
    )  # fmt: skip


def packed_prefill_available(device: Any) -> bool:
    """Variable-length flash attention (torch.nn.attention.varlen, CUDA) for packed prefill passes."""
    if device.type != "cuda":
        return False
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def prefill_backends(device: Any) -> Any:
    """SDPA without cuDNN on CUDA: cuDNN builds a plan for every new shape, and each prefill group is one."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda":
        return nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def to_device(tensor: Any, device: Any) -> Any:
    """A host tensor on `device`; to CUDA through pinned memory, so the copy does not make the host wait for the GPU."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.contiguous().pin_memory().to(device, non_blocking=True)
