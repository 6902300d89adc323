"""Serving the SLM: what is served for a track, the adapter merge, and parity of the served text with evaluation's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import MANIFEST_NAME, record_adapter_base
from slm_swap.layout import merged_model_dir
from slm_swap.serving.export import ExportError, adapter_fingerprint, export_merged
from slm_swap.serving.launch import ServingError, plan_serving, served_model_id, serving_dtype, vllm_command
from slm_swap.serving.parity import ParityReport, ParityRow, first_difference, possible_causes

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT_NAME = "smollm2-135m-instruct"


def fake_base(folder: Path, identity: str = "org/tiny") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"dtype": "bfloat16"}', encoding="utf-8")
    (folder / MANIFEST_NAME).write_text(json.dumps({"slm_swap_base": identity}), encoding="utf-8")
    return folder


def fake_adapter(folder: Path, base: Path, rank: int = 8) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "base_model_name_or_path": str(base)}), encoding="utf-8")
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    record_adapter_base(folder, base)
    return folder


@pytest.fixture
def layout(tmp_path):
    """A base checkpoint folder, an adapter folder for toolcall only, and an empty models folder."""
    base = fake_base(tmp_path / "models" / "tiny")
    adapter = fake_adapter(tmp_path / "ft" / "adapter_toolcall", base)
    return base, tmp_path / "ft", tmp_path / "models", adapter


def test_track_without_adapter_serves_the_base_under_its_path(layout):
    base, ft_dir, models_dir, _ = layout
    plan = plan_serving("structured", base, ft_dir, models_dir, "cpu", 256)
    assert (plan.checkpoint, plan.adapter, plan.model_id) == (base, None, str(base.resolve()))
    assert (plan.dtype, plan.describe()["quantization"], plan.describe()["request"]) == (
        "float32",
        "none",
        {"temperature": 0, "max_tokens": 256},
    )


def test_track_with_adapter_but_no_merge_names_the_export_command(layout):
    base, ft_dir, models_dir, adapter = layout
    with pytest.raises(ServingError, match=r"has not been merged .* run `python tools/export_model.py --track toolcall --base-model"):
        plan_serving("toolcall", base, ft_dir, models_dir, "cpu", 256)


def test_merge_of_an_older_adapter_is_refused_as_stale(layout):
    base, ft_dir, models_dir, adapter = layout
    merged = fake_base(merged_model_dir(models_dir, base, "toolcall"))
    manifest = {"slm_swap_base": "x", "adapter": {"fingerprint": adapter_fingerprint(adapter)}, "dtype": "bfloat16"}
    (merged / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")
    plan = plan_serving("toolcall", base, ft_dir, models_dir, "cuda", 256)
    assert (plan.checkpoint, plan.model_id, plan.dtype, plan.merged_dtype) == (merged, str(merged.resolve()), "bfloat16", "bfloat16")
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained weights")
    with pytest.raises(ServingError, match="merged from another version .* --force"):
        plan_serving("toolcall", base, ft_dir, models_dir, "cuda", 256)


def test_missing_base_names_the_fetch_command(tmp_path):
    with pytest.raises(ServingError, match="fetch one with `python tools/fetch_model.py smollm2-135m-instruct`"):
        plan_serving("structured", tmp_path / "smollm2-135m-instruct", tmp_path, tmp_path, "cpu", 256)


def test_served_model_id_per_server(layout):
    base, ft_dir, models_dir, _ = layout
    assert served_model_id("toolcall", base, ft_dir, models_dir) == str((models_dir / "tiny-toolcall-merged").resolve())
    assert served_model_id("toolcall", base, ft_dir, models_dir, "vllm") == "toolcall"
    assert served_model_id("structured", base, ft_dir, models_dir, "vllm") == str(base)


def test_vllm_command_loads_the_adapter_as_a_lora_module_named_after_the_track(layout, tmp_path):
    base, ft_dir, _, adapter = layout
    assert vllm_command("toolcall", base, ft_dir, 8000) == [
        "vllm",
        "serve",
        str(base),
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--dtype",
        "bfloat16",
        "--enable-lora",
        "--lora-modules",
        f"toolcall={adapter}",
    ]
    assert "--enable-lora" not in vllm_command("structured", base, ft_dir, 8000)
    # vLLM's default --max-lora-rank is 16: a rank-64 adapter needs the flag or vLLM refuses it.
    fake_adapter(tmp_path / "ft64" / "adapter_toolcall", base, rank=64)
    assert vllm_command("toolcall", base, tmp_path / "ft64", 8000)[-2:] == ["--max-lora-rank", "64"]


def test_dtype_is_what_evaluation_uses_without_4bit():
    assert (serving_dtype("cpu"), serving_dtype("cuda"), serving_dtype("cuda:1")) == ("float32", "bfloat16", "bfloat16")


def test_export_refuses_an_adapter_trained_on_another_base(layout, tmp_path):
    base, _, models_dir, _ = layout
    other = fake_base(tmp_path / "other", identity="org/other")
    adapter = fake_adapter(tmp_path / "ft2" / "adapter_structured", other)
    with pytest.raises(ExportError, match="was trained on base 'org/other'"):
        export_merged(base, adapter, "structured", models_dir / "out")
    assert not (models_dir / "out").exists()


def test_export_refuses_an_adapter_without_weights(layout):
    base, _, models_dir, adapter = layout
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ExportError, match="not a complete PEFT adapter"):
        export_merged(base, adapter, "toolcall", models_dir / "out")


def test_export_keeps_a_folder_that_is_not_a_merge(layout):
    base, _, models_dir, adapter = layout
    (models_dir / "out").mkdir()
    with pytest.raises(ExportError, match="holds no complete merge"):
        export_merged(base, adapter, "toolcall", models_dir / "out")


def test_first_difference_and_causes():
    # "abc" vs "abd" part at 2; a prefix parts where the shorter text ends
    assert (first_difference("abc", "abd"), first_difference("ab", "abc"), first_difference("", "")) == (2, 2, 0)
    served = {"dtype": "float32", "merged_dtype": "bfloat16", "request": {"max_tokens": 16}}
    evaluated = {
        "dtype": "float32",
        "adapter": "a",
        "quantization": {"method": "nf4"},
        "generation": {"max_new_tokens": 32, "batch_sizes_used": [1, 8]},
    }
    causes = " | ".join(possible_causes(served, evaluated))
    for expected in (
        "evaluation ran nf4",
        "merged into the base and stored in bfloat16",
        "left-padded batches (sizes [1, 8])",
        "served 16, evaluated 32",
    ):
        assert expected in causes
    assert (
        possible_causes(
            {"dtype": "float32", "request": {"max_tokens": 8}},
            {"dtype": "float32", "quantization": {"method": "none"}, "generation": {"max_new_tokens": 8, "batch_sizes_used": [1]}},
        )
        == []
    )
    # batched, but batch-invariant: each row's text is its alone text, so the batches are no cause
    invariant = {"dtype": "float32", "quantization": {"method": "none"}, "generation": {"batch_sizes_used": [8], "batch_invariant": True}}
    assert possible_causes({"dtype": "float32"}, invariant) == []


def test_report_marks_a_different_or_failed_row_and_says_where():
    rows = [
        ParityRow("a", "same", "same", "stop", "stop"),
        ParityRow("b", "xyz", "xyw", "stop", "stop"),
        ParityRow("c", None, "t", None, "stop", "HTTP 500"),
    ]
    record = ParityReport(rows, {"dtype": "float32"}, {"dtype": "float32"}).to_record()
    assert (record["all_same"], record["rows_same"], [r["same"] for r in record["rows"]]) == (False, 1, [True, False, False])
    assert record["rows"][1]["difference"]["where"] == "character 2"
    assert record["rows"][2]["difference"] == {"where": "the served request failed", "error": "HTTP 500", "possible_causes": []}
    assert ParityReport([], {}, {}).all_same is False  # checking nothing proves nothing


def run_tool(*args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout_s)


def test_serve_cli_without_a_checkpoint_exits_2_naming_the_fix(tmp_path):
    result = run_tool("tools/serve.py", "--track", "structured", "--base-model", str(tmp_path / "none"), timeout_s=120)
    assert result.returncode == 2
    assert "no model checkpoint there" in result.stderr and "tools/fetch_model.py" in result.stderr


def test_export_cli_without_an_adapter_exits_2(tmp_path):
    base = fake_base(tmp_path / "tiny")
    result = run_tool(
        "tools/export_model.py", "--track", "toolcall", "--base-model", str(base), "--ft-dir", str(tmp_path / "ft"), timeout_s=120
    )
    assert result.returncode == 2
    assert "not a PEFT adapter folder (no adapter_config.json)" in result.stderr


# --- the real thing: the embedded checkpoint, a LoRA adapter made on it, `transformers serve` ---


@pytest.fixture(scope="module")
def embedded_checkpoint() -> Path:
    from slm_swap.backends.checkpoints import CheckpointError, ensure_checkpoint

    try:
        return ensure_checkpoint(CHECKPOINT_NAME, REPO / "slm_swap" / "models" / CHECKPOINT_NAME)
    except CheckpointError as exc:
        pytest.fail(f"the serving tests need the embedded checkpoint: {exc}")


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A rank-4 LoRA on q_proj and v_proj with random, non-zero B: the merge visibly changes those weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    record_adapter_base(out, base)
    return out


@pytest.fixture(scope="module")
def adapter_layout(embedded_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    adapter = make_adapter(embedded_checkpoint, root / "ft" / "adapter_structured", seed=0)
    return embedded_checkpoint, root / "ft", root / "models", adapter


@pytest.mark.slow
def test_export_merges_in_16bit_with_the_base_chat_template(adapter_layout):
    import torch
    from safetensors.torch import load_file

    base, ft_dir, models_dir, adapter = adapter_layout
    result = run_tool(
        "tools/export_model.py",
        "--track",
        "structured",
        "--base-model",
        str(base),
        "--ft-dir",
        str(ft_dir),
        "--models-dir",
        str(models_dir),
    )
    assert result.returncode == 0, result.stderr
    merged = models_dir / f"{CHECKPOINT_NAME}-structured-merged"
    manifest = json.loads((merged / MANIFEST_NAME).read_text(encoding="utf-8"))
    base_identity = json.loads((base / MANIFEST_NAME).read_text(encoding="utf-8"))["slm_swap_base"]
    assert manifest["base"] == {"path": str(base), "identity": base_identity}
    assert manifest["adapter"]["fingerprint"] == adapter_fingerprint(adapter)
    assert set(manifest["adapter"]["files"]) == {"adapter_config.json", "adapter_model.safetensors"}
    assert manifest["dtype"] == "bfloat16" and manifest["slm_swap_base"] != base_identity
    assert (merged / "chat_template.jinja").read_text() == (base / "chat_template.jinja").read_text()
    weights, original = load_file(merged / "model.safetensors"), load_file(base / "model.safetensors")
    assert all(tensor.dtype == torch.bfloat16 for tensor in weights.values())
    changed = sorted(name for name in weights if not torch.equal(weights[name], original[name]))
    assert changed and all(".q_proj." in name or ".v_proj." in name for name in changed)
    assert any(".q_proj." in name for name in changed) and any(".v_proj." in name for name in changed)
    again = run_tool(
        "tools/export_model.py",
        "--track",
        "structured",
        "--base-model",
        str(base),
        "--ft-dir",
        str(ft_dir),
        "--models-dir",
        str(models_dir),
    )
    assert again.returncode == 0 and "already up to date" in again.stdout


@pytest.mark.slow
@pytest.mark.parametrize("track", ["structured", "toolcall"], ids=["merged-adapter", "base-without-adapter"])
def test_served_text_is_evaluations_text(adapter_layout, track, tmp_path):
    base, ft_dir, models_dir, _ = adapter_layout
    if track == "structured" and not (models_dir / f"{CHECKPOINT_NAME}-structured-merged" / MANIFEST_NAME).is_file():
        export_merged(base, ft_dir / "adapter_structured", "structured", models_dir / f"{CHECKPOINT_NAME}-structured-merged")
    out = tmp_path / "parity.json"
    result = run_tool(
        "tools/serve.py",
        "--track",
        track,
        "--port",
        "0",
        "--device",
        "cpu",
        "--base-model",
        str(base),
        "--ft-dir",
        str(ft_dir),
        "--models-dir",
        str(models_dir),
        "--parity-rows",
        "3",
        "--max-tokens",
        "16",
        "--parity-out",
        str(out),
    )
    report = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:] + json.dumps(report, indent=1)[:4000]
    assert (report["all_same"], report["rows_checked"], report["rows_same"]) == (True, 3, 3)
    served, evaluated = report["served"], report["evaluated"]
    # The quantisation of both sides is on record: unquantised weights in the same dtype.
    assert (served["quantization"], evaluated["quantization"]["method"]) == ("none", "none")
    assert served["dtype"] == evaluated["dtype"] == "float32"
    assert served["request"] == {"temperature": 0, "max_tokens": 16} and evaluated["generation"]["max_new_tokens"] == 16
    if track == "structured":
        assert served["model_id"].endswith(f"{CHECKPOINT_NAME}-structured-merged") and evaluated["adapter"] == str(
            ft_dir / "adapter_structured"
        )
        assert "--lora-modules structured=" in result.stdout
    else:
        assert served["adapter"] is None and evaluated["adapter"] is None
        assert served["model_id"] == str(base.resolve())
    assert f"model id: {served['model_id']}" in result.stdout and "base URL: http://127.0.0.1:" in result.stdout
