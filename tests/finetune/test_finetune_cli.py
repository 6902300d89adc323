"""tools/finetune.py end to end on CPU: a real tiny checkpoint, the PEFT backend, the trace, the reload; and its refusals."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.data.rows import load_rows

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "finetune.py"
TRACK = "toolcall"


def shortest_rows(split: str, n: int) -> list[dict]:
    lines = (REPO / "slm_swap" / "02_dataset" / TRACK / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    rows = sorted((json.loads(line) for line in lines), key=lambda r: len(r["prompt"]) + len(r["completion"]))
    return rows[:n]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return ensure_checkpoint("smollm2-135m-instruct", REPO / "slm_swap" / "models" / "smollm2-135m-instruct")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A dataset of the shortest real rows (CPU training is slow), a decision marking the track, a stale adapter."""
    root = tmp_path_factory.mktemp("ft")
    write_jsonl(root / "data" / TRACK / "train.jsonl", shortest_rows("train", 4))
    write_jsonl(root / "data" / TRACK / "val.jsonl", shortest_rows("val", 2))
    (root / "decision.json").write_text(json.dumps({"delta": 0.02, "tracks": {TRACK: {"fine_tune": 1, "reasons": ["test marks it"]}}}))
    (root / "ft" / f"adapter_{TRACK}").mkdir(parents=True)
    (root / "ft" / f"adapter_{TRACK}" / "stale.txt").write_text("from an earlier run")
    return root


def tool_args(root: Path, model: Path, *extra: str) -> list[str]:
    return [
        "--track",
        TRACK,
        "--model",
        str(model),
        "--dataset-dir",
        str(root / "data"),
        "--out-dir",
        str(root / "ft"),
        "--decision",
        str(root / "decision.json"),
        *extra,
    ]


