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
- Prefix reuse (slm_swap.engine.prefix_cache, with a `PrefixCache`): a prompt whose first tokens were prefilled
  by an earlier call (an agent episode's chat at its next step) takes their keys and values from the kept blocks
  and prefills only the rest, in packed passes whose tokens attend over the row's cache slots.
- On CUDA the whole decode step (forward pass, greedy pick, minimum-length rule, end-of-turn
  bookkeeping) is captured once per batch as a CUDA graph and replayed; elsewhere it runs as is.

The picks follow `generate`'s greedy rules: end-of-turn tokens are barred until
`min_new_tokens` tokens exist, and a finished row emits the pad token. The arithmetic differs
from `generate`'s, so on near-ties a pick can differ (the benchmark counts such flips).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from slm_swap.engine.cache import ATTENTION_NAME, BatchCache, register_attention, serving
from slm_swap.engine.decode_state import DecodeState
from slm_swap.engine.invariant import TileSwitch, row_tiled_linears
from slm_swap.engine.planning import aligned, packed_groups, prefill_groups, reserved_slots
from slm_swap.engine.prefill import packed_pass, packed_prefill_available, padded_pass, prefill_backends, to_device
from slm_swap.engine.prefix_cache import PrefillCounters, PrefixCache, cache_reader, match_rows

log = logging.getLogger(__name__)


@dataclass
class BatchTiming:
    """Where one batch's time went (device work included: the clock is read after a sync)."""

    rows: int
    slots: int
    prompt_tokens: int
    padded_prompt_tokens: int = 0
    reused_prompt_tokens: int = 0  # taken from kept prefixes, not prefilled
    prefill_passes: int = 0
    prefill_s: float = 0.0
    decode_steps: int = 0
    decode_s: float = 0.0


def synchronized_clock(device: Any) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class StaticGenerator:
    """Greedy generation of one batch at a time with the static cache, on a loaded causal LM."""

    def __init__(
        self,
        model: Any,
        eos_ids: Sequence[int],
        pad_id: int,
        use_graphs: bool,
        prefill_tokens: int,
        packed: bool | None = None,
        batch_invariant: bool = False,
        prefixes: PrefixCache | None = None,
    ) -> None:
        self.model = model
        # slm_swap.engine.invariant: one-row prefill passes, decode linears in fixed row tiles, per-row decode attention
        self.batch_invariant = batch_invariant
        self.tiles = TileSwitch()
        # Prefill rows packed without padding (None: where variable-length flash attention exists), else right-padded groups.
        self.packed = packed_prefill_available(model.device) if packed is None else packed
        self.eos_ids = list(eos_ids)
        self.pad_id = pad_id
        self.use_graphs = use_graphs
        self.prefill_tokens = prefill_tokens
        self.graphs_failed: str | None = None  # why capture failed once; later batches run eagerly
        self.timings: list[BatchTiming] = []
        self.prefixes = prefixes  # None: every prompt is prefilled whole
        self.counters = PrefillCounters()
        # told (decode steps run, steps at most) after every decode step: progress within a long batch; the step
        # already waits for the device (`unfinished.any()`), so the call adds no synchronisation
        self.on_step: Callable[[int, int], None] | None = None
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
        ordered = [prompts[i] for i in order]
        reused, kept = match_rows(self.prefixes, ordered)
        groups, reserved = self.cache_layout(lengths, max_new_tokens, reused)
        cache = BatchCache(reserved, device, per_row=self.batch_invariant)
        cache.prefixes = [(cache.row_starts[row], kv) for row, kv in enumerate(kept) if kv is not None]
        timing = BatchTiming(rows=len(order), slots=cache.total, prompt_tokens=sum(lengths), reused_prompt_tokens=sum(reused))
        with self.attention(cache), torch.inference_mode(), prefill_backends(device), self.linears():
            started = time.perf_counter()
            state = DecodeState(len(order), max_new_tokens, min_new_tokens, self.eos_ids, self.pad_id, cache, device)
            self.prefill(state, ordered, lengths, reused if any(reused) else None, groups, timing)
            self.counters.prefilled += timing.prompt_tokens - timing.reused_prompt_tokens
            self.counters.reused += timing.reused_prompt_tokens
            if self.prefixes is not None:
                for row, prompt in enumerate(ordered):
                    self.prefixes.keep(prompt, reused[row], cache_reader(cache.keys, cache.values, cache.row_starts[row]))
            timing.prefill_s = synchronized_clock(device) - started
            cache.decoding = self.tiles.on = True
            try:
                timing.decode_steps = self.decode(state)
            finally:
                self.tiles.on = False
            tokens = state.out.tolist()
            timing.decode_s = time.perf_counter() - started - timing.prefill_s
            self.timings.append(timing)
        generated: list[list[int]] = [[] for _ in prompts]
        for row, index in enumerate(order):
            generated[index] = tokens[row]
        return generated

    def linears(self) -> Any:
        """Batch-invariant mode: every linear layer in fixed row tiles while decoding (slm_swap.engine.invariant)."""
        return row_tiled_linears(self.model, self.tiles) if self.batch_invariant else nullcontext()

    def cache_layout(self, lengths: Sequence[int], max_new_tokens: int, reused: Sequence[int]) -> tuple[list[tuple[int, int]], list[int]]:
        """The prefill groups of a batch's rows (sorted longest first) and the cache slots each row reserves.

        In batch-invariant mode each row is a group of its own: its prefill pass and its slots are what they are alone.
        A batch where some row has a kept prefix (`reused`) is prefilled in packed passes of the tokens after them.
        """
        packed = self.packed or any(reused)
        if self.batch_invariant:
            groups = [(row, row + 1) for row in range(len(lengths))]
            if packed:
                return groups, [aligned(n + max_new_tokens - 1) for n in lengths]
            return groups, reserved_slots(lengths, max_new_tokens, groups)
        if packed:
            groups = packed_groups([n - r for n, r in zip(lengths, reused)], self.prefill_tokens)
            return groups, [aligned(n + max_new_tokens - 1) for n in lengths]
        groups = prefill_groups(lengths, self.prefill_tokens)
        return groups, reserved_slots(lengths, max_new_tokens, groups)

    @contextmanager
    def attention(self, cache: BatchCache) -> Iterator[None]:
        """Within the block the model attends through the static engine's attention function, over `cache`."""
        base = self.base()
        previous = base.config._attn_implementation
        base.set_attn_implementation(ATTENTION_NAME)
        try:
            with serving(cache):
                yield
        finally:
            base.set_attn_implementation(previous)

    def prefill(
        self,
        state: DecodeState,
        prompts: Sequence[Sequence[int]],
        lengths: Sequence[int],
        reused: Sequence[int] | None,
        groups: Sequence[tuple[int, int]],
        timing: BatchTiming,
    ) -> None:
        """Every prefill pass of a batch (`prompts` sorted longest first); each row's first new token goes into `state`.

        `reused`: each row's tokens already in its cache slots (kept prefixes); None when no row has any.
        """
        import torch

        device, cache = self.model.device, state.cache
        # Every pass's inputs first, copied without waiting: no pass waits on the host.
        passes = []
        for first, last in groups:
            rows, starts = prompts[first:last], cache.row_starts[first:last]
            passes.append(
                packed_pass(rows, first, last, starts, device, None if reused is None else reused[first:last])
                if self.packed or reused is not None
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
            if self.on_step is not None:
                self.on_step(done, steps)
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
