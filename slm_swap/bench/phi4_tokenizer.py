"""Phi-4-mini-instruct's tokenizer, rebuilt offline from o200k_base's ranks as a Hugging Face folder.

What it is for: the GPU throughput benchmark needs prompts whose token counts match
microsoft/Phi-4-mini-instruct, on machines where the model hub cannot be reached.
Phi-4-mini's tokenizer is OpenAI's o200k_base byte-level BPE (199998 regular tokens,
o200k_base's pre-tokenizer regex) plus the Phi chat tokens at fixed ids; the model's
embedding has 200064 rows, so every id written here fits.

Where the ranks come from (either works, `load_ranks` detects the format):
  * js-tiktoken's npm tarball: `npm pack js-tiktoken`, file `package/dist/ranks/o200k_base.js`
    (or `.cjs`): a JS object whose `bpe_ranks` string holds lines
    `<ignored> <offset> <base64 token> <base64 token> ...`, token i of a line having rank offset + i
    (decoded exactly as js-tiktoken's `Tiktoken` constructor does);
  * the `o200k_base.tiktoken` file tiktoken downloads: one `<base64 token> <rank>` per line.
Either way the ranks are re-serialised in the .tiktoken layout and checked against the SHA-256
that tiktoken pins for OpenAI's published o200k_base.tiktoken, so a wrong or damaged file is refused.

Special tokens, chat template and flags follow the published Phi-4-mini-instruct files as far as
they could be confirmed offline; see PHI4_ADDED_TOKENS and CHAT_TEMPLATE below.

`write_folder` writes tokenizer.json, tokenizer_config.json, chat_template.jinja,
special_tokens_map.json and generation_config.json; load the folder with
`transformers.AutoTokenizer.from_pretrained(DIR)`. The command is tools/phi4_tokenizer.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE

# tiktoken_ext/openai_public.py, o200k_base(): the regex, the special tokens and the file hash.
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
O200K_TIKTOKEN_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
O200K_REGULAR_TOKENS = 199998
PHI4_VOCAB_SIZE = 200064  # config.json vocab_size (embedding rows)


@dataclass(frozen=True)
class Added:
    """One Phi-4 added token: its text, its fixed id and its tokenizer flags."""

    content: str
    id: int
    special: bool
    rstrip: bool


# Phi-4-mini-instruct's added tokens. Ids: added_tokens.json of Phi-4-mini-instruct (as re-published by
# unsloth/Phi-4-mini-instruct-bnb-4bit) plus o200k_base's own two specials. Flags (special/rstrip):
# tokenizer_config.json added_tokens_decoder of Phi-4-mini fine-tunes and of Phi-4-multimodal-instruct,
# which shares this vocabulary. rstrip=True makes the token swallow whitespace right after it.
PHI4_ADDED_TOKENS = (
    Added("<|endoftext|>", 199999, special=True, rstrip=False),
    Added("<|endofprompt|>", 200018, special=True, rstrip=False),
    Added("<|assistant|>", 200019, special=True, rstrip=True),
    Added("<|end|>", 200020, special=True, rstrip=True),
    Added("<|user|>", 200021, special=True, rstrip=True),
    Added("<|system|>", 200022, special=True, rstrip=True),
    Added("<|tool|>", 200023, special=False, rstrip=True),
    Added("<|/tool|>", 200024, special=False, rstrip=True),
    Added("<|tool_call|>", 200025, special=False, rstrip=True),
    Added("<|/tool_call|>", 200026, special=False, rstrip=True),
    Added("<|tool_response|>", 200027, special=False, rstrip=True),
    Added("<|tag|>", 200028, special=False, rstrip=True),
)

# Phi-4-mini-instruct's chat template, verbatim (tokenizer_config.json "chat_template").
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and 'tools' in message and message['tools'] is not none %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

# tokenizer_config.json: bos/eos/pad/unk are all <|endoftext|> in the real files. Generation stops on
# <|end|> through the model's generation_config.json (eos_token_id [200020, 199999]), written beside it.
TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": "<|endoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "clean_up_tokenization_spaces": False,
    "model_max_length": 131072,
    "tokenizer_class": "PreTrainedTokenizerFast",
}
GENERATION_CONFIG = {"bos_token_id": 199999, "eos_token_id": [200020, 199999], "pad_token_id": 199999}


class RanksError(ValueError):
    """The ranks file is unreadable or is not o200k_base; the message names the file."""


def decode_js_tiktoken(path: Path, text: str) -> dict[bytes, int]:
    """Ranks from js-tiktoken's `ranks/<name>.js|.cjs`, decoded as its Tiktoken constructor does."""
    try:
        obj = json.loads(text[text.index("{") : text.rindex("}") + 1])
    except ValueError as exc:
        raise RanksError(f"{path}: not a js-tiktoken ranks module (no JSON object: {exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("bpe_ranks"), str):
        raise RanksError(f"{path}: js-tiktoken ranks module has no 'bpe_ranks' string")
    specials = obj.get("special_tokens")
    if specials != O200K_SPECIAL:
        raise RanksError(f"{path}: special_tokens {specials!r} are not o200k_base's {O200K_SPECIAL!r}")
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(filter(None, obj["bpe_ranks"].split("\n")), start=1):
        try:
            _, offset_text, *tokens = line.split(" ")
            offset = int(offset_text, 10)
            for i, token in enumerate(tokens):
                ranks[base64.b64decode(token, validate=True)] = offset + i
        except (ValueError, binascii.Error) as exc:
            raise RanksError(f"{path}: bpe_ranks line {number}: {exc}") from None
    return ranks


def decode_tiktoken_file(path: Path, text: str) -> dict[bytes, int]:
    """Ranks from a `.tiktoken` file: `<base64 token> <rank>` per line."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error) as exc:
            raise RanksError(f"{path}: line {number}: expected '<base64> <rank>' ({exc})") from None
    return ranks


def tiktoken_serialisation(ranks: dict[bytes, int]) -> bytes:
    """The ranks in the `.tiktoken` layout, byte for byte as OpenAI publishes o200k_base.tiktoken."""
    return b"".join(
        base64.b64encode(token) + b" " + str(rank).encode() + b"\n" for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])
    )


def load_ranks(path: Path) -> dict[bytes, int]:
    """o200k_base's mergeable ranks from either file format, checked against OpenAI's published hash."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RanksError(f"{path}: cannot read ranks file ({exc})") from None
    head = text.lstrip()[:200]
    is_js = head.startswith(("export", "module.exports", "{")) or "bpe_ranks" in head
    ranks = decode_js_tiktoken(path, text) if is_js else decode_tiktoken_file(path, text)
    if sorted(ranks.values()) != list(range(O200K_REGULAR_TOKENS)):
        raise RanksError(f"{path}: expected ranks 0..{O200K_REGULAR_TOKENS - 1} once each, got {len(ranks)} tokens")
    digest = hashlib.sha256(tiktoken_serialisation(ranks)).hexdigest()
    if digest != O200K_TIKTOKEN_SHA256:
        raise RanksError(f"{path}: ranks re-serialised as .tiktoken have SHA-256 {digest}, not o200k_base's {O200K_TIKTOKEN_SHA256}")
    return ranks


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table that byte-level BPE vocabularies are written in."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocab and the merge list that reproduces tiktoken's rank-ordered merging.

    Same construction as transformers' TikTokenConverter: every split of a token into two tokens is a
    merge, merges ordered by the rank of the merged token, then by the ranks of the two halves.
    """
    table = bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(table[b] for b in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return vocab, [(text(left), text(right)) for *_, left, right in merges]


def as_added_token(token: Added) -> AddedToken:
    """The tokenizers-library form of one Phi-4 added token (never normalised, never stripped on the left)."""
    return AddedToken(token.content, special=token.special, rstrip=token.rstrip, lstrip=False, normalized=False, single_word=False)


def build_tokenizer(ranks: dict[bytes, int]) -> Tokenizer:
    """The o200k_base BPE with its pre-tokenizer and byte-level decoding, plus Phi-4's added tokens at their ids."""
    vocab, merges = vocab_and_merges(ranks)
    # The added tokens also sit in the model vocab at their ids, so the ids are kept despite the gaps
    # (199998 and 200000..200017 are unused, as in o200k_base).
    vocab.update({tok.content: tok.id for tok in PHI4_ADDED_TOKENS})
    # ignore_merges: a pre-token that is itself in the vocab is one token, as in tiktoken.
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False, ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(O200K_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([as_added_token(t) for t in PHI4_ADDED_TOKENS if t.special])
    tokenizer.add_tokens([as_added_token(t) for t in PHI4_ADDED_TOKENS if not t.special])
    for tok in PHI4_ADDED_TOKENS:
        got = tokenizer.token_to_id(tok.content)
        if got != tok.id:
            raise RuntimeError(f"{tok.content} got id {got}, expected {tok.id}")
    return tokenizer


def added_tokens_decoder() -> dict[str, dict[str, object]]:
    """tokenizer_config.json's `added_tokens_decoder`: each added token's flags keyed by its id."""
    return {
        str(t.id): {
            "content": t.content,
            "lstrip": False,
            "normalized": False,
            "rstrip": t.rstrip,
            "single_word": False,
            "special": t.special,
        }
        for t in PHI4_ADDED_TOKENS
    }


def write_folder(ranks: dict[bytes, int], out: Path) -> list[Path]:
    """Write the Hugging Face tokenizer folder for `ranks` into `out` (created if missing); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "tokenizer.json": build_tokenizer(ranks).to_str(),
        "tokenizer_config.json": json.dumps(
            {**TOKENIZER_CONFIG, "added_tokens_decoder": added_tokens_decoder()}, indent=2, ensure_ascii=False
        )
        + "\n",
        "chat_template.jinja": CHAT_TEMPLATE,
        "special_tokens_map.json": json.dumps(
            {k: TOKENIZER_CONFIG[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}, indent=2
        )
        + "\n",
        "generation_config.json": json.dumps(GENERATION_CONFIG, indent=2) + "\n",
    }
    written = []
    for name, content in files.items():
        path = out / name
        try:
            path.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise OSError(f"{path}: cannot write ({exc})") from None
        written.append(path)
    return written
