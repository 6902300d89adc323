"""Observation masking: loss on the assistant turns and their end-of-turn tokens, nothing else, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.finetune.conversations import ConversationError, marked_template_for, tokenize_conversation
from slm_swap.finetune.data import IGNORE_INDEX, PaddingFreeCollator, collate_padding_free, row_from_example

REPO = Path(__file__).resolve().parents[2]
# each embedded checkpoint, and the text its template closes an assistant turn with (the end-of-turn token)
CHECKPOINTS = {"smollm2-135m-instruct": "<|im_end|>", "gemma-3-270m": "<end_of_turn>"}

SYSTEM = "You are an agent. Call the tools offered to you."
ARMS = {
    # the codeact arm acts in a Python block, the toolcall arm in <tool_call> elements; observations come back as
    # user messages that start with "Observation:" (slm_swap.tracks.agent.episodes.episode)
    "codeact": [
        "Thought: list the folder first.\n```python\nprint(ls(a=False))\n```",
        "Thought: now read it.\n```python\nprint(cat(file_name='notes.txt'))\n```",
        "The notes say: buy milk.",
    ],
    "toolcall": [
        '<tool_call name="ls">{"a": false}</tool_call>',
        '<tool_call name="cat">{"file_name": "notes.txt"}</tool_call>',
        "The notes say: buy milk.",
    ],
}
OBSERVATIONS = ['Observation:\n{"current_directory_content": ["notes.txt"]}', 'Observation:\n{"file_content": "buy milk"}']


def trajectory(arm: str) -> list[dict[str, str]]:
    replies = ARMS[arm]
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What do my notes say?"},
        {"role": "assistant", "content": replies[0]},
        {"role": "user", "content": OBSERVATIONS[0]},
        {"role": "assistant", "content": replies[1]},
        {"role": "user", "content": OBSERVATIONS[1]},
        {"role": "assistant", "content": replies[2]},
        {"role": "user", "content": "Thanks. And the folder?"},
    ]


def loss_runs(input_ids: tuple[int, ...], mask: tuple[bool, ...]) -> list[list[int]]:
    """The unmasked tokens as contiguous runs."""
    runs: list[list[int]] = []
    for i, (token, keep) in enumerate(zip(input_ids, mask, strict=True)):
        if keep:
            if i == 0 or not mask[i - 1]:
                runs.append([])
            runs[-1].append(token)
    return runs


@pytest.fixture(scope="module", params=sorted(CHECKPOINTS))
def checkpoint(request: pytest.FixtureRequest) -> tuple[str, object]:
    path = ensure_checkpoint(request.param, REPO / "slm_swap" / "models" / request.param)
    return request.param, AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_only_assistant_turns_and_their_end_of_turn_tokens_carry_loss(checkpoint, arm: str) -> None:
    name, tokenizer = checkpoint
    messages = trajectory(arm)
    row = tokenize_conversation(tokenizer, "fixture-1", messages, marked_template_for(tokenizer, messages))
    runs = loss_runs(row.input_ids, row.loss_mask)
    expected = [reply + CHECKPOINTS[name] for reply in ARMS[arm]]
    # one run per assistant turn, decoded exactly to its text and the end-of-turn token; system, user and
    # observation text (and the closing user turn) carry none
    assert [tokenizer.decode(run) for run in runs] == expected
    assert row.n_loss == sum(len(run) for run in runs)
    assert all(observation not in tokenizer.decode(run) for run in runs for observation in OBSERVATIONS)


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_each_turn_is_trained_on_the_tokens_generation_continues_from(checkpoint, arm: str) -> None:
    name, tokenizer = checkpoint
    messages = trajectory(arm)
    row = tokenize_conversation(tokenizer, "fixture-1", messages, marked_template_for(tokenizer, messages))
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:index], add_generation_prompt=True, tokenize=False)
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply = tokenizer(message["content"] + CHECKPOINTS[name], add_special_tokens=False)["input_ids"]
        # the prompt as generation encodes it, then the reply's own tokens, all of them carrying loss
        assert row.input_ids[: len(head)] == tuple(head)
        assert row.input_ids[len(head) : len(head) + len(reply)] == tuple(reply)
        assert all(row.loss_mask[len(head) : len(head) + len(reply)])
        assert not row.loss_mask[len(head) - 1]


def test_the_mask_survives_the_trainers_dataset_and_collator(checkpoint) -> None:
    _, tokenizer = checkpoint
    messages = trajectory("toolcall")
    row = tokenize_conversation(tokenizer, "fixture-1", messages, marked_template_for(tokenizer, messages))
    # what to_dataset stores (input_ids, labels) comes back as the same row, and packs as it would alone
    back = row_from_example(list(row.input_ids), row.labels)
    assert back.loss_mask == row.loss_mask and back.input_ids == row.input_ids
    batch = PaddingFreeCollator(("input_ids", "labels"))([{"input_ids": list(row.input_ids), "labels": row.labels}])
    assert batch["labels"][0].tolist() == collate_padding_free([row])["labels"][0].tolist()
    assert batch["labels"][0].tolist() == [t if k else IGNORE_INDEX for t, k in zip(row.input_ids, row.loss_mask)]


def test_a_template_that_renders_other_text_is_refused_with_the_record_named(checkpoint) -> None:
    _, tokenizer = checkpoint
    messages = trajectory("codeact")
    marked = marked_template_for(tokenizer, messages)
    changed = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    changed.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ConversationError, match="task-7: the marked template .* renders other text"):
        tokenize_conversation(changed, "task-7", messages, marked)
    with pytest.raises(ConversationError, match="no template with"):
        marked_template_for(changed, messages)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "task-9: no messages"),
        ([{"role": "user", "content": "hi"}], "task-9: no assistant turn"),
        ([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}], "task-9: message 0 needs a role"),
        ([{"role": "user", "content": None}, {"role": "assistant", "content": "y"}], "task-9: message 0 needs a role"),
    ],
)
def test_broken_conversations_are_refused_with_the_record_named(checkpoint, messages, message) -> None:
    _, tokenizer = checkpoint
    marked = marked_template_for(tokenizer, trajectory("toolcall"))
    with pytest.raises(ConversationError, match=message):
        tokenize_conversation(tokenizer, "task-9", messages, marked)
