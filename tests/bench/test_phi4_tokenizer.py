"""The offline Phi-4-mini tokenizer: tiktoken's BPE on a tiny rank table, both ranks formats, the refusals, the folder."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import regex
from transformers import AutoTokenizer

from slm_swap.bench import phi4_tokenizer
from slm_swap.bench.phi4_tokenizer import (
    O200K_PATTERN,
    O200K_REGULAR_TOKENS,
    O200K_SPECIAL,
    RanksError,
    build_tokenizer,
    decode_js_tiktoken,
    decode_tiktoken_file,
    load_ranks,
    write_folder,
)
from tools import phi4_tokenizer as tool

# Single bytes get a shuffled rank (167 is odd, so b -> 167b + 89 mod 256 is a permutation): a build
# that confused a byte with its rank would encode everything wrongly.
SINGLE_BYTES = {bytes([b]): (167 * b + 89) % 256 for b in range(256)}
MERGED = [
    b"he",
    b"ll",
    b"hell",
    b"hello",
    b" w",
    b"or",
    b"ld",
    b"orld",
    b" world",
    b"cd",  # ranks below "bc" although b's own rank is below c's: "bcd" is b + cd
    b"bc",  # ranks below "ab": "abc" is a + bc, not ab + c as merging left to right would give
    b"ab",
    b"xyz",  # no "xy" or "yz": reachable only as a whole pre-token, as tiktoken looks pieces up first
    "é".encode(),
    b"12",
]
# Inserted highest rank first, so a build that kept the table's order instead of sorting merges by rank fails.
TINY = {**{token: 256 + i for i, token in reversed(list(enumerate(MERGED)))}, **SINGLE_BYTES}

# Phi-4-mini-instruct's added tokens and their ids, written out here rather than read from the module.
PHI4_IDS = {
    "<|endoftext|>": 199999,
    "<|endofprompt|>": 200018,
    "<|assistant|>": 200019,
    "<|end|>": 200020,
    "<|user|>": 200021,
    "<|system|>": 200022,
    "<|tool|>": 200023,
    "<|/tool|>": 200024,
    "<|tool_call|>": 200025,
    "<|/tool_call|>": 200026,
    "<|tool_response|>": 200027,
    "<|tag|>": 200028,
}

SAMPLES = [
    "hello world",
    "hello, world!\n\n  hello",
    "Hello World",  # capitals: "He" and " W" are not tokens
    "héllo wörld",
    "abc abab cab bcd abcd",
    "xyz xyzxyz",
    "12345 1212",
    "it's hell'll\tdo",
    "",
]


def reference_encode(ranks: dict[bytes, int], text: str) -> list[int]:
    """tiktoken's encoding, spelled out: a pre-token in the table is one token; otherwise merge its bytes,
    always the adjacent pair whose concatenation has the lowest rank, until no pair is in the table."""
    ids: list[int] = []
    for piece in regex.findall(O200K_PATTERN, text):
        data = piece.encode()
        if data in ranks:
            ids.append(ranks[data])
            continue
        parts = [bytes([b]) for b in data]
        while True:
            pairs = [(ranks[parts[i] + parts[i + 1]], i) for i in range(len(parts) - 1) if parts[i] + parts[i + 1] in ranks]
            if not pairs:
                break
            _, i = min(pairs)
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        ids.extend(ranks[part] for part in parts)
    return ids


def tiktoken_text(ranks: dict[bytes, int]) -> str:
    return "".join(f"{base64.b64encode(token).decode()} {rank}\n" for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]))


def js_module(ranks: dict[bytes, int], specials: object = O200K_SPECIAL, per_line: int = 40) -> str:
    """js-tiktoken's ranks module: lines of `<ignored> <offset> <b64>...`, token i of a line at rank offset + i."""
    ordered = sorted(ranks.items(), key=lambda kv: kv[1])
    assert [rank for _, rank in ordered] == list(range(len(ordered))), "js_module writes contiguous ranks only"
    lines = []
    for start in range(0, len(ordered), per_line):
        tokens = " ".join(base64.b64encode(token).decode() for token, _ in ordered[start : start + per_line])
        lines.append(f"! {start} {tokens}")
    obj = {"pat_str": "ignored", "special_tokens": specials, "bpe_ranks": "\n".join(lines)}
    return f"export default {json.dumps(obj)};\n"


@pytest.fixture(scope="module")
def full_size_table() -> dict[bytes, int]:
    """199998 distinct tokens ranked 0..199997 that are not o200k_base: the size check passes, the hash must not."""
    extra = (i.to_bytes(3, "big") for i in range(1 << 16, (1 << 16) + O200K_REGULAR_TOKENS - 256))
    return {**SINGLE_BYTES, **{token: 256 + i for i, token in enumerate(extra)}}


