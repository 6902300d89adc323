"""Fine-tuning data: chat-template tokens, completion-only labels, over-length rows, padding-free batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.data.rows import DatasetError, load_rows
from slm_swap.finetune.data import (
    IGNORE_INDEX,
    TokenizedRow,
    collate_padding_free,
    count_loss_tokens,
    end_of_turn_id,
    plan_micro_batches,
    prepare_split,
    prompt_ids,
    stop_token_ids,
)
from slm_swap.prompts import build_messages

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "slm_swap" / "02_dataset" / "toolcall" / "train.jsonl"


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    path = ensure_checkpoint("smollm2-135m-instruct", REPO / "slm_swap" / "models" / "smollm2-135m-instruct")
    return AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def eot(tokenizer) -> int:
    return end_of_turn_id(tokenizer, stop_token_ids(tokenizer, 2))


def test_end_of_turn_is_the_token_the_template_closes_replies_with(tokenizer, eot):
    assert tokenizer.convert_ids_to_tokens(eot) == "<|im_end|>"


@pytest.mark.parametrize("track", ["toolcall", "structured"])
def test_labels_mask_every_prompt_token_and_keep_every_completion_token(tokenizer, eot, track):
    path = REPO / "slm_swap" / "02_dataset" / track / "train.jsonl"
    for row in load_rows(path, track)[:3]:
        tokens = prepare_split(path, track, tokenizer, eot, 4096, limit=3).rows[row.index]
        expected_prompt = tokenizer(
            tokenizer.apply_chat_template(build_messages(row.prompt), add_generation_prompt=True, tokenize=False), add_special_tokens=False
        )["input_ids"]
        expected_reply = tokenizer(row.completion, add_special_tokens=False)["input_ids"] + [eot]
        assert list(tokens.input_ids) == expected_prompt + expected_reply
        labels = tokens.labels
        assert len(labels) == len(tokens.input_ids)
        for position, (token, label) in enumerate(zip(tokens.input_ids, labels)):
            if position < len(expected_prompt):
                assert label == IGNORE_INDEX, f"prompt token {position} carries loss"
            else:
                assert label == token, f"completion token {position} is masked"
        # the trained reply is the gold completion followed by the end-of-turn token, nothing else
        assert tokenizer.decode([t for t in labels if t != IGNORE_INDEX]) == row.completion + "<|im_end|>"


def test_prompt_ends_with_the_opened_assistant_turn(tokenizer):
    ids = prompt_ids(tokenizer, "hello")
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_over_length_rows_are_dropped_and_counted_not_truncated(tokenizer, eot):
    full = prepare_split(TRAIN, "toolcall", tokenizer, eot, 10_000, limit=20)
    limit = sorted(len(r) for r in full.rows)[10]
    split = prepare_split(TRAIN, "toolcall", tokenizer, eot, limit, limit=20)
    lengths = {r.row_id: len(r) for r in full.rows}
    assert {rid for rid, _ in split.over_length} == {rid for rid, n in lengths.items() if n > limit}
    assert all(n == lengths[rid] for rid, n in split.over_length)
    assert len(split.rows) + len(split.over_length) == 20
    kept = {r.row_id: r for r in split.rows}
    assert all(kept[r.row_id].input_ids == r.input_ids for r in full.rows if r.row_id in kept)  # kept rows are whole
    summary = split.summary()
    assert summary["rows_over_length"] == len(split.over_length) and summary["over_length_rows"][0]["tokens"] > limit


def test_a_split_where_every_row_is_too_long_is_refused(tokenizer, eot):
    with pytest.raises(DatasetError, match=r"train\.jsonl: all 3 rows are longer than 16 tokens"):
        prepare_split(TRAIN, "toolcall", tokenizer, eot, 16, limit=3)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "dataset has no rows"),  # an empty split
        ('{"prompt": "x"}\n', "row 0 (line 1): expected exactly the keys"),  # a row without completion
        ('{"prompt": "x", "completion": "<tool_call name=\\"f\\">{}</tool_call>"}\nnot json\n', "row 1 (line 2): not valid JSON"),
    ],
)
def test_bad_splits_name_file_and_row(tokenizer, eot, tmp_path, content, message):
    path = tmp_path / "train.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=str(path).replace(".", r"\.") + ".*" + message.replace("(", r"\(").replace(")", r"\)")):
        prepare_split(path, "toolcall", tokenizer, eot, 2048)


def test_micro_batches_hold_every_row_once_within_both_caps():
    lengths = [300, 1200, 50, 2048, 700, 700, 10, 1999, 400]
    batches = plan_micro_batches(lengths, batch_size=3, max_tokens=2500, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 and sum(lengths[i] for i in b) <= 2500 for b in batches)
    assert batches == plan_micro_batches(lengths, batch_size=3, max_tokens=2500, seed=1)  # seeded
    assert [i for b in plan_micro_batches(lengths, 3, 2500, seed=None) for i in b] == list(range(len(lengths)))


def test_padding_free_batch_restarts_positions_and_never_takes_loss_across_rows():
    rows = [TokenizedRow("a", (5, 6, 7, 8), 2), TokenizedRow("b", (9, 10, 11), 1)]
    batch = collate_padding_free(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, 10, 11]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8, -100, 10, 11]]
    assert batch["packed_seq_lengths"].tolist() == [4, 3]
    assert count_loss_tokens(batch) == 4


def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = LlamaForCausalLM(config).eval()
    model.config.use_cache = False
    return model


def test_packed_loss_equals_the_token_weighted_loss_of_the_rows_alone():
    # If attention leaked across rows, the second row's logits (and so the loss) would change when packed.
    model = tiny_llama()
    generator = torch.Generator().manual_seed(3)
    rows = [
        TokenizedRow(str(i), tuple(torch.randint(0, 64, (n,), generator=generator).tolist()), p)
        for i, (n, p) in enumerate([(17, 9), (11, 4), (23, 20)])
    ]
    with torch.no_grad():
        packed = collate_padding_free(rows)
        packed_loss = float(model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"]).loss)
        total = count = 0.0
        for row in rows:
            alone = collate_padding_free([row])
            n = count_loss_tokens(alone)
            total += float(model(input_ids=alone["input_ids"], labels=alone["labels"]).loss) * n
            count += n
        second = collate_padding_free(rows[1:2])["input_ids"]
        logits_alone = model(input_ids=second).logits[0]
        logits_packed = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0, 17:28]
    assert packed_loss == pytest.approx(total / count, abs=1e-5)
    assert torch.allclose(logits_alone, logits_packed, atol=1e-5)


def test_dropped_rows_are_reported_with_ids_and_lengths(tokenizer, eot):
    from slm_swap.finetune.run import report_over_length

    split = prepare_split(TRAIN, "toolcall", tokenizer, eot, 400, limit=12)
    lines: list[str] = []
    report_over_length(split, lines.append)
    (line,) = lines
    first_id, first_len = split.over_length[0]
    assert f"dropped {len(split.over_length)} of 12 rows longer than 400 tokens" in line
    assert f"{first_id} ({first_len})" in line and str(TRAIN) in line
