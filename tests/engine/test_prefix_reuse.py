"""Prefix reuse in the static engine: the kept-prefix store's matching and eviction rules, and on the real tiny
checkpoint the same tokens with reuse as with whole-prompt prefill, step by step through real agent chats.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.engine.prefix_cache import PrefixCache
from slm_swap.engine.static import StaticGenerator

REPO = Path(__file__).resolve().parents[2]
NEW_TOKENS = 6
SYSTEM_CHARS = 900  # the gold chats' tool docs, cut so a CPU prefills a step in seconds
STEPS = 3


def fake_reader(calls: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    """A `keep` reader whose KV for token t holds t, so a block's tensor says which tokens it came from."""
    import torch

    def read(first: int, last: int):  # type: ignore[no-untyped-def]
        calls.append((first, last))
        return torch.arange(first, last, dtype=torch.float32).reshape(1, 1, 1, -1, 1).expand(2, 2, 1, -1, 1).clone()

    return read


def test_match_takes_only_an_identical_whole_block_prefix_and_leaves_a_token_to_prefill() -> None:
    store = PrefixCache(capacity_tokens=10_000, block=4)
    calls: list[tuple[int, int]] = []
    store.keep(list(range(10)), 0, fake_reader(calls))
    assert calls == [(0, 8)] and store.kept_tokens == 8  # two whole blocks; the last 2 tokens are not kept
    assert len(store.match(list(range(10)) + [99])) == 2
    assert len(store.match(list(range(8)))) == 1  # all 8 kept, but the last token must be prefilled for its logits
    assert len(store.match([0, 1, 2, 3, 4, 5, 6, 99, 8])) == 1  # differs inside the second block
    assert store.match([1, 0, 2, 3, 4]) == []  # same tokens in another order share nothing
    assert store.gather(store.match(list(range(9))))[0, 0, 0, :, 0].tolist() == list(range(8))
    store.keep(list(range(9)) + [50, 51, 52, 53], 8, fake_reader(calls))
    assert calls[-1] == (8, 12)  # only the tokens after the kept prefix are read


def test_eviction_drops_least_recently_used_leaves_and_never_a_kept_blocks_parent() -> None:
    store = PrefixCache(capacity_tokens=12, block=4)
    shared = [7, 7, 7, 7]
    store.keep(shared + [1, 1, 1, 1, 0], 0, fake_reader([]))  # blocks: shared, A
    store.keep(shared + [2, 2, 2, 2, 0], 0, fake_reader([]))  # B under the same shared block: 3 blocks, 12 tokens
    assert store.kept_tokens == 12 and store.evicted_blocks == 0
    store.match(shared + [1, 1, 1, 1, 0])  # A used after B
    store.keep(shared + [3, 3, 3, 3, 0], 0, fake_reader([]))  # C: one block too many, B (least recently used) goes
    assert store.evicted_blocks == 1 and store.kept_tokens == 12
    assert len(store.match(shared + [2, 2, 2, 2, 0])) == 1  # B's parent, the shared block, stays
    assert len(store.match(shared + [1, 1, 1, 1, 0])) == 2 and len(store.match(shared + [3, 3, 3, 3, 0])) == 2
    store.clear()
    assert store.kept_tokens == 0 and store.match(shared + [1]) == []


@pytest.fixture(scope="module")
def smollm2_fp32():  # type: ignore[no-untyped-def]
    from slm_swap.backends.checkpoints import ensure_checkpoint
    from slm_swap.backends.local_slm import LocalSLM

    path = ensure_checkpoint("smollm2-135m-instruct", REPO / "slm_swap" / "models" / "smollm2-135m-instruct")
    slm = LocalSLM(path, track="agent", max_new_tokens=NEW_TOKENS, quantization="none", device="cpu")
    yield slm
    slm.close()


def agent_steps(arm: str, episodes: int = 2) -> list[list[list[dict[str, str]]]]:
    """Per step, the chat each of the first `episodes` gold episodes of `arm` had before its reply at that step."""
    lines = (REPO / "tests" / "fixtures" / "agent_golden" / f"{arm}.replay.jsonl").read_text().splitlines()[:episodes]
    steps: list[list[list[dict[str, str]]]] = [[] for _ in range(STEPS)]
    for line in lines:
        messages = json.loads(line)["trajectory"]["messages"]
        messages[0] = {"role": "system", "content": messages[0]["content"][:SYSTEM_CHARS]}
        chats = [messages[:i] for i, message in enumerate(messages) if message["role"] == "assistant"]
        for step, chat in enumerate(chats[:STEPS]):
            steps[step].append(chat)
    return steps


