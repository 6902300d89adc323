"""Conversations (agent trajectories) as training rows, with loss on the assistant turns only.

Observation masking: system, user and observation messages carry no loss; every assistant turn carries
loss on its text and on the end-of-turn token that closes it, so the model learns to act and to stop, and
never learns to write what a tool answers. The mask comes from `{% generation %}` markers in the chat
template, read through transformers' `return_assistant_tokens_mask`: the mechanism behind TRL's
`assistant_only_loss`. The tokens and their mask then go through the same padding-free rows
(`slm_swap.finetune.data.TokenizedRow`) as the prompt -> completion tracks.

The checkpoints' own templates carry no markers, so this module holds a marked copy of each template the
project ships: SmolLM2's ChatML (from its GGUF) and the Gemma turn format (`backends.model_catalog`).
A marked copy is used only where it renders, markers aside, exactly the text of the checkpoint's own
template; this is checked on every conversation, so a changed template stops training with the row named
instead of shifting the mask. Each assistant turn's tokens must also be the tokens its prompt is followed
by at generation time (the conversation so far with the assistant turn opened, tokenized alone), or the
model would be trained on a tokenization it never sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.data.rows import DatasetError
from slm_swap.files import sha256_file
from slm_swap.finetune.data import PreparedSplit, TokenizedRow
from slm_swap.tracks.agent.data.trajectories import read_trajectories

CHATML_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# SmolLM2-135M-Instruct's template as its GGUF carries it, with the assistant turn's text and closing
# <|im_end|> inside the generation markers (the newline after <|im_end|> is the template's, not the model's).
CHATML_MARKED = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + CHATML_SYSTEM + "<|im_end|>\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# backends.model_catalog.GEMMA_CHAT_TEMPLATE with the model turn's text and <end_of_turn> marked.
GEMMA_MARKED = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{%- if role == 'model' -%}"
    "{{ '<start_of_turn>model\\n' }}{% generation %}"
    "{{ (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>' }}"
    "{% endgeneration %}{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

MARKED_TEMPLATES: Mapping[str, str] = {"chatml (SmolLM2)": CHATML_MARKED, "gemma turns": GEMMA_MARKED}


class ConversationError(ValueError):
    """A conversation that cannot be trained on as it is; the message names the record."""


@dataclass(frozen=True)
class MarkedTemplate:
    name: str
    template: str


def render(tokenizer: Any, messages: Sequence[Mapping[str, str]], template: str | None = None, *, opened: bool = False) -> str:
    return tokenizer.apply_chat_template([dict(m) for m in messages], chat_template=template, add_generation_prompt=opened, tokenize=False)


def marked_template_for(tokenizer: Any, probe: Sequence[Mapping[str, str]]) -> MarkedTemplate:
    """The marked copy of the tokenizer's own template: the one that renders `probe` to the same text."""
    if not tokenizer.chat_template:
        raise ConversationError("the tokenizer has no chat template")
    own = render(tokenizer, probe)
    for name, template in MARKED_TEMPLATES.items():
        if render(tokenizer, probe, template) == own:
            return MarkedTemplate(name, template)
    raise ConversationError(
        "no template with {% generation %} markers matches this checkpoint's chat template "
        f"(known: {', '.join(MARKED_TEMPLATES)}); add a marked copy to slm_swap/finetune/conversations.py"
    )


def check_roles(record_id: str, messages: Sequence[Mapping[str, str]]) -> None:
    if not messages:
        raise ConversationError(f"{record_id}: no messages")
    for index, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant") or not isinstance(message.get("content"), str):
            raise ConversationError(f"{record_id}: message {index} needs a role of system, user or assistant and text content")
    if not any(m["role"] == "assistant" for m in messages):
        raise ConversationError(f"{record_id}: no assistant turn, so nothing to learn from")


def tokenize_conversation(tokenizer: Any, record_id: str, messages: Sequence[Mapping[str, str]], marked: MarkedTemplate) -> TokenizedRow:
    """The conversation's tokens with loss on its assistant turns and their end-of-turn tokens only."""
    check_roles(record_id, messages)
    text = render(tokenizer, messages)
    if render(tokenizer, messages, marked.template) != text:
        raise ConversationError(f"{record_id}: the marked template ({marked.name}) renders other text than the checkpoint's own")
    encoded = tokenizer.apply_chat_template(
        [dict(m) for m in messages],
        chat_template=marked.template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    input_ids = tuple(int(t) for t in encoded["input_ids"])
    mask = tuple(bool(m) for m in encoded["assistant_masks"])
    if input_ids != tuple(tokenizer(text, add_special_tokens=False)["input_ids"]):
        raise ConversationError(f"{record_id}: the chat template's tokens differ from the rendered text's")
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        # generation sees the conversation so far with the assistant turn opened, tokenized alone
        head = tokenizer(render(tokenizer, messages[:index], opened=True), add_special_tokens=False)["input_ids"]
        if tuple(head) != input_ids[: len(head)]:
            raise ConversationError(f"{record_id}: message {index}'s prompt tokenizes differently inside the whole conversation")
        if len(head) >= len(mask) or mask[len(head) - 1] or not mask[len(head)]:
            raise ConversationError(f"{record_id}: message {index}'s loss does not start where its generation starts")
    first = mask.index(True)
    return TokenizedRow(record_id, input_ids, first, mask)


def prepare_conversations(path: Path, tokenizer: Any, max_seq_length: int, limit: int | None = None) -> PreparedSplit:
    """A training split of trajectory records (tools/build_trajectories.py): checked, tokenized with the assistant
    mask, and the records longer than `max_seq_length` set aside with their lengths (never cut mid-turn)."""
    records = read_trajectories(path)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise DatasetError(f"{path}: no trajectories to train on")
    refused = next((r for r in records if not r.accepted), None)
    if refused is not None:
        raise DatasetError(f"{path}: {refused.id} was rejected by the verifier; train only on what tools/build_trajectories.py kept")
    try:
        marked = marked_template_for(tokenizer, records[0].messages)
    except ConversationError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    kept, over = [], []
    for record in records:
        try:
            row = tokenize_conversation(tokenizer, record.id, record.messages, marked)
        except ConversationError as exc:
            raise DatasetError(f"{path}: {exc}") from None
        if len(row) > max_seq_length:
            over.append((record.id, len(row)))
        else:
            kept.append(row)
    if not kept:
        raise DatasetError(f"{path}: all {len(records)} trajectories are longer than {max_seq_length} tokens; raise --max-seq-len")
    return PreparedSplit(Path(path), sha256_file(path), tuple(kept), len(records), tuple(over), max_seq_length)