def test_reference_encoder_merges_lowest_rank_first() -> None:
    # guards the reference itself, so the comparison below is against known-right ids
    assert reference_encode(TINY, "hello world") == [TINY[b"hello"], TINY[b" world"]]
    assert reference_encode(TINY, "abc") == [TINY[b"a"], TINY[b"bc"]]
    assert reference_encode(TINY, "bcd") == [TINY[b"b"], TINY[b"cd"]]
    assert reference_encode(TINY, " xyz") == [TINY[b" "], TINY[b"x"], TINY[b"y"], TINY[b"z"]]


@pytest.mark.parametrize("text", SAMPLES)
def test_build_tokenizer_encodes_like_tiktoken(text: str) -> None:
    tokenizer = build_tokenizer(TINY)
    ids = tokenizer.encode(text).ids
    assert ids == reference_encode(TINY, text)
    assert tokenizer.decode(ids) == text


def test_phi4_added_tokens_encode_as_single_ids_at_their_ids() -> None:
    tokenizer = build_tokenizer(TINY)
    for content, expected in PHI4_IDS.items():
        assert tokenizer.encode(content).ids == [expected], content
    ids = tokenizer.encode("<|user|>hi<|end|><|assistant|>").ids
    assert ids == [200021, TINY[b"h"], TINY[b"i"], 200020, 200019]


def test_chat_tokens_swallow_whitespace_after_them_but_endoftext_does_not() -> None:
    tokenizer = build_tokenizer(TINY)
    assert tokenizer.encode("<|user|>  hi<|end|>\n").ids == tokenizer.encode("<|user|>hi<|end|>").ids
    assert tokenizer.encode("<|endoftext|> hi").ids == [199999, *reference_encode(TINY, " hi")]


def test_decode_skips_special_tokens_but_keeps_tool_tokens() -> None:
    tokenizer = build_tokenizer(TINY)
    ids = tokenizer.encode("<|user|>hi<|tool|>he<|end|>").ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "hi<|tool|>he"


def test_js_and_tiktoken_formats_decode_to_the_same_ranks(tmp_path: Path) -> None:
    path = tmp_path / "ranks"
    from_js = decode_js_tiktoken(path, js_module(TINY, per_line=37))
    from_tiktoken = decode_tiktoken_file(path, tiktoken_text(TINY))
    assert from_js == TINY
    assert from_tiktoken == TINY


def test_js_lines_take_ranks_from_their_offset_not_their_position(tmp_path: Path) -> None:
    a, b, c = (base64.b64encode(t).decode() for t in (b"a", b"b", b"c"))
    text = "export default " + json.dumps({"special_tokens": O200K_SPECIAL, "bpe_ranks": f"! 5 {a} {b}\n\n! 0 {c}"})
    assert decode_js_tiktoken(tmp_path / "r.js", text) == {b"a": 5, b"b": 6, b"c": 0}


@pytest.mark.parametrize("fmt", ["js", "tiktoken"])
def test_load_ranks_refuses_a_table_of_the_wrong_size(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"o200k_base.{fmt}"
    path.write_text(js_module(TINY) if fmt == "js" else tiktoken_text(TINY), encoding="utf-8")
    with pytest.raises(RanksError) as caught:
        load_ranks(path)
    assert str(path) in str(caught.value)
    assert f"got {len(TINY)} tokens" in str(caught.value)


@pytest.mark.parametrize("fmt", ["js", "tiktoken"])
def test_load_ranks_refuses_a_full_size_table_that_is_not_o200k(tmp_path: Path, fmt: str, full_size_table: dict[bytes, int]) -> None:
    table = full_size_table
    serialised = tiktoken_text(table)
    path = tmp_path / f"o200k_base.{fmt}"
    path.write_text(js_module(table, per_line=1000) if fmt == "js" else serialised, encoding="utf-8")
    with pytest.raises(RanksError) as caught:
        load_ranks(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"SHA-256 {hashlib.sha256(serialised.encode()).hexdigest()}" in message


@pytest.mark.parametrize("fmt", ["js", "tiktoken lines in reverse"])
def test_load_ranks_accepts_a_table_with_the_pinned_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full_size_table: dict[bytes, int], fmt: str
) -> None:
    # the hash is of the ranks re-serialised in rank order, whatever order the file lists them in
    serialised = tiktoken_text(full_size_table)
    monkeypatch.setattr(phi4_tokenizer, "O200K_TIKTOKEN_SHA256", hashlib.sha256(serialised.encode()).hexdigest())
    path = tmp_path / "o200k_base.ranks"
    if fmt == "js":
        path.write_text(js_module(full_size_table, per_line=1000), encoding="utf-8")
    else:
        path.write_text("\n".join(reversed(serialised.splitlines())) + "\n", encoding="utf-8")
    assert load_ranks(path) == full_size_table


def test_load_ranks_refuses_js_with_other_special_tokens(tmp_path: Path) -> None:
    path = tmp_path / "cl100k_base.js"
    path.write_text(js_module(TINY, specials={"<|endoftext|>": 100257}), encoding="utf-8")
    with pytest.raises(RanksError, match="special_tokens") as caught:
        load_ranks(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "bad_line",
    [
        "aGVsbG8=",  # no rank
        "aGVsbG8= x",  # rank not a number
        "!!!! 3",  # not base64
    ],
)
def test_load_ranks_names_the_malformed_tiktoken_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "o200k_base.tiktoken"
    lines = tiktoken_text(TINY).splitlines()
    lines[2] = bad_line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RanksError) as caught:
        load_ranks(path)
    assert str(caught.value).startswith(f"{path}: line 3:")