def encoded(slm, steps):  # type: ignore[no-untyped-def]
    return [
        [slm.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False) for chat in chats]
        for chats in steps
    ]


def engine(slm, **options) -> StaticGenerator:  # type: ignore[no-untyped-def]
    return StaticGenerator(slm.model, slm.eos_ids(), slm.tokenizer.pad_token_id, use_graphs=False, prefill_tokens=2048, **options)


def expected_reused(prompts_by_step: list[list[list[int]]], block: int) -> int:
    """Prompt tokens a store that never evicts can give: each prompt's longest common prefix with an earlier batch's."""
    seen: list[list[int]] = []
    total = 0
    for prompts in prompts_by_step:
        for prompt in prompts:
            common = max(
                (next((i for i, (a, b) in enumerate(zip(prompt, s)) if a != b), min(len(prompt), len(s))) for s in seen), default=0
            )
            total += min(common // block, (len(prompt) - 1) // block) * block
        seen.extend(prompts)
    return total


@pytest.mark.slow
@pytest.mark.parametrize("arm", ["toolcall", "codeact"])
def test_reuse_gives_the_tokens_of_whole_prompt_prefill_and_counts_what_it_prefilled(smollm2_fp32, arm: str) -> None:  # type: ignore[no-untyped-def]
    prompts = encoded(smollm2_fp32, agent_steps(arm))
    whole, reusing = engine(smollm2_fp32), engine(smollm2_fp32, prefixes=PrefixCache(10**6))
    for batch in prompts:
        assert reusing.generate(batch, NEW_TOKENS) == whole.generate(batch, NEW_TOKENS)
    total = sum(len(p) for batch in prompts for p in batch)
    assert whole.counters.prefilled == total and whole.counters.reused == 0
    assert reusing.counters.reused == expected_reused(prompts, reusing.prefixes.block) > total // 2
    assert reusing.counters.prefilled == total - reusing.counters.reused


@pytest.mark.slow
def test_eviction_under_a_small_cap_still_gives_the_same_tokens(smollm2_fp32) -> None:  # type: ignore[no-untyped-def]
    prompts = encoded(smollm2_fp32, agent_steps("toolcall"))
    cap = 4 * 64
    whole, reusing = engine(smollm2_fp32), engine(smollm2_fp32, prefixes=PrefixCache(cap))
    for batch in prompts:
        assert reusing.generate(batch, NEW_TOKENS) == whole.generate(batch, NEW_TOKENS)
        assert reusing.prefixes.kept_tokens <= cap
    assert reusing.prefixes.evicted_blocks > 0 and 0 < reusing.counters.reused < expected_reused(prompts, 64)


@pytest.mark.slow
def test_batch_invariant_mode_with_reuse_gives_the_same_tokens(smollm2_fp32) -> None:  # type: ignore[no-untyped-def]
    prompts = encoded(smollm2_fp32, agent_steps("codeact"))
    whole = engine(smollm2_fp32, batch_invariant=True)
    reusing = engine(smollm2_fp32, batch_invariant=True, prefixes=PrefixCache(10**6))
    for batch in prompts:
        assert reusing.generate(batch, NEW_TOKENS) == whole.generate(batch, NEW_TOKENS)
    assert reusing.counters.reused > 0


@pytest.mark.slow
def test_reuse_with_a_lora_adapter_gives_the_same_replies(smollm2_fp32, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from slm_swap.backends.checkpoints import record_adapter_base
    from slm_swap.backends.local_slm import LocalSLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm2_fp32.model_path, dtype=torch.float32)
    # Random B matrices (not PEFT's zero init), so the adapter changes every layer's keys and values.
    lora = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    record_adapter_base(tmp_path / "adapter", smollm2_fp32.model_path)
    replies = {}
    for reuse in (False, True):
        slm = LocalSLM(
            smollm2_fp32.model_path, adapter=tmp_path / "adapter", track="agent", max_new_tokens=NEW_TOKENS,
            quantization="none", device="cpu", prefix_reuse=reuse,
        )  # fmt: skip
        assert "prefill" not in slm.describe()  # counts appear once the engine has run
        replies[reuse] = [[out.text for out in slm.generate_chats(chats)] for chats in agent_steps("toolcall")]
        counts = slm.describe()["prefill"]
        assert counts["prefix_reuse"] is reuse and (counts["reused_tokens"] > 0) is reuse
        slm.close()
    assert replies[True] == replies[False]
