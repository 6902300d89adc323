"""Fine-tuning benchmarks behind `tools/bench_finetune.py`: QLoRA throughput of one backend, and task quality of a
base model and base + adapter on the same rows. Both take the command's parsed flags and return a JSON-ready dict.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from slm_swap.layout import split_path

PHI4_MINI = {
    "architectures": ["Phi3ForCausalLM"],
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_hidden_layers": 32,
    "num_attention_heads": 24,
    "num_key_value_heads": 8,
    "vocab_size": 200064,
    "partial_rotary_factor": 0.75,
    "tie_word_embeddings": True,
    "max_position_embeddings": 4096,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "bos_token_id": 199999,
    "eos_token_id": 199999,
    "pad_token_id": 199999,
}


def build_random_phi4(out: Path, tokenizer_dir: Path) -> Path:
    """Random Phi-4-mini-architecture weights in bf16, saved as an ordinary checkpoint folder."""
    import torch
    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    if (out / "config.json").is_file():
        return out
    config = Phi3Config(**{k: v for k, v in PHI4_MINI.items() if k != "architectures"})
    with torch.device("cuda"):
        model = Phi3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def throughput(args: argparse.Namespace) -> dict:
    import torch

    from slm_swap.finetune.config import RECIPE, Knobs
    from slm_swap.finetune.data import end_of_turn_id, prepare_split, stop_token_ids
    from slm_swap.finetune.unsloth_backend import import_unsloth

    if args.backend == "unsloth":
        import_unsloth()
    from transformers import AutoTokenizer

    from slm_swap.finetune.hf import load_hf_model, lora_target_modules
    from slm_swap.finetune.trainer import train

    model_path = (
        build_random_phi4(Path(args.work_dir) / "phi4-mini-random", args.tokenizer) if args.arch == "phi4-mini" else Path(args.arch)
    )
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    eot = end_of_turn_id(tokenizer, stop_token_ids(tokenizer, None))
    split = prepare_split(split_path(args.dataset_dir, args.track, "train"), args.track, tokenizer, eot, RECIPE.max_seq_length)
    knobs = Knobs(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens, seed=0, gradient_checkpointing=True)
    # Enough rows for the requested steps, from the shuffled plan the trainer itself makes.
    rows = split.rows[: min(len(split.rows), args.steps * args.batch_size)]
    device = torch.device("cuda", torch.cuda.current_device())
    loaded_at = time.perf_counter()
    targets = lora_target_modules(model_path)
    if args.backend == "unsloth":
        from slm_swap.finetune.unsloth_backend import load_unsloth_model

        loaded = load_unsloth_model(model_path, device, targets, True, 0)
    else:
        loaded = load_hf_model(model_path, device, targets, True, 0)
    load_s = time.perf_counter() - loaded_at
    train_split, val_split = replace(split, rows=rows), replace(split, rows=rows[: args.batch_size])
    result = train(loaded.model, tokenizer, train_split, val_split, knobs, loaded.forward_keys, Path(args.work_dir) / "bench-checkpoints")
    steady = result.steps[args.warmup_steps :]
    before = result.steps[args.warmup_steps - 1].tokens_seen if args.warmup_steps and steady else 0
    steady_tokens = steady[-1].tokens_seen - before if steady else 0
    steady_time = (
        steady[-1].elapsed_s - result.steps[args.warmup_steps - 1].elapsed_s if args.warmup_steps and steady else result.train_time_s
    )
    return {
        "backend": args.backend,
        "arch": args.arch,
        "device": torch.cuda.get_device_name(device),
        "knobs": asdict(knobs),
        "lora_targets": targets,
        "model_details": loaded.details,
        "load_s": round(load_s, 1),
        "steps": len(result.steps),
        "rows": len(rows),
        "tokens": result.train_tokens,
        "loss_tokens": train_split.n_loss_tokens,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "steady_tokens_per_s": round(steady_tokens / steady_time, 1) if steady_time > 0 else None,
        "peak_gib": round(max(result.peak_memory_bytes) / 2**30, 2),
        "first_loss": result.steps[0].train_loss,
        "last_loss": result.steps[-1].train_loss,
        "mean_tokens_per_step": round(result.train_tokens / len(result.steps)),
    }


def quality(args: argparse.Namespace) -> dict:
    from slm_swap.backends.local_slm import LocalSLM
    from slm_swap.data.rows import load_rows
    from slm_swap.scoring.metrics import compute_rates, count_failures
    from slm_swap.tracks.rows.definitions import get_track

    rows = load_rows(split_path(args.dataset_dir, args.track, args.split), args.track)[: args.limit]
    report = {"track": args.track, "split": args.split, "rows": len(rows), "model": str(args.model)}
    for label, adapter in (("base", None), ("adapter", args.adapter)):
        model = LocalSLM(args.model, adapter=adapter, track=args.track, max_new_tokens=args.max_new_tokens)
        started = time.perf_counter()
        model.prepare(rows)
        results = [get_track(args.track).score(model.answer(row).text, row.completion) for row in rows]
        report[label] = {
            "adapter": str(adapter) if adapter else None,
            "rates": compute_rates(get_track(args.track).checks, results),
            "failures": count_failures(results),
            "seconds": round(time.perf_counter() - started, 1),
        }
        model.close()
    return report
