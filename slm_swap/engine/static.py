"""Static-cache greedy generation: one KV cache per batch, allocated once; on CUDA each decode step is a graph replay.

Why not `generate`: on Phi-4-mini in NF4 a `generate` decode step costs about 50 ms of Python
and kernel launches before any work, its dynamic cache copies the whole KV cache on every step,
and grouped-query attention repeats each KV head for every query head it serves
(docs/benchmarks.md). Here:

- The rows of a batch share one ragged cache: row b owns a run of slots from `starts[b]`, its
  prompt first and its new tokens after it, so a batch takes the memory of its real tokens
  (plus its prefill group's padding), not rows x its longest row, and one long row does not
  push the others into a second batch.
- Prefill runs in groups of rows of similar length, each group right-padded to its own longest
  row, so one long row does not pad every other row of the batch, and plain causal attention
  (flash kernels, no mask) is exact for every real token.
- Decode attention reads only each row's own slots (slm_swap.engine.decode_attention, Triton) and
  serves all the query heads that share a KV head from one read; without Triton each row's
  slots are gathered into a padded block and attended through SDPA with a mask.
- On CUDA the norms, rotary embeddings and SwiGLU run fused Triton kernels with transformers'
  rounding (slm_swap.engine.fused_kernels; LocalSLM turns them on).
- On CUDA the whole decode step (forward pass, greedy pick, minimum-length rule, end-of-turn
  bookkeeping) is captured once per batch as a CUDA graph and replayed; elsewhere it runs as is.

The picks follow `generate`'s greedy rules: end-of-turn tokens are barred until
`min_new_tokens` tokens exist, and a finished row emits the pad token. The arithmetic differs
from `generate`'s, so on near-ties a pick can differ (the benchmark counts such flips).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from slm_swap.engine import decode_attention

log = logging.getLogger(__name__)

ATTENTION_NAME = "slm_swap_static"
UNSUPPORTED_ATTENTION = ("softcap", "s_aux")  # attention features this engine does not implement
ALIGN = 16  # cache and prefill widths are multiples of this, so masks over them suit fused SDPA kernels
PREFILL_PADDING = 1.15  # a prefill group's longest row is at most this many times its shortest
# One-off cost of a batch (its eager first step, the graph capture), in decode steps.
BATCH_OVERHEAD_STEPS = 20


@dataclass(frozen=True)
class BatchPlan:
    start: int
    end: int

    @property
    def rows(self) -> int:
        return self.end - self.start


def plan_batches(
    lengths: Sequence[int],
    new_tokens: int,
    slot_bytes: int,
    step_bytes: int,
    memory_bytes: float,
    max_rows: int,
    reads_padding: bool = True,
) -> list[BatchPlan]:
    """Split rows sorted longest first into batches that minimise the memory read by decoding.

    A decode step reads the weights (`step_bytes`, whatever the batch size) and the batch's
    cache (`slot_bytes` per slot). The cache holds each row's own slots (`row_slots`), but
    without the Triton kernel (`reads_padding`) a step reads rows x the longest row's slots:
    then one batch of every row reads the long rows' padding on every step, and one batch per
    row reads the weights once per row. The split in between is found exactly by dynamic
    programming over the sorted rows, within `memory_bytes` of cache and `max_rows` rows per
    batch. With `reads_padding` False padding costs nothing, and the plan is the fewest
    batches that fit.
    """
    import numpy as np

    if any(a < b for a, b in zip(lengths, lengths[1:])):
        raise ValueError("plan_batches needs the lengths sorted longest first")
    n = len(lengths)
    if n == 0:
        return []
    steps = max(new_tokens - 1, 1)
    slots = np.asarray([row_slots(length, new_tokens) for length in lengths], dtype=np.float64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    cut = np.zeros(n + 1, dtype=np.int64)
    real = np.concatenate(([0.0], np.cumsum(slots)))  # slots of rows [0, i)
    for end in range(1, n + 1):
        starts = np.arange(max(0, end - max_rows), end)
        rows = end - starts
        cache = (real[end] - real[starts]) * slot_bytes
        read = rows * slots[starts] * slot_bytes if reads_padding else cache  # padded to the first (longest) row
        cost = best[starts] + steps * (step_bytes + read) + BATCH_OVERHEAD_STEPS * step_bytes
        cost[(cache > memory_bytes) & (rows > 1)] = np.inf  # a row alone is always tried: it may still fit
        pick = int(np.argmin(cost))
        best[end], cut[end] = cost[pick], starts[pick]
    plans: list[BatchPlan] = []
    end = n
    while end > 0:
        plans.append(BatchPlan(int(cut[end]), end))
        end = int(cut[end])
    return plans[::-1]


def row_slots(length: int, new_tokens: int) -> int:
    """The most cache slots a row of `length` prompt tokens takes in a batch (see `reserved_slots`)."""
    return aligned(max(length + new_tokens - 1, math.ceil(PREFILL_PADDING * length)))


def reserved_slots(lengths: Sequence[int], new_tokens: int, groups: Sequence[tuple[int, int]]) -> list[int]:
    """Cache slots of each row: its prompt and new tokens, and at least its prefill group's width.

    A prefill pass writes every column of its right-padded group, padding included, into each
    row's own slots (the row's new tokens overwrite the padding before any query reads it).
    """
    slots = [0] * len(lengths)
    for first, last in groups:
        width = aligned(lengths[first])
        for row in range(first, last):
            slots[row] = aligned(max(lengths[row] + new_tokens - 1, width))
    return slots


def prefill_groups(lengths: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive groups of rows (sorted longest first) for one prefill pass each.

    A group's rows are padded to its first row: it holds at most `max_tokens` padded tokens
    (always at least one row) and its first row is at most PREFILL_PADDING times its last.
    """
    groups: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(lengths) + 1):
        if index == len(lengths):
            groups.append((start, index))
            break
        longest = lengths[start]
        if (index - start + 1) * longest > max_tokens or longest > PREFILL_PADDING * max(lengths[index], 1):
            groups.append((start, index))
            start = index
    return groups


