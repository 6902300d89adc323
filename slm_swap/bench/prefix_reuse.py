"""Prefix reuse benchmark: the static engine driven through the agent test tasks' gold trajectories, with and
without keeping prompt prefixes between steps (slm_swap.engine.prefix_cache).

    python -m slm_swap.bench.prefix_reuse --model smollm2 --reuse on --tasks 200
    python -m slm_swap.bench.prefix_reuse --model phi4-random --reuse off --tasks 200 [--tokenizer DIR]

The gold policy runs over the first `--tasks` tasks of the agent test split (sandboxed episodes, no model); then
the local SLM is asked, step by step, for a reply to every open episode's chat as the gold episode had it at
that step (`--max-active` episodes open at once, as the episode runner keeps them), each reply forced to
`--new-tokens` tokens. The model's replies are thrown away: the chats follow the gold episode, so a
random-weight model sees real episode shapes. phi4-random is Phi-4-mini's architecture with random weights
(CUDA only; tokenizer from `--tokenizer`, by default SmolLM2's, whose ids fit its vocabulary).

Prints one JSON line: prompt tokens in all, prompt tokens prefilled and taken from kept prefixes, tasks/s, and
peak memory (CUDA allocated on a GPU, else the process's peak resident set), and a digest of every step's reply
(`replies_sha256`: equal with and without reuse when reuse changes no reply; `--replies FILE` writes them all).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import slm_swap
from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.backends.local_slm import LocalSLM
from slm_swap.bench.generation import build_random_phi4_mini, peak_memory_gib, reset_peak_memory
from slm_swap.layout import split_path

SMOLLM2 = "smollm2-135m-instruct"
Chat = list[dict[str, str]]


def step_chats(messages: Sequence[dict[str, str]]) -> list[Chat]:
    """The chat the policy was asked to answer at each step of an episode: everything before each assistant reply."""
    return [[dict(m) for m in messages[:index]] for index, message in enumerate(messages) if message["role"] == "assistant"]


def gold_episodes(arm: str, tasks: int, dataset_dir: Path, max_steps_per_turn: int = 10) -> list[list[Chat]]:
    """Every scorable task's step chats under the gold policy, for the first `tasks` tasks of the agent test split."""
    from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
    from slm_swap.tracks.agent.data.splits import load_split_tasks
    from slm_swap.tracks.agent.episodes.episode import EpisodeSettings, run_episodes
    from slm_swap.tracks.agent.episodes.gold import gold_policy
    from slm_swap.tracks.agent.episodes.scoring import ground_truth_rejection

    chosen = load_split_tasks(split_path(dataset_dir, "agent", "test"), load_multi_turn())[:tasks]
    scorable = [task for task in chosen if ground_truth_rejection(task) is None]
    settings = EpisodeSettings(arm, max_steps_per_turn)
    trajectories = run_episodes(scorable, gold_policy(arm, max_steps_per_turn), settings)
    return [step_chats(trajectory.messages) for trajectory in trajectories]


def read_episodes(path: Path) -> list[list[Chat]]:
    """The step chats of episodes written by `--write-episodes` (one messages list per episode, xz-compressed JSON)."""
    return [step_chats(messages) for messages in json.loads(lzma.decompress(path.read_bytes()))]


def write_episodes(path: Path, arm: str, tasks: int, dataset_dir: Path) -> int:
    """The gold episodes' messages, for a machine without BFCL's data or the sandbox (a GPU host): how many."""
    episodes = gold_episodes(arm, tasks, dataset_dir)
    messages = [episode[-1] + [{"role": "assistant", "content": ""}] if episode else [] for episode in episodes]
    path.write_bytes(lzma.compress(json.dumps(messages).encode("utf-8")))
    return len(messages)


