"""Fine-tuning benchmarks: QLoRA throughput per backend, and task quality before and after an adapter.

    # throughput of one backend (one process per backend: Unsloth patches transformers for the whole process)
    python tools/bench_finetune.py throughput --backend unsloth --arch phi4-mini \
        --tokenizer slm_swap/models/smollm2-135m-instruct --track toolcall --steps 40 --out bench_unsloth.json
    python tools/bench_finetune.py throughput --backend hf --arch phi4-mini ... --steps 12
    # task quality of the base model and of base + adapter on the same rows (greedy, slm_swap.backends.local_slm)
    python tools/bench_finetune.py quality --model slm_swap/models/smollm2-135m-instruct \
        --adapter slm_swap/04_ft/adapter_toolcall --track toolcall --split test --limit 200

`--arch phi4-mini` builds a random-weight model of Phi-4-mini-instruct's architecture on the
GPU (speed does not depend on weight values) and trains it on the real rows of the split,
tokenized by `--tokenizer` (token ids above that tokenizer's vocabulary never occur; the row
lengths and the prompt/completion split are the real ones). `--arch PATH` uses a checkpoint.
Throughput counts every token of the padding-free micro-batches (there is no padding);
`steady` leaves out the first `--warmup-steps` steps (kernel compilation, autotuning).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from slm_swap.layout import Layout, split_path  # noqa: E402

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("throughput", help="tokens/s and peak memory of one backend")
    speed.add_argument("--backend", choices=("unsloth", "hf"), required=True)
    speed.add_argument("--arch", default="phi4-mini", help="phi4-mini (random weights) or a checkpoint folder")
    speed.add_argument("--tokenizer", type=Path, required=True, help="tokenizer folder that sets the row lengths")
    speed.add_argument("--steps", type=int, default=40, help="optimizer steps to time")
    speed.add_argument("--warmup-steps", type=int, default=5, help="steps left out of the steady rate")
    speed.add_argument("--batch-size", type=int, default=8)
    speed.add_argument("--max-batch-tokens", type=int, default=8192)
    speed.add_argument("--work-dir", type=Path, default=Path("/tmp/slm_swap_bench"))
    for p in (speed, sub.add_parser("quality", help="pass rates of the base model and base + adapter")):
        p.add_argument("--track", default="toolcall")
        p.add_argument("--dataset-dir", type=Path, default=Layout(REPO).dataset_dir)
        p.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    good = sub.choices["quality"]
    good.add_argument("--model", type=Path, required=True)
    good.add_argument("--adapter", type=Path, required=True)
    good.add_argument("--split", default="test")
    good.add_argument("--limit", type=int, default=None)
    good.add_argument("--max-new-tokens", type=int, default=256)
    return parser


def main(args: argparse.Namespace) -> int:
    result = throughput(args) if args.command == "throughput" else quality(args)
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(build_parser().parse_args()))