@dataclass
class BatchTiming:
    """Where one batch's time went (device work included: the clock is read after a sync)."""

    rows: int
    slots: int
    prompt_tokens: int
    padded_prompt_tokens: int = 0
    prefill_passes: int = 0
    prefill_s: float = 0.0
    decode_steps: int = 0
    decode_s: float = 0.0


def synchronized_clock(device: Any) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class BatchCache:
    """The KV cache of one batch and the attention that reads it; the attention function in use calls `attend`.

    Ragged: per layer one (kv heads, total slots, head dim) tensor for keys and one for values;
    row b owns slots [starts[b], starts[b] + reserved[b]), its prompt first, then its new tokens.
    """

    def __init__(self, reserved: Sequence[int], device: Any) -> None:
        import torch

        self.rows = len(reserved)
        self.width = max(reserved)  # the most slots a row owns
        self.total = sum(reserved)
        long = dict(dtype=torch.long, device=device)
        self.row_starts = [0, *itertools.accumulate(reserved)][:-1]  # each row's first slot
        self.starts = torch.tensor(self.row_starts, **long)
        self.keys: dict[int, Any] = {}
        self.values: dict[int, Any] = {}
        self.decoding = False
        self.prefill: PrefillPass | None = None  # the prefill pass in progress
        self.slot: Any = None  # decode: (rows,) tensor, the slot each row writes this step, counted from its start
        self.write = torch.zeros(self.rows, **long)  # decode: starts + slot, updated in place before each step
        self.slot_index = torch.arange(self.width, **long)  # for the SDPA fallback's gather and mask

    def attend(self, layer: int, query: Any, key: Any, value: Any, scaling: float, window: int | None) -> Any:
        import torch
        import torch.nn.functional as F

        batch, heads, q_len, head_dim = query.shape
        kv_heads = key.shape[1]
        if layer not in self.keys:
            shape = (kv_heads, self.total, head_dim)
            self.keys[layer] = torch.zeros(shape, dtype=key.dtype, device=key.device)
            self.values[layer] = torch.zeros(shape, dtype=value.dtype, device=value.device)
        keys, values = self.keys[layer], self.values[layer]
        if not self.decoding:
            prefill = self.prefill
            for cache, new in ((keys, key), (values, value)):
                cache.index_copy_(1, prefill.destination, new.transpose(1, 2).reshape(-1, kv_heads, head_dim).transpose(0, 1))
            if prefill.sequence_starts is not None:
                return packed_attention(query, key, value, prefill, scaling, window)
            # Right-padded rows: a real token only sees earlier tokens, all real, so plain causal
            # attention (flash kernels, no mask) is exact for them. Padding slots written here are
            # overwritten by the row's new tokens before any query reads them.
            causal: dict[str, Any] = {"is_causal": True}
            if window is not None and window < q_len:
                offsets = torch.arange(q_len, device=query.device)
                gap = offsets[:, None] - offsets[None, :]
                causal = {"attn_mask": (gap >= 0) & (gap < window)}
            out = F.scaled_dot_product_attention(query, key, value, scale=scaling, enable_gqa=heads != kv_heads, **causal)
            return out.transpose(1, 2).contiguous()
        keys.index_copy_(1, self.write, key[:, :, 0].transpose(0, 1))
        values.index_copy_(1, self.write, value[:, :, 0].transpose(0, 1))
        if decode_attention.available(query.device, head_dim):
            return decode_attention.decode_attention(query, keys, values, self.starts, self.slot, scaling, window)
        # Each row's slots gathered into a (rows, kv heads, width, dim) block; slots past the
        # cache's end are clamped, then masked like every slot past the row's position.
        gather = (self.starts[:, None] + self.slot_index[None, :]).clamp_(max=self.total - 1)
        mask = self.slot_index[None, :] <= self.slot[:, None]
        if window is not None and window < self.width:
            mask &= self.slot_index[None, :] > self.slot[:, None] - window
        rows_keys, rows_values = (cache[:, gather].transpose(0, 1) for cache in (keys, values))
        # The query heads that share a KV head become that head's query rows: the fused attention
        # kernel then streams each cached head once, with no repeat and no score tensor in memory.
        grouped = query.reshape(batch, kv_heads, heads // kv_heads, head_dim)
        out = F.scaled_dot_product_attention(grouped, rows_keys, rows_values, attn_mask=mask[:, None, None, :], scale=scaling)
        return out.reshape(batch, heads, 1, head_dim).transpose(1, 2)


def packed_attention(query: Any, key: Any, value: Any, prefill: PrefillPass, scaling: float, window: int | None) -> Any:
    """Causal attention within each of the rows packed one after another in (1, heads, tokens, dim) tensors.

    On CUDA variable-length flash attention; elsewhere SDPA with a block-diagonal causal mask
    (tokens x tokens: for tests and small passes). Returns (1, tokens, heads, dim).
    """
    import torch
    import torch.nn.functional as F

    if packed_prefill_available(query.device):
        from torch.nn.attention.varlen import varlen_attn

        q, k, v = (t[0].transpose(0, 1).contiguous() for t in (query, key, value))
        starts, longest = prefill.sequence_starts, prefill.longest
        out = varlen_attn(
            q, k, v, starts, starts, longest, longest, scale=scaling, window_size=(window - 1 if window is not None else -1, 0)
        )
        return out[None]
    row = torch.repeat_interleave(
        torch.arange(len(prefill.sequence_starts) - 1, device=query.device), prefill.sequence_starts.diff().long()
    )
    position = prefill.positions[0]
    gap = position[:, None] - position[None, :]
    mask = (row[:, None] == row[None, :]) & (gap >= 0)
    if window is not None:
        mask &= gap < window
    heads, kv_heads = query.shape[1], key.shape[1]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, enable_gqa=heads != kv_heads)
    return out.transpose(1, 2).contiguous()