def drive(slm: LocalSLM, episodes: Sequence[Sequence[Chat]], max_active: int) -> dict[str, Any]:
    """Every episode's step chats through `generate_chats`, the open episodes of a step in one call."""
    pending = list(range(len(episodes)))[::-1]
    active: dict[int, int] = {}  # episode -> its next step
    calls = prompt_tokens = 0
    replies: dict[tuple[int, int], str] = {}  # (episode, step) -> the reply, to compare runs with and without reuse
    started = time.perf_counter()
    while pending or active:
        while pending and len(active) < max_active:
            active[pending.pop()] = 0
        open_now = list(active)
        outputs = slm.generate_chats([episodes[e][active[e]] for e in open_now])
        calls += 1
        prompt_tokens += sum(output.prompt_tokens for output in outputs)
        for episode, output in zip(open_now, outputs, strict=True):
            replies[(episode, active[episode])] = output.text
            active[episode] += 1
            if active[episode] == len(episodes[episode]):
                del active[episode]
    seconds = time.perf_counter() - started
    texts = [replies[key] for key in sorted(replies)]
    digest = hashlib.sha256(json.dumps(texts).encode("utf-8")).hexdigest()
    return {"calls": calls, "prompt_tokens": prompt_tokens, "seconds": seconds, "replies_sha256": digest, "replies": texts}


def load_model(args: argparse.Namespace, scratch: Path) -> LocalSLM:
    smollm2 = ensure_checkpoint(SMOLLM2, Path(slm_swap.__file__).parent / "models" / SMOLLM2)
    path = smollm2 if args.model == "smollm2" else build_random_phi4_mini(scratch / "phi4-mini-random", args.tokenizer or smollm2)
    return LocalSLM(
        path,
        track="agent",
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        quantization=args.quantization,
        device=args.device,
        prefix_reuse=args.reuse == "on",
        prefix_cache_tokens=args.cache_tokens,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("smollm2", "phi4-random"), default="smollm2")
    p.add_argument("--reuse", choices=("on", "off"), default="on")
    p.add_argument("--tasks", type=int, default=200, help="the first N tasks of the agent test split")
    p.add_argument("--arm", choices=("toolcall", "codeact"), default="toolcall")
    p.add_argument("--new-tokens", type=int, default=48, help="tokens generated for every step (min = max)")
    p.add_argument("--max-active", type=int, default=200, help="episodes open at once")
    p.add_argument("--quantization", default="nf4")
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-tokens", type=int, default=None, help="the most prefix tokens kept (default: a share of free memory)")
    p.add_argument("--tokenizer", type=Path, default=None, help="phi4-random: tokenizer folder (default SmolLM2's)")
    p.add_argument("--dataset-dir", type=Path, default=Path(slm_swap.__file__).parent / "02_dataset")
    p.add_argument("--episodes", type=Path, default=None, help="read the gold episodes from this file (--write-episodes)")
    p.add_argument("--replies", type=Path, default=None, help="write every step's reply to this JSON file (to compare runs)")
    p.add_argument("--write-episodes", type=Path, default=None, help="run the gold episodes, write them to this .json.xz file and stop")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.write_episodes is not None:
        count = write_episodes(args.write_episodes, args.arm, args.tasks, args.dataset_dir)
        print(json.dumps({"arm": args.arm, "episodes": count, "path": str(args.write_episodes)}))
        return 0
    episodes = read_episodes(args.episodes)[: args.tasks] if args.episodes else gold_episodes(args.arm, args.tasks, args.dataset_dir)
    with tempfile.TemporaryDirectory() as scratch:
        slm = load_model(args, Path(scratch))
        slm.generate_chats([[{"role": "user", "content": "Hello."}]])  # warm-up: kernels, lazy initialisation
        warm = slm.prefill_counts()
        reset_peak_memory(slm)
        run = drive(slm, episodes, args.max_active)
        replies = run.pop("replies")
        if args.replies is not None:
            args.replies.write_text(json.dumps(replies), encoding="utf-8")
        counts = slm.prefill_counts()
        result = {
            "model": args.model,
            "reuse": args.reuse,
            "arm": args.arm,
            "tasks": len(episodes),
            "steps": sum(map(len, episodes)),
            "new_tokens": args.new_tokens,
            **run,
            "prefill_tokens": counts["prefill_tokens"] - warm["prefill_tokens"],
            "reused_tokens": counts["reused_tokens"] - warm["reused_tokens"],
            "evicted_blocks": counts.get("evicted_blocks", 0),
            "tasks_per_s": len(episodes) / run["seconds"],
            "peak_memory_gib": round(peak_memory_gib(slm), 3),
            "device": str(slm.device),
            "quantization": args.quantization,
        }
        slm.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