@pytest.mark.parametrize("bad_line", ["! 1 %%%", "broken", "! x YQ=="])
def test_load_ranks_names_the_malformed_js_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "o200k_base.js"
    good = base64.b64encode(b"a").decode()
    path.write_text(
        "export default " + json.dumps({"special_tokens": O200K_SPECIAL, "bpe_ranks": f"! 0 {good}\n{bad_line}"}), encoding="utf-8"
    )
    with pytest.raises(RanksError) as caught:
        load_ranks(path)
    assert str(caught.value).startswith(f"{path}: bpe_ranks line 2:")


def test_load_ranks_refuses_a_js_module_without_bpe_ranks(tmp_path: Path) -> None:
    path = tmp_path / "o200k_base.js"
    path.write_text("export default {bpe_ranks: oops};\n", encoding="utf-8")
    with pytest.raises(RanksError, match="no JSON object") as caught:
        load_ranks(path)
    assert str(path) in str(caught.value)


def test_load_ranks_refuses_missing_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent.tiktoken"
    with pytest.raises(RanksError, match="cannot read ranks file") as caught:
        load_ranks(missing)
    assert str(missing) in str(caught.value)
    binary = tmp_path / "o200k_base.tiktoken"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RanksError, match="cannot read ranks file"):
        load_ranks(binary)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phi4tok") / "tok"  # write_folder creates the folder
    write_folder(TINY, out)
    return out


def test_write_folder_writes_the_five_files(tiny_folder: Path) -> None:
    names = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json", "generation_config.json"}
    assert {p.name for p in tiny_folder.iterdir()} == names


def test_written_folder_loads_in_transformers_with_phi4_chat_template(tiny_folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    messages = [{"role": "user", "content": "hello world"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|user|>hello world<|end|><|assistant|>"
    closed = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": "hi"}], tokenize=False)
    assert closed == "<|user|>hello world<|end|><|assistant|>hi<|end|><|endoftext|>"
    with_tools = tokenizer.apply_chat_template(
        [{"role": "system", "content": "s", "tools": "[]"}], add_generation_prompt=True, tokenize=False
    )
    assert with_tools == "<|system|>s<|tool|>[]<|/tool|><|end|><|assistant|>"
    assert tokenizer(prompt, add_special_tokens=False)["input_ids"] == [200021, TINY[b"hello"], TINY[b" world"], 200020, 200019]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id) == (199999, 199999, 199999)


def test_written_folder_encodes_like_tiktoken_through_transformers(tiny_folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    for text in SAMPLES:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == reference_encode(TINY, text), text


def test_generation_config_stops_on_end_and_endoftext(tiny_folder: Path) -> None:
    config = json.loads((tiny_folder / "generation_config.json").read_text(encoding="utf-8"))
    assert config["eos_token_id"] == [200020, 199999]
    assert config["pad_token_id"] == 199999


def test_tool_prints_error_and_exits_1_on_a_bad_ranks_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ranks = tmp_path / "o200k_base.js"
    ranks.write_text(js_module(TINY), encoding="utf-8")
    out = tmp_path / "out"
    args = tool.build_parser().parse_args(["--ranks", str(ranks), "--out", str(out)])
    assert tool.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ranks}: expected ranks 0..199997 once each")
    assert not out.exists()