_ACTIVE: list[BatchCache] = []


def static_attention(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None, **kwargs: Any
) -> tuple[Any, None]:
    """transformers attention interface: key and value are this pass's new tokens, unrepeated.

    `attention_mask` is DecodeState.no_mask, a placeholder: the cache knows which slots each row sees.
    """
    for name in UNSUPPORTED_ATTENTION:
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"the static engine does not implement attention with {name}; use --engine padded")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return _ACTIVE[-1].attend(module.layer_idx, query, key, value, scaling, kwargs.get("sliding_window")), None


def register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, static_attention)


class StaticGenerator:
    """Greedy generation of one batch at a time with the static cache, on a loaded causal LM."""

    def __init__(
        self, model: Any, eos_ids: Sequence[int], pad_id: int, use_graphs: bool, prefill_tokens: int, packed: bool | None = None
    ) -> None:
        self.model = model
        # Prefill rows packed without padding (None: where variable-length flash attention exists), else right-padded groups.
        self.packed = packed_prefill_available(model.device) if packed is None else packed
        self.eos_ids = list(eos_ids)
        self.pad_id = pad_id
        self.use_graphs = use_graphs
        self.prefill_tokens = prefill_tokens
        self.graphs_failed: str | None = None  # why capture failed once; later batches run eagerly
        self.timings: list[BatchTiming] = []
        register_attention()

    def base(self) -> Any:
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, min_new_tokens: int = 0) -> list[list[int]]:
        """New tokens of every prompt, in the order given (ending at the first end-of-turn token or the cap)."""
        import torch

        if not prompts:
            return []
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        lengths = [len(prompts[i]) for i in order]
        if min(lengths) == 0:
            raise ValueError("every prompt needs at least one token")
        device = self.model.device
        packed = self.packed
        if packed:
            groups = packed_groups(lengths, self.prefill_tokens)
            reserved = [aligned(n + max_new_tokens - 1) for n in lengths]
        else:
            groups = prefill_groups(lengths, self.prefill_tokens)
            reserved = reserved_slots(lengths, max_new_tokens, groups)
        cache = BatchCache(reserved, device)
        base = self.base()
        previous = base.config._attn_implementation
        base.set_attn_implementation(ATTENTION_NAME)
        _ACTIVE.append(cache)
        timing = BatchTiming(rows=len(order), slots=cache.total, prompt_tokens=sum(lengths))
        try:
            with torch.inference_mode(), prefill_backends(device):
                started = time.perf_counter()
                state = DecodeState(len(order), max_new_tokens, min_new_tokens, self.eos_ids, self.pad_id, cache, device)
                # Every pass's inputs first, copied without waiting: no pass waits on the host.
                passes = []
                for first, last in groups:
                    rows, starts = [prompts[i] for i in order[first:last]], cache.row_starts[first:last]
                    passes.append(
                        packed_pass(rows, first, last, starts, device)
                        if packed
                        else padded_pass(rows, first, last, starts, self.pad_id, device)
                    )
                lengths_on_device = to_device(torch.tensor(lengths), device)
                for prefill in passes:
                    cache.prefill = prefill
                    logits = self.model(
                        input_ids=prefill.ids,
                        position_ids=prefill.positions,
                        attention_mask=state.no_mask,
                        use_cache=False,
                        logits_to_keep=prefill.keep,
                    ).logits
                    state.start_rows(
                        prefill.first,
                        prefill.last,
                        logits[prefill.row_of_logits, prefill.column_of_logits],
                        lengths_on_device[prefill.first : prefill.last],
                    )
                    timing.padded_prompt_tokens += prefill.ids.numel()
                timing.prefill_passes = len(groups)
                timing.prefill_s = synchronized_clock(device) - started
                cache.decoding = True
                timing.decode_steps = self.decode(state)
                tokens = state.out.tolist()
                timing.decode_s = time.perf_counter() - started - timing.prefill_s
                self.timings.append(timing)
        finally:
            _ACTIVE.remove(cache)
            base.set_attn_implementation(previous)
        generated: list[list[int]] = [[] for _ in prompts]
        for row, index in enumerate(order):
            generated[index] = tokens[row]
        return generated

    def decode(self, state: DecodeState) -> int:
        """Decode steps until every row has finished or has max_new_tokens tokens; returns the steps run."""
        steps = state.max_new_tokens - 1
        graph = None
        done = 0
        while done < steps:
            if not bool(state.unfinished.any()):
                break
            if graph is None and done >= 1 and self.use_graphs and self.graphs_failed is None:
                graph = self.capture(state)
            if graph is not None:
                graph.replay()
            else:
                state.step(self.model)
            done += 1
        return done

    def capture(self, state: DecodeState) -> Any:
        """The decode step as a CUDA graph, captured after one eager step (which warms up every kernel)."""
        import torch

        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                state.step(self.model)
        except Exception as exc:  # a kernel that syncs or allocates on the host cannot be captured
            self.graphs_failed = f"{type(exc).__name__}: {exc}"
            log.warning("CUDA graph capture failed, decoding without graphs: %s", self.graphs_failed)
            torch.cuda.synchronize()
            return None
        return graph


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


