"""Prefix reuse for the static engine: the KV cache of prompt tokens kept between `generate` calls, so a prompt
that starts with tokens already prefilled (an agent episode's chat at its next step or turn, or the tool docs that
the episodes of one environment set share) prefills only the tokens after them.

The kept tokens form a trie over token ids in blocks of BLOCK tokens: a block is keyed by its parent block and its
own token ids, so it is reused only under an identical token prefix, whichever request stored it, and a prefix
shared by many prompts is kept once. Only whole blocks of prompt tokens are kept, and a prompt always prefills at
least its last token (its next-token logits come from that pass). The keys and values kept are those a prefill
pass computed; generated tokens (computed one at a time by decode steps) are prefilled again when a later prompt
holds them, so a reused token's keys are always prefill's.

Eviction: the store holds at most `capacity_tokens` tokens. Past that, leaf blocks go in least-recently-used
order (a block is used when a prompt is matched through it or stores it); a block goes only after its children,
so every kept block's whole prefix is kept. `clear` drops everything (the backend calls it when a batch runs out
of memory). An evicted prefix is simply prefilled again: the text generated does not change.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

BLOCK = 64  # tokens per kept block: what a prompt may re-prefill of a kept prefix is under one block

BlockKey = tuple[int, tuple[int, ...]]  # (parent block's number, 0 for the root; the block's token ids)


@dataclass
class Block:
    key: BlockKey
    number: int
    kv: Any  # (layers, 2, kv heads, BLOCK, head dim): keys [:, 0], values [:, 1]
    used: int
    children: int = 0


@dataclass
class PrefillCounters:
    """Prompt tokens an engine prefilled, and those it took from kept prefixes instead, since it was made."""

    prefilled: int = 0
    reused: int = 0


class PrefixCache:
    """Kept prompt-token KV blocks, matched by longest identical token prefix (see the module docstring)."""

    def __init__(self, capacity_tokens: int, block: int = BLOCK) -> None:
        if capacity_tokens < 0:
            raise ValueError(f"capacity_tokens must be at least 0, got {capacity_tokens}")
        self.capacity_tokens = capacity_tokens
        self.block = block
        self.blocks: dict[BlockKey, Block] = {}
        self.by_number: dict[int, Block] = {}
        self.numbers = itertools.count(1)
        self.clock = itertools.count()
        self.evicted_blocks = 0

    @property
    def kept_tokens(self) -> int:
        return len(self.blocks) * self.block

    def match(self, prompt: Sequence[int]) -> list[Block]:
        """The kept blocks of the prompt's longest kept prefix, leaving at least its last token to prefill."""
        chain: list[Block] = []
        parent = 0
        for index in range((len(prompt) - 1) // self.block):
            found = self.blocks.get((parent, tuple(prompt[index * self.block : (index + 1) * self.block])))
            if found is None:
                break
            found.used = next(self.clock)
            chain.append(found)
            parent = found.number
        return chain

    def gather(self, chain: Sequence[Block]) -> Any:
        """The (layers, 2, kv heads, tokens, head dim) keys and values of a matched chain, in one tensor."""
        import torch

        return torch.cat([block.kv for block in chain], dim=3)

    def keep(self, prompt: Sequence[int], kept_from: int, read: Callable[[int, int], Any]) -> None:
        """Keep the prompt's whole blocks; `read(first, last)` gives the (layers, 2, kv heads, tokens, head dim) KV of
        prompt tokens [first, last), all at or past `kept_from` (the tokens before it came from kept blocks).
        """
        whole = len(prompt) // self.block
        first_new = kept_from // self.block
        if whole <= first_new or self.capacity_tokens < self.block:
            return
        fresh = read(first_new * self.block, whole * self.block)
        parent = 0
        for index in range(whole):
            key = (parent, tuple(prompt[index * self.block : (index + 1) * self.block]))
            block = self.blocks.get(key)
            if block is None:
                if index < first_new:  # its prefix was evicted since the match: what follows cannot be kept
                    return
                offset = (index - first_new) * self.block
                block = Block(key, next(self.numbers), fresh[:, :, :, offset : offset + self.block].clone(), 0)
                self.blocks[key] = self.by_number[block.number] = block
                if parent:
                    self.by_number[parent].children += 1
            block.used = next(self.clock)
            parent = block.number
        self.evict(self.capacity_tokens)

    def evict(self, capacity_tokens: int) -> None:
        """Drop least recently used leaf blocks until at most `capacity_tokens` tokens are kept."""
        leaves = [(block.used, block.number) for block in self.blocks.values() if block.children == 0]
        heapq.heapify(leaves)
        while self.kept_tokens > capacity_tokens and leaves:
            _, number = heapq.heappop(leaves)
            block = self.by_number.pop(number)
            del self.blocks[block.key]
            self.evicted_blocks += 1
            parent = self.by_number.get(block.key[0])
            if parent is not None:
                parent.children -= 1
                if parent.children == 0:
                    heapq.heappush(leaves, (parent.used, parent.number))

    def clear(self) -> None:
        self.evict(0)

    def describe(self) -> dict[str, int]:
        return {"kept_tokens": self.kept_tokens, "capacity_tokens": self.capacity_tokens, "evicted_blocks": self.evicted_blocks}


def match_rows(prefixes: PrefixCache | None, prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[Any]]:
    """Each prompt's tokens taken from kept prefixes, and their (layers, 2, kv heads, tokens, head dim) KV (None: none)."""
    if prefixes is None:
        return [0] * len(prompts), [None] * len(prompts)
    chains = [prefixes.match(prompt) for prompt in prompts]
    return [len(chain) * prefixes.block for chain in chains], [prefixes.gather(chain) if chain else None for chain in chains]


def cache_reader(keys: dict[int, Any], values: dict[int, Any], start: int) -> Callable[[int, int], Any]:
    """`PrefixCache.keep`'s reader over a batch cache's layers (kv heads, slots, head dim), for the row from slot `start`."""

    def read(first: int, last: int) -> Any:
        import torch

        a, b = start + first, start + last
        return torch.stack([torch.stack((keys[layer][:, a:b], values[layer][:, a:b])) for layer in sorted(keys)])

    return read