@pytest.fixture(scope="module")
def trained(workspace, smollm2, langfuse_receiver, fresh_langfuse_env):
    """One real training run in a subprocess, traced to the local receiver; shared by the tests below."""
    env = {**os.environ, **fresh_langfuse_env()}
    langfuse_receiver.clear()
    result = subprocess.run(
        [sys.executable, str(TOOL), *tool_args(workspace, smollm2, "--overwrite", "--batch-size", "2", "--eval-steps", "1")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    adapter = workspace / "ft" / f"adapter_{TRACK}"
    return adapter, json.loads((adapter / "training_manifest.json").read_text()), result, langfuse_receiver


@pytest.mark.slow
def test_training_writes_a_peft_adapter_over_the_stale_one(trained, smollm2):
    adapter, manifest, result, _ = trained
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "slm_swap_base.json", "training_manifest.json"} <= names
    assert "stale.txt" not in names  # --overwrite replaced the whole folder
    assert not [p for p in adapter.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert result.stdout.strip() == str(adapter)
    from safetensors.torch import load_file

    weights = load_file(adapter / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())  # B starts at 0: it trained


@pytest.mark.slow
def test_manifest_records_recipe_data_losses_and_speed(trained, smollm2):
    adapter, manifest, _, _ = trained
    assert manifest["backend"]["name"] == "hf" and "no CUDA GPU" in manifest["backend"]["reason"]
    assert manifest["settings"]["fixed"] == {
        "load_in_4bit": True,
        "quant_type": "nf4",
        "lora_r": 64,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "learning_rate": 2e-4,
        "num_epochs": 1,
        "max_seq_length": 2048,
        "completion_only_loss": True,
        "weight_decay": 0.0,
        "lr_scheduler": "linear",
    }
    assert manifest["settings"]["end_of_turn_token"] == "<|im_end|>"
    assert manifest["base_model"]["identity"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct GGUF")
    assert manifest["gate"].endswith("test marks it")
    from slm_swap.files import sha256_file

    train = manifest["datasets"]["train"]
    assert train["sha256"] == sha256_file(adapter.parent.parent / "data" / TRACK / "train.jsonl") and train["rows_used"] == 4
    training = manifest["training"]
    assert training["optimizer_steps"] == 2 and len(training["loss_curve"]) == 2
    assert all(step["train_loss"] > 0 for step in training["loss_curve"])
    assert training["tokens_per_s"] > 0 and training["peak_gpu_memory_bytes"] is None
    validation = manifest["validation"]
    assert validation["loss"] > 0 and validation["loss_tokens"] > 0 and validation["rows"] == 2
    assert [point["step"] for point in validation["curve"]] == [1, 2]  # --eval-steps 1; the last one is the end's
    assert validation["curve"][-1]["val_loss"] == validation["loss"] and validation["when"] == "every 1 optimizer steps and after training"
    assert manifest["trainer"]["library"] == "trl SFTTrainer" and "trl" in manifest["run"]["versions"]
    assert not (adapter.parent / f"checkpoints_{TRACK}").exists()  # removed once the adapter was published
    assert manifest["trace"]["id"]


@pytest.mark.slow
def test_one_trace_per_run_with_settings_curve_and_final_losses(trained):
    adapter, manifest, _, receiver = trained
    assert receiver.trace_ids() == [manifest["trace"]["id"]]
    (root,) = [s for s in receiver.spans() if s.parent_span_id is None]
    assert root.name.startswith(f"train:{TRACK}:HuggingFaceTB/SmolLM2-135M-Instruct")
    output = root.json_attribute("langfuse.observation.output")
    assert output["adapter_path"] == str(adapter) and len(output["loss_curve"]) == 2
    assert output["validation_loss_curve"] == manifest["validation"]["curve"]
    scores = {s["name"]: s["value"] for s in receiver.scores()}
    assert scores == {
        "train_loss": pytest.approx(manifest["training"]["final_train_loss"]),
        "val_loss": pytest.approx(manifest["validation"]["loss"]),
    }


@pytest.mark.slow
def test_the_slm_reloads_the_adapter_and_answers(trained, smollm2):
    from slm_swap.backends.local_slm import LocalSLM
    from slm_swap.tracks.rows.definitions import get_track

    adapter = trained[0]
    rows = load_rows(REPO / "slm_swap" / "02_dataset" / TRACK / "test.jsonl", TRACK)[:2]
    slm = LocalSLM(smollm2, adapter=adapter, track=TRACK, max_new_tokens=16, batch_size=2, device="cpu")
    try:
        slm.prepare(rows)
        answers = [slm.answer(row) for row in rows]
        assert slm.describe()["adapter"] == str(adapter)
    finally:
        slm.close()
    assert all(isinstance(a.text, str) and a.usage["completion_tokens"] > 0 for a in answers)
    assert len([get_track(TRACK).score(a.text, row.completion) for a, row in zip(answers, rows)]) == 2


def load_tool():
    spec = importlib.util.spec_from_file_location("finetune_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(args: list[str], capsys) -> tuple[int, str]:
    tool = load_tool()
    code = tool.main(tool.build_parser().parse_args(args))
    return code, capsys.readouterr().err


@pytest.fixture()
def refusal_space(tmp_path, monkeypatch, langfuse_env) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_jsonl(tmp_path / "data" / TRACK / "train.jsonl", shortest_rows("train", 2))
    write_jsonl(tmp_path / "data" / TRACK / "val.jsonl", shortest_rows("val", 1))
    return tmp_path


@pytest.mark.parametrize(
    "decision, message",
    [
        (None, "decision.json does not exist, so no decision marks toolcall"),
        ({"toolcall": {"fine_tune": 0}}, "says fine_tune=0 for toolcall"),
    ],
)
def test_refused_without_a_decision_for_the_track(refusal_space, smollm2, capsys, decision, message):
    if decision is not None:
        (refusal_space / "decision.json").write_text(json.dumps({"delta": 0.02, "tracks": decision}))
    code, err = run_tool(tool_args(refusal_space, smollm2), capsys)
    assert code == 2 and message in err and "--force" in err
    assert not (refusal_space / "ft").exists()


def test_existing_adapter_is_kept_without_overwrite(refusal_space, smollm2, capsys):
    adapter = refusal_space / "ft" / f"adapter_{TRACK}"
    adapter.mkdir(parents=True)
    (adapter / "keep.txt").write_text("mine")
    code, err = run_tool(tool_args(refusal_space, smollm2, "--force"), capsys)
    assert code == 2 and "already exists and is kept; pass --overwrite" in err
    assert [p.name for p in adapter.iterdir()] == ["keep.txt"]


def test_missing_langfuse_settings_stop_the_run_before_training(refusal_space, smollm2, capsys, monkeypatch):
    for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"):
        monkeypatch.delenv(name, raising=False)
    code, err = run_tool(tool_args(refusal_space, smollm2, "--force"), capsys)
    assert code == 2 and "LANGFUSE_PUBLIC_KEY" in err


def test_malformed_split_is_named_with_its_row(refusal_space, smollm2, capsys):
    val = refusal_space / "data" / TRACK / "val.jsonl"
    val.write_text(val.read_text() + '{"prompt": "only a prompt"}\n')
    code, err = run_tool(tool_args(refusal_space, smollm2, "--force"), capsys)
    assert code == 2 and f"{val}: row 1 (line 2): expected exactly the keys" in err


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_missing_split_is_named_before_a_missing_model(refusal_space, capsys, split):
    # both are missing: the dataset is what the user asked to train on, so it is the one named (issue 30)
    missing = refusal_space / "data" / TRACK / f"{split}.jsonl"
    missing.unlink()
    code, err = run_tool(tool_args(refusal_space, refusal_space / "no-model", "--force"), capsys)
    assert (code, err) == (
        2,
        f"error: {missing}: dataset file not found; prepare it with `python tools/prepare_data.py`, or pass --dataset-dir\n",
    )


def test_a_base_that_does_not_load_in_4bit_is_refused(refusal_space, smollm2, capsys):
    broken = refusal_space / "broken-model"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        (broken / name).write_bytes((smollm2 / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    code, err = run_tool(tool_args(refusal_space, broken, "--force"), capsys)
    assert code == 2 and f"{broken}: the base model does not load in 4-bit NF4" in err
    assert not (refusal_space / "ft" / f"adapter_{TRACK}").exists()


def run_finetune_tool(root: Path, model: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *tool_args(root, model, *extra)], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_adapter_an_uninterrupted_run_trains(tmp_path, smollm2, langfuse_env):
    from safetensors.torch import load_file

    write_jsonl(tmp_path / "data" / TRACK / "train.jsonl", shortest_rows("train", 12))
    write_jsonl(tmp_path / "data" / TRACK / "val.jsonl", shortest_rows("val", 2))
    (tmp_path / "decision.json").write_text(json.dumps({"delta": 0.02, "tracks": {TRACK: {"fine_tune": 1, "reasons": ["test"]}}}))
    settings = ("--batch-size", "2", "--save-steps", "2")  # 6 optimizer steps, a checkpoint every 2
    whole = run_finetune_tool(tmp_path, smollm2, *settings, "--out-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    command = [sys.executable, str(TOOL), *tool_args(tmp_path, smollm2, *settings), "--out-dir", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = out / f"checkpoints_{TRACK}"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("checkpoint-*/trainer_state.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL  # killed mid-run, not finished
    assert not (out / f"adapter_{TRACK}").exists()

    refused = run_finetune_tool(tmp_path, smollm2, *settings, "--out-dir", str(out), "--resume", "--limit-rows", "10")
    assert refused.returncode == 2 and "was trained with a different knobs" in refused.stderr

    resumed = run_finetune_tool(tmp_path, smollm2, *settings, "--out-dir", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr
    manifests = [json.loads((folder / f"adapter_{TRACK}" / "training_manifest.json").read_text()) for folder in (tmp_path / "whole", out)]
    assert [m["training"]["optimizer_steps"] for m in manifests] == [6, 6]
    resumed_from = manifests[1]["training"]["resumed_from_step"]
    assert resumed_from in (2, 4) and manifests[1]["training"]["steps_this_session"] == 6 - resumed_from
    a, b = (load_file(folder / f"adapter_{TRACK}" / "adapter_model.safetensors") for folder in (tmp_path / "whole", out))
    assert a.keys() == b.keys()
    for name in a:
        assert torch_allclose(a[name], b[name]), name
    assert manifests[1]["validation"]["loss"] == pytest.approx(manifests[0]["validation"]["loss"], abs=1e-5)


def torch_allclose(x, y) -> bool:
    import torch

    return torch.allclose(x.float(), y.float(), rtol=1e-4, atol=1e-6)