def four_bit_layers(model: Any) -> list[Any]:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return []
    return [module for module in model.modules() if isinstance(module, bnb.nn.Linear4bit)]


def dequantized_bytes(model: Any, dtype: Any) -> int:
    """Memory the compute-dtype copies of every 4-bit layer's weight take."""
    return sum(layer.weight.quant_state.shape.numel() * dtype.itemsize for layer in four_bit_layers(model))


@contextmanager
def dequantized_weights(model: Any, dtype: Any) -> Iterator[int]:
    """Within the block every 4-bit layer multiplies by a compute-dtype copy of its weight, made once.

    bitsandbytes dequantises a 4-bit weight on every call with more than one input row, then
    multiplies in the compute dtype; the copy is the same numbers, made once instead of on each
    decode step. It is freed when the block ends. Yields the copies' size in bytes.
    """
    import bitsandbytes.functional as bnbf
    import torch.nn.functional as F

    layers = four_bit_layers(model)
    total = 0
    try:
        for layer in layers:
            weight = bnbf.dequantize_4bit(layer.weight.data, layer.weight.quant_state).to(dtype)
            bias = layer.bias.to(dtype) if layer.bias is not None else None
            total += weight.numel() * weight.element_size()

            def forward(x: Any, weight: Any = weight, bias: Any = bias) -> Any:
                return F.linear(x.to(weight.dtype), weight, bias).to(x.dtype)

            layer.forward = forward
        yield total
    finally:
        for layer in layers:
            layer.__dict__.pop("forward", None)


