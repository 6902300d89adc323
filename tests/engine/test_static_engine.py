"""The static engine: batch planning, prefill grouping, and greedy outputs equal to `generate` on a real tiny checkpoint."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from slm_swap.engine.cache import ATTENTION_NAME
from slm_swap.engine.planning import packed_groups, plan_batches, prefill_groups, reserved_slots, row_slots
from slm_swap.engine.prefill import packed_pass, padded_pass
from slm_swap.engine.static import StaticGenerator

REPO = Path(__file__).resolve().parents[2]
SLOT = 1000  # bytes per cache slot in the planning tests


def covers_in_order(plans, n):  # type: ignore[no-untyped-def]
    assert [p.start for p in plans] == [0] + [p.end for p in plans[:-1]]
    assert plans[-1].end == n and all(p.rows >= 1 for p in plans)


@pytest.mark.parametrize("seed", range(20))
def test_plans_cover_every_row_within_memory_and_row_cap(seed: int) -> None:
    rng = random.Random(seed)
    lengths = sorted((rng.randint(1, 3000) for _ in range(rng.randint(1, 300))), reverse=True)
    memory, max_rows = rng.choice([1e5, 1e7, 1e9]), rng.choice([1, 7, 64, 1024])
    for reads_padding in (True, False):
        plans = plan_batches(lengths, 60, SLOT, rng.choice([0, 10**6, 10**9]), memory, max_rows, reads_padding)
        covers_in_order(plans, len(lengths))
        for p in plans:
            assert p.rows <= max_rows
            # a batch holds its rows' own slots; only a row alone may exceed the memory
            assert p.rows == 1 or sum(row_slots(n, 60) for n in lengths[p.start : p.end]) * SLOT <= memory


def test_costly_weights_give_one_batch_and_costly_padding_splits_the_long_row_off() -> None:
    lengths = [2000, 100, 100, 100]
    assert [p.rows for p in plan_batches(lengths, 60, SLOT, 10**12, 1e12, 1024)] == [4]
    assert [p.rows for p in plan_batches(lengths, 60, SLOT, 1, 1e12, 1024)] == [1, 3]
    # a kernel that skips padding: padding costs memory only, so the fewest batches that fit
    assert [p.rows for p in plan_batches(lengths, 60, SLOT, 1, 1e12, 1024, reads_padding=False)] == [4]


def test_planning_refuses_unsorted_rows() -> None:
    with pytest.raises(ValueError, match="sorted longest first"):
        plan_batches([10, 20], 60, SLOT, 1, 1e9, 8)
    assert plan_batches([], 60, SLOT, 1, 1e9, 8) == []


def test_prefill_groups_bound_tokens_and_padding() -> None:
    lengths = [5000, 900, 850, 800, 790, 400, 399, 10]
    groups = prefill_groups(lengths, 2048)
    assert [start for start, _ in groups] == [0] + [end for _, end in groups[:-1]] and groups[-1][1] == len(lengths)
    for start, end in groups:
        assert end - start == 1 or (end - start) * lengths[start] <= 2048
        assert end - start == 1 or lengths[start] <= 1.15 * lengths[end - 1]
    assert groups[0] == (0, 1)  # the 5000-token row exceeds the budget alone and pads nobody


@pytest.mark.parametrize("seed", range(10))
def test_each_row_owns_its_tokens_and_its_prefill_width_within_the_planning_bound(seed: int) -> None:
    rng = random.Random(seed)
    lengths = sorted((rng.randint(1, 3000) for _ in range(rng.randint(1, 200))), reverse=True)
    new_tokens = rng.choice([1, 60, 300])
    groups = prefill_groups(lengths, rng.choice([512, 32768]))
    slots = reserved_slots(lengths, new_tokens, groups)
    for first, last in groups:
        for row in range(first, last):
            assert slots[row] >= lengths[row] + new_tokens - 1  # its prompt and every new token but the last fed
            assert slots[row] >= lengths[first]  # every column its prefill pass writes
            assert slots[row] % 16 == 0 and slots[row] <= row_slots(lengths[row], new_tokens)


def test_right_padded_pass_reads_each_rows_own_logit_column_and_writes_its_own_slots() -> None:
    import torch

    prefill = padded_pass([[5, 6, 7], [8], [9, 9, 9]], 2, 5, starts=[64, 80, 128], pad_id=0, device=torch.device("cpu"))
    assert prefill.ids.shape == (3, 16)  # widths rounded up for the fused kernels
    assert prefill.ids[0, :4].tolist() == [5, 6, 7, 0] and prefill.ids[1, :2].tolist() == [8, 0]
    assert prefill.keep.tolist() == [0, 2]
    assert [prefill.keep[i].item() for i in prefill.column_of_logits.tolist()] == [2, 0, 2]
    # every column, padding included, lands in the row's own run of slots
    assert prefill.destination.view(3, 16)[:, 0].tolist() == [64, 80, 128] and prefill.destination.view(3, 16)[2, -1].item() == 143


def test_packed_pass_puts_rows_end_to_end_with_their_own_positions() -> None:
    import torch

    prefill = packed_pass([[5, 6, 7], [8], [9, 9]], 1, 4, starts=[16, 32, 64], device=torch.device("cpu"))
    assert prefill.ids.tolist() == [[5, 6, 7, 8, 9, 9]] and prefill.positions.tolist() == [[0, 1, 2, 0, 0, 1]]
    assert prefill.keep.tolist() == [2, 3, 5] and prefill.sequence_starts.tolist() == [0, 3, 4, 6] and prefill.longest == 3
    assert prefill.destination.tolist() == [16, 17, 18, 32, 64, 65]  # each row's tokens from its own start; no padding
    assert packed_groups([5, 4, 4, 3, 9], 8) == [(0, 1), (1, 3), (3, 4), (4, 5)]  # a row past the budget goes alone


@pytest.fixture(scope="module")
def smollm2_fp32():  # type: ignore[no-untyped-def]
    from slm_swap.backends.checkpoints import ensure_checkpoint
    from slm_swap.backends.local_slm import LocalSLM

    path = ensure_checkpoint("smollm2-135m-instruct", REPO / "slm_swap" / "models" / "smollm2-135m-instruct")
    slm = LocalSLM(path, track="toolcall", max_new_tokens=16, quantization="none", device="cpu", engine="padded")
    yield slm
    slm.close()


def prompts_of(slm, n: int = 5) -> list[list[int]]:  # type: ignore[no-untyped-def]
    from slm_swap.data.rows import load_rows

    rows = load_rows(REPO / "slm_swap" / "02_dataset" / "toolcall" / "test.jsonl", "toolcall")[:n]
    return [slm.encode(row) for row in rows]


@pytest.mark.slow
@pytest.mark.parametrize("packed", [False, True], ids=["right-padded", "packed"])
def test_static_outputs_equal_generate_one_row_at_a_time(smollm2_fp32, packed: bool) -> None:  # type: ignore[no-untyped-def]
    slm = smollm2_fp32
    prompts = prompts_of(slm)
    assert len({len(p) for p in prompts}) == len(prompts)  # lengths differ: padding and grouping are exercised
    # Budgets that give several passes, and with packing passes of several rows: from the prompts, not fixed, so a
    # regenerated split cannot fit them all in one pass.
    lengths = [len(p) for p in prompts]
    budget = max(max(lengths), sum(lengths) // 2) if packed else 1024
    engine = StaticGenerator(slm.model, slm.eos_ids(), slm.tokenizer.pad_token_id, use_graphs=False, prefill_tokens=budget, packed=packed)
    batched = engine.generate(prompts, 16)
    for prompt, tokens in zip(prompts, batched):
        (expected,) = slm.generate_batch([prompt])  # plain `generate`, one row
        assert slm.read_output(prompt, tokens, slm.eos_ids(), 0.0).text == expected.text
    assert slm.model.config._attn_implementation != ATTENTION_NAME  # put back after the run
    timing = engine.timings[-1]
    assert timing.rows == len(prompts) and timing.prompt_tokens == sum(map(len, prompts))
    assert timing.prefill_passes >= 2 and timing.decode_steps == 15
    assert timing.prefill_passes < len(prompts) or not packed
    assert (timing.padded_prompt_tokens == timing.prompt_tokens) == packed


@pytest.mark.slow
def test_minimum_length_and_stopping_follow_generate_rules(smollm2_fp32) -> None:  # type: ignore[no-untyped-def]
    slm = smollm2_fp32
    prompts = prompts_of(slm, 3)
    eos = set(slm.eos_ids())
    engine = StaticGenerator(slm.model, slm.eos_ids(), slm.tokenizer.pad_token_id, use_graphs=False, prefill_tokens=4096)
    forced = engine.generate(prompts, 12, min_new_tokens=12)
    assert all(len(tokens) == 12 and not eos & set(tokens) for tokens in forced)
    # Without a minimum a row that emits an end-of-turn token pads after it, as `generate` does.
    free = engine.generate(prompts, 12)
    for tokens in free:
        if eos & set(tokens):
            end = next(i for i, t in enumerate(tokens) if t in eos)
            assert all(t == slm.tokenizer.pad_token_id for t in tokens[end + 1 :])


@pytest.mark.slow
def test_attention_is_restored_when_generation_fails(smollm2_fp32) -> None:  # type: ignore[no-untyped-def]
    slm = smollm2_fp32
    before = slm.model.config._attn_implementation
    engine = StaticGenerator(slm.model, slm.eos_ids(), slm.tokenizer.pad_token_id, use_graphs=False, prefill_tokens=4096)
    with pytest.raises(ValueError, match="at least one token"):
        engine.generate([[1, 2], []], 4)
    with pytest.raises(IndexError):  # an id past the vocabulary fails inside the forward pass
        engine.generate([[1, 2], [10**7]], 4)
    assert slm.model.config._attn_implementation == before
