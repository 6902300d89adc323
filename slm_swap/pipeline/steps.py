"""The whole pipeline in order: prepare, evaluate hosted and SLM, decide, fine-tune, re-evaluate, report.

Each step is skipped when its outputs are the ones it wrote for the same inputs (see state),
unless `fresh`. A failing step stops the pipeline with that step's error; earlier
outputs stay as they are. Evaluations run as pytest subprocesses, exactly as a user
would run them, so their progress, traces and metric files are the harness's own; the
other steps run `python -m slm_swap.cli.<name>` as processes of their own, so what one step sets in its
environment (HF_HUB_OFFLINE, NCCL_*) never reaches the next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap.files import write_json_atomic
from slm_swap.layout import (
    ADAPTER_CONFIG,
    Layout,
    adapter_dir,
    dataset_manifest_path,
    decision_path,
    metric_path,
    pipeline_state_path,
    route_path,
    run_name,
    split_path,
)
from slm_swap.options import DELTA, MAX_CONNECTIONS, MAX_NEW_TOKENS
from slm_swap.pipeline.state import PipelineState, file_hash_or_missing, fingerprint, folder_hash
from slm_swap.tracks.rows.definitions import TRACK_NAMES

PIPELINE_TOOLS = ("prepare_data", "decide", "route", "finetune", "report")
ToolRunner = Callable[[list[str]], int]  # runs one tool with an argv, returns its exit status


def verdict_lines(decision: Mapping[str, Any]) -> list[str]:
    """The pipeline's closing lines: each track's verdict in words, and what fine-tuning it did."""
    lines = []
    for track, entry in decision["tracks"].items():
        lines.append(f"{track}: {entry.get('verdict_text', 'no verdict recorded')}")
        gains = [
            f"{m} {v['after_gain']:+.3f} [{v['after_gain_ci95'][0]:+.3f}, {v['after_gain_ci95'][1]:+.3f}]"
            for m, v in entry["metrics"].items()
            if "after_gain" in v
        ]
        if gains:
            lines.append(f"{track}: fine-tuned vs base: {'; '.join(gains)}")
    return lines


class StepFailed(RuntimeError):
    """A pipeline step failed; the message names the step and its error."""


def tool_process(name: str, repo: Path, environ: Mapping[str, str]) -> ToolRunner:
    """Runs `python -m slm_swap.cli.<name> argv` as its own process in `environ`, the package imported from `repo`
    (first on PYTHONPATH, as `python tools/<name>.py` puts its clone first); its output goes to this terminal."""
    env = dict(environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    # -P (Python 3.11+): the working directory is not put ahead of `repo`, so another clone there is not imported
    command = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", f"slm_swap.cli.{name}"]

    def run(argv: list[str]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        return subprocess.run([*command, *argv], env=env).returncode

    return run


def tool_processes(repo: Path, environ: Mapping[str, str], names: Iterable[str] = PIPELINE_TOOLS) -> dict[str, ToolRunner]:
    return {name: tool_process(name, repo, environ) for name in names}


@dataclass(frozen=True)
class PipelineConfig:
    repo: Path
    slm_model_path: Path
    hosted_identity: dict[str, str]
    tracks: tuple[str, ...] = TRACK_NAMES
    limit: int | None = None
    train_limit: int | None = None
    delta: float = DELTA.default
    max_connections: int = MAX_CONNECTIONS.default  # `--max-connections`: only the hosted step takes it (its rule)
    workers: int = 1  # pytest-xdist workers of the hosted evaluation; 1: one process
    max_new_tokens: int = MAX_NEW_TOKENS.default
    fresh: bool = False
    force_finetune: bool = False
    prepare_args: tuple[str, ...] = ()
    finetune_args: tuple[str, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(self.repo)

    @property
    def eval_dir(self) -> Path:
        return self.layout.eval_dir

    @property
    def ft_dir(self) -> Path:
        return self.layout.ft_dir

    def dataset(self, track: str, split: str = "test") -> Path:
        return split_path(self.layout.dataset_dir, track, split)


def banner(text: str) -> None:
    print(f"\n==== {text} ====", flush=True)


class Pipeline:
    def __init__(self, config: PipelineConfig, tools: Mapping[str, ToolRunner] | None = None) -> None:
        self.config = config
        # name -> runner of that command with an argv; by default slm_swap.cli.<name> of the repo, each in its own process
        self.tools = tools if tools is not None else tool_processes(config.repo, config.environ)
        self.state = PipelineState.load(pipeline_state_path(config.eval_dir))
        # the steps this pipeline passed through, run or skipped: its report times these only (the state file also
        # holds the other loop's steps: v0's and Phase II's share it)
        self.step_names: list[str] = []

    def step(self, name: str, inputs: dict, outputs: list[Path], action: Callable[[], None]) -> bool:
        """Run `action` unless its outputs are the ones it wrote for the same inputs; True when it ran."""
        self.step_names.append(name)
        key = fingerprint(inputs)
        reason = "--fresh" if self.config.fresh else self.state.why_run(name, key)
        if reason is None:
            banner(f"{name}: skipped, outputs exist for the same inputs")
            return False
        banner(f"{name}: running ({reason})")
        started = time.monotonic()
        action()
        missing = [str(p) for p in outputs if not p.exists()]
        if missing:
            raise StepFailed(f"{name}: finished without writing {', '.join(missing)}")
        self.state.mark_done(name, key, outputs, time.monotonic() - started)
        print(f"{name}: done in {time.monotonic() - started:.1f} s", flush=True)
        return True

    def run_tool(self, name: str, argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
        status = self.tools[name](argv)
        if status not in ok:
            raise StepFailed(f"{name} {' '.join(argv)} exited with status {status}")

    def run_pytest(self, step: str, argv: list[str]) -> None:
        command = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-q", "--tb=no", "-rN", *argv]
        print("$ " + " ".join(command[2:]), flush=True)
        status = subprocess.run(command, cwd=self.config.repo, env=dict(self.config.environ)).returncode
        if status not in (0, 1):  # 1: some rows failed, which is what evaluation measures
            raise StepFailed(f"{step}: pytest exited with status {status} (see its output above)")

    def limit_args(self) -> list[str]:
        return ["--limit", str(self.config.limit)] if self.config.limit else []

    def slm_identity(self) -> str:
        return file_hash_or_missing(self.config.slm_model_path / "config.json") + folder_hash(
            self.config.slm_model_path / "tokenizer_config.json"
        )

    def prepare(self) -> None:
        cfg = self.config
        outputs = [dataset_manifest_path(cfg.layout.dataset_dir)] + [
            cfg.dataset(t, s) for t in TRACK_NAMES for s in ("train", "val", "test")
        ]
        self.step("prepare data", {"args": list(cfg.prepare_args)}, outputs, lambda: self.run_tool("prepare_data", list(cfg.prepare_args)))

    def evaluate(self, track: str, model: str, tag: str | None = None) -> Path:
        cfg = self.config
        name = run_name(track, model, tag)
        metric = metric_path(cfg.eval_dir, track, model, tag)
        argv = ["-k", track, f"--model={model}", "--max-new-tokens", str(cfg.max_new_tokens), *self.limit_args()]
        inputs: dict = {
            "dataset": file_hash_or_missing(cfg.dataset(track)),
            "limit": cfg.limit,
            "model": model,
            "max_new_tokens": cfg.max_new_tokens,
        }
        if MAX_CONNECTIONS.applies.holds({"--model": model}.get):
            inputs["hosted"] = cfg.hosted_identity
            # hosted calls wait on the network: one process with many connections, not xdist, unless asked
            argv += [MAX_CONNECTIONS.flag, str(cfg.max_connections)]
            argv += ["-n", str(cfg.workers)] if cfg.workers > 1 else []
        else:
            inputs["slm"] = self.slm_identity()
            adapter = adapter_dir(cfg.ft_dir, track)
            argv += ["--adapter", "auto" if tag else "none"]
            inputs["adapter"] = folder_hash(adapter) if tag else None
        if tag:
            argv += ["--tag", tag]
        self.step(f"evaluate {name}", inputs, [metric], lambda: self.run_pytest(f"evaluate {name}", argv))
        return metric

    def decide(self) -> Path:
        cfg = self.config
        decision = decision_path(cfg.eval_dir)
        metrics = [metric_path(cfg.eval_dir, t, m) for t in cfg.tracks for m in ("azure", "slm")]
        argv = self.decide_args()
        inputs = {"metrics": [file_hash_or_missing(p) for p in metrics], "delta": cfg.delta}
        self.step("decide", inputs, [decision], lambda: self.run_tool("decide", argv))
        return decision

    def fine_tune(self, track: str) -> None:
        cfg = self.config
        adapter = adapter_dir(cfg.ft_dir, track)
        argv = ["--track", track, "--overwrite", *cfg.finetune_args]
        argv += ["--limit-rows", str(cfg.train_limit)] if cfg.train_limit else []
        argv += ["--force"] if cfg.force_finetune else []
        inputs = {
            "train": file_hash_or_missing(cfg.dataset(track, "train")),
            "val": file_hash_or_missing(cfg.dataset(track, "val")),
            "slm": self.slm_identity(),
            "args": argv,
        }
        self.step(f"fine-tune {track}", inputs, [adapter / ADAPTER_CONFIG], lambda: self.run_tool("finetune", argv))

    def report(self) -> None:
        banner("report")
        times = self.config.eval_dir / "step_times.json"
        write_json_atomic(times, {k: v for k, v in self.state.wall_times().items() if k in self.step_names})
        self.run_tool("report", ["--eval-dir", str(self.config.eval_dir), "--ft-dir", str(self.config.ft_dir), "--step-times", str(times)])

    def run(self) -> dict[str, bool]:
        self.prepare()
        for track in self.config.tracks:
            self.evaluate(track, "azure")
        for track in self.config.tracks:
            self.evaluate(track, "slm")
        decision = json.loads(self.decide().read_text(encoding="utf-8"))
        self.route()
        marked = {t: bool(decision["tracks"][t]["fine_tune"]) or self.config.force_finetune for t in self.config.tracks}
        if not any(marked.values()):
            banner("the decision marks no track for fine-tuning (use --force-finetune to train anyway); its verdicts follow at the end")
        for track in (t for t, m in marked.items() if m):
            self.fine_tune(track)
            self.evaluate(track, "slm", tag="ft")
        if any(marked.values()):
            self.decide_after()
            self.route()  # again, with the SLM + adapter's runs beside the base's
        self.report()
        banner("verdicts")
        for line in verdict_lines(json.loads(decision_path(self.config.eval_dir).read_text(encoding="utf-8"))):
            print(line, flush=True)
        return marked

    def decide_after(self) -> None:
        """Decide again so decision.json carries the after-fine-tune metrics beside the before."""
        self.run_tool("decide", [*self.decide_args(), "--quiet"])
        self.state.refresh_outputs("decide")  # the decide step's own file, completed: not an output another run changed

    def route(self) -> None:
        """Partial swaps offline (tools/route.py): the share the SLM could serve behind the validator, per track."""
        cfg = self.config
        metrics = [metric_path(cfg.eval_dir, t, *run) for t in cfg.tracks for run in (("azure",), ("slm",), ("slm", "ft"))]
        inputs = {"metrics": [file_hash_or_missing(p) for p in metrics], "delta": cfg.delta}
        argv = ["--tracks", *cfg.tracks, "--delta", str(cfg.delta), "--eval-dir", str(cfg.eval_dir)]
        self.step("route", inputs, [route_path(cfg.eval_dir, t) for t in cfg.tracks], lambda: self.run_tool("route", argv))

    def decide_args(self) -> list[str]:
        cfg = self.config
        return ["--tracks", *cfg.tracks, "--delta", str(cfg.delta), "--eval-dir", str(cfg.eval_dir)]