def prefill_backends(device: Any) -> Any:
    """SDPA without cuDNN on CUDA: cuDNN builds a plan for every new shape, and each prefill group is one."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda":
        return nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def aligned(width: int) -> int:
    """A cache or prefill width rounded up to a multiple of ALIGN."""
    return -(-width // ALIGN) * ALIGN


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


def packed_pass(prompts: Sequence[Sequence[int]], first: int, last: int, starts: Sequence[int], device: Any) -> PrefillPass:
    """Rows [first, last) one after another in one sequence, no padding, row r's slots from starts[r - first].

    `keep` is each row's last token.
    """
    import numpy as np
    import torch

    lengths = np.asarray([len(p) for p in prompts])
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    positions = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    return PrefillPass(
        first, last, to_device(torch.tensor([token for prompt in prompts for token in prompt], dtype=torch.long)[None], device),
        positions=to_device(torch.from_numpy(positions)[None], device),
        keep=to_device(torch.from_numpy(offsets[1:] - 1), device),
        row_of_logits=0,
        column_of_logits=to_device(torch.arange(len(prompts)), device),
        destination=to_device(torch.from_numpy(np.repeat(np.asarray(starts), lengths) + positions), device),
        sequence_starts=to_device(torch.from_numpy(offsets).to(torch.int32), device),
        longest=int(lengths.max()),
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


def packed_groups(lengths: Sequence[int], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive groups of rows of at most `max_tokens` tokens together (always at least one row)."""
    groups: list[tuple[int, int]] = []
    start, tokens = 0, 0
    for index, length in enumerate(lengths):
        if index > start and tokens + length > max_tokens:
            groups.append((start, index))
            start, tokens = index, 0
        tokens += length
    if lengths:
        groups.append((start, len(lengths)))
    return groups


def to_device(tensor: Any, device: Any) -> Any:
    """A host tensor on `device`; to CUDA through pinned memory, so the copy does not make the host wait for the GPU."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.contiguous().pin_memory().to(device, non_blocking=True)
