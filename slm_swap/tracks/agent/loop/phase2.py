"""The Phase II loop, per arm: capture the teacher's trajectories on training tasks, verify and build training
records, evaluate the hosted side and the SLM on test tasks, decide, fine-tune, re-evaluate, report.

    Phase2Pipeline(Phase2Config(pipeline=PipelineConfig(...), arms=("codeact", "toolcall"), teacher="azure", ...)).run()

Every step is one of the project's own commands run as a process (`pytest evals -k agent ...`,
`tools/build_trajectories.py`, `tools/decide.py`, `tools/finetune.py`, `tools/report.py`), skipped, as in v0's
pipeline, when its outputs exist for the same inputs. The teacher is the hosted model (`azure`) in a real run, and
the gold policy (`gold`: BFCL's ground-truth calls with a fixed labelled thought, never a model) in the offline
demo, where it also stands as the hosted side of the comparison. The loop records its own Langfuse trace: a root
span and one span per step (`loop_trace`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.files import write_json_atomic
from slm_swap.finetune.config import MANIFEST_NAME, Knobs
from slm_swap.layout import (
    ADAPTER_CONFIG,
    adapter_dir,
    agent_decision_path,
    agent_metric_path,
    agent_task_list_path,
    phase2_report_path,
    phase2_step_times_path,
    split_path,
    teacher_capture_path,
    teacher_dir,
)
from slm_swap.options import MAX_STEPS_PER_TURN
from slm_swap.pipeline.state import file_hash_or_missing, folder_hash
from slm_swap.pipeline.steps import Pipeline, PipelineConfig, StepFailed, ToolRunner, banner, tool_processes, verdict_lines
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracing.client import LangfuseSettings, TraceRef
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.trajectory_build import MANIFEST, training_set_name
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.loop.tasks import write_task_list
from slm_swap.tracks.agent.loop.trace import LoopTrace, StepSpan, record_loop

PHASE2_TOOLS = ("build_trajectories", "decide", "finetune", "report")
GOLD = "gold"
GOLD_IDENTITY = {"model": GOLD, "note": "BFCL's ground-truth calls with a fixed labelled thought; not a model"}
AFTER_TAG = "ft"


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def metric_summary(path: Path) -> dict[str, Any]:
    doc = read_json(path)
    return {k: doc[k] for k in ("n", "metrics", "intervals", "mean_steps_per_task", "failures") if k in doc}


def build_summary(manifest: Path) -> dict[str, Any]:
    doc = read_json(manifest)
    return {k: doc[k] for k in ("counts", "dropped") if k in doc}


def decision_summary(decision: Path) -> dict[str, Any]:
    entry = read_json(decision).get("tracks", {}).get(AGENT.name, {})
    return {k: entry.get(k) for k in ("verdict", "verdict_text", "fine_tune")}


def training_summary(manifest: Path) -> dict[str, Any]:
    doc = read_json(manifest)
    training = doc.get("training", {})
    kept = ("rows_trained", "tokens", "loss_tokens", "train_time_s", "tokens_per_s", "final_train_loss")
    return {"training": {k: training.get(k) for k in kept}, "validation_loss": doc.get("validation", {}).get("loss")}


@dataclass(frozen=True)
class Phase2Config:
    pipeline: PipelineConfig  # limit: test tasks; train_limit: teacher tasks of each of train and val (None: all)
    langfuse: LangfuseSettings
    arms: tuple[str, ...] = AGENT_ARMS
    teacher: str = "azure"  # answers the training tasks and stands as the hosted side; gold only in the demo
    task_order: str = "first"  # first N of each split, or (demo) the N shortest: agent_tasks.pick_tasks
    max_steps_per_turn: int = MAX_STEPS_PER_TURN.default
    samples: int = 0  # the teacher's extra sampled trajectories per task (hosted only), beside the greedy one
    max_seq_len: int = 8192  # longest training trajectory kept, in tokens; longer ones are dropped with reasons
    trace_name: str = "phase2"


class Phase2Pipeline:
    def __init__(self, config: Phase2Config, tools: Mapping[str, ToolRunner] | None = None) -> None:
        self.config = config
        base = config.pipeline
        self.steps = Pipeline(base, tools if tools is not None else tool_processes(base.repo, base.environ, PHASE2_TOOLS))
        self.spans: list[StepSpan] = []
        self.trace: TraceRef | None = None
        self.eval_dir, self.dataset_dir, self.ft_dir = base.eval_dir, base.layout.dataset_dir, base.ft_dir

    def traced(
        self, name: str, kind: str, inputs: dict, outputs: list[Path], action: Callable[[], None], summary: Callable[[], dict]
    ) -> None:
        """One pipeline step (skipped on unchanged inputs) and its span."""
        started = time.time()
        try:
            ran = self.steps.step(name, inputs, outputs, action)
        except StepFailed as exc:
            self.spans.append(StepSpan(name, kind, started, time.time(), False, inputs, {}, str(exc)))
            raise
        self.spans.append(StepSpan(name, kind, started, time.time(), not ran, inputs, {"files": [str(p) for p in outputs], **summary()}))

    def common_args(self, arm: str) -> list[str]:
        steps, tokens = str(self.config.max_steps_per_turn), str(self.config.pipeline.max_new_tokens)
        return ["-k", AGENT.name, "--arm", arm, "--max-steps-per-turn", steps, "--max-new-tokens", tokens]

    def model_inputs(self, model: str) -> dict[str, Any]:
        if model == GOLD:
            return {"model": GOLD_IDENTITY}
        if model == "azure":
            return {"model": "azure", "hosted": self.config.pipeline.hosted_identity}
        return {"model": "slm", "slm": self.steps.slm_identity()}

    def model_args(self, model: str) -> list[str]:
        # hosted calls wait on the network: one process with many connections, as v0's pipeline asks
        return ["--max-connections", str(self.config.pipeline.max_connections)] if model == "azure" else []

    def task_lists(self) -> None:
        base, order, data = self.config.pipeline, self.config.task_order, load_multi_turn()
        teacher_splits = {"train": base.train_limit, "val": base.train_limit}
        teacher = write_task_list(self.dataset_dir, teacher_splits, order, agent_task_list_path(self.eval_dir, "teacher"), data)
        test = write_task_list(self.dataset_dir, {"test": base.limit}, order, agent_task_list_path(self.eval_dir, "test"), data)
        banner(f"tasks ({order} of each split): {len(teacher)} train and val tasks for the teacher, {len(test)} test tasks")
        print(f"teacher: {', '.join(teacher)}\ntest: {', '.join(test)}", flush=True)

    def capture(self, arm: str) -> None:
        cfg, tasks = self.config, agent_task_list_path(self.eval_dir, "teacher")
        out = teacher_capture_path(self.eval_dir, cfg.teacher, arm)
        argv = [*self.common_args(arm), f"--model={cfg.teacher}", "--dataset", str(tasks), "--capture-trajectories"]
        argv += ["--out-dir", str(teacher_dir(self.eval_dir)), *self.model_args(cfg.teacher)]
        argv += ["--samples", str(cfg.samples)] if cfg.samples else []
        inputs = {"tasks": file_hash_or_missing(tasks), "argv": argv, **self.model_inputs(cfg.teacher)}
        name = f"capture {cfg.teacher} {arm}"
        self.traced(name, "capture", inputs, [out], functools.partial(self.steps.run_pytest, name, argv), dict)

    def build(self, arm: str) -> None:
        capture, records = teacher_capture_path(self.eval_dir, self.config.teacher, arm), self.dataset_dir / training_set_name(arm)
        argv = ["--arm", arm, "--inputs", str(capture), "--dataset-dir", str(self.dataset_dir)]
        splits = [file_hash_or_missing(split_path(self.dataset_dir, AGENT.name, s)) for s in ("train", "val", "test")]
        inputs = {"trajectories": file_hash_or_missing(capture), "splits": splits, "argv": argv}
        outputs = [records / "train.jsonl", records / "val.jsonl", records / MANIFEST]
        action = functools.partial(self.steps.run_tool, "build_trajectories", argv)
        summary = functools.partial(build_summary, records / MANIFEST)
        self.traced(f"filter and build {arm}", "filtering and building", inputs, outputs, action, summary)

    def evaluate(self, arm: str, model: str, tag: str | None = None) -> None:
        tasks, metric = agent_task_list_path(self.eval_dir, "test"), agent_metric_path(self.eval_dir, model, arm, tag)
        argv = [*self.common_args(arm), f"--model={model}", "--dataset", str(tasks), *self.model_args(model)]
        inputs = {"tasks": file_hash_or_missing(tasks), **self.model_inputs(model)}
        if model == "slm":
            argv += ["--adapter", "auto" if tag else "none"]
            inputs["adapter"] = folder_hash(adapter_dir(self.ft_dir, training_set_name(arm))) if tag else None
        argv += ["--tag", tag] if tag else []
        inputs["argv"] = argv
        name = f"evaluate {metric.stem}"
        action, summary = functools.partial(self.steps.run_pytest, name, argv), functools.partial(metric_summary, metric)
        self.traced(name, "evaluation", inputs, [metric], action, summary)

    def decide_args(self, arm: str) -> list[str]:
        cfg, out = self.config, str(agent_decision_path(self.eval_dir, arm))
        argv = ["--tracks", AGENT.name, "--arm", arm, "--hosted-model", cfg.teacher, "--after-tag", AFTER_TAG]
        return argv + ["--delta", str(cfg.pipeline.delta), "--eval-dir", str(self.eval_dir), "--output", out]

    def decide(self, arm: str) -> bool:
        """Whether the arm's decision marks it for fine-tuning."""
        metrics = [agent_metric_path(self.eval_dir, m, arm) for m in (self.config.teacher, "slm")]
        argv, decision = self.decide_args(arm), agent_decision_path(self.eval_dir, arm)
        inputs = {"metrics": [file_hash_or_missing(p) for p in metrics], "argv": argv}
        action, summary = functools.partial(self.steps.run_tool, "decide", argv), functools.partial(decision_summary, decision)
        self.traced(f"decide {arm}", "decision", inputs, [decision], action, summary)
        return bool(decision_summary(decision).get("fine_tune"))

    def fine_tune(self, arm: str, decided: bool) -> None:
        """Train the arm's records; `decided`: its decision file marks it (else --force-finetune asked for it)."""
        cfg, track = self.config, training_set_name(arm)
        records, adapter = self.dataset_dir / track, adapter_dir(self.ft_dir, track)
        gate = ["--decision", str(agent_decision_path(self.eval_dir, arm))] if decided else ["--force"]
        argv = ["--track", track, *gate, "--overwrite", "--max-seq-len", str(cfg.max_seq_len)]
        argv += ["--max-batch-tokens", str(cfg.max_seq_len)] if cfg.max_seq_len > Knobs().max_batch_tokens else []
        argv += ["--dataset-dir", str(self.dataset_dir), "--out-dir", str(self.ft_dir), *cfg.pipeline.finetune_args]
        inputs = {
            "train": file_hash_or_missing(records / "train.jsonl"),
            "val": file_hash_or_missing(records / "val.jsonl"),
            "slm": self.steps.slm_identity(),
            "argv": argv,
        }
        action = functools.partial(self.steps.run_tool, "finetune", argv)
        summary = functools.partial(training_summary, adapter / MANIFEST_NAME)
        self.traced(f"fine-tune {track}", "training", inputs, [adapter / ADAPTER_CONFIG], action, summary)

    def decide_after(self, arm: str) -> None:
        """Decide again so the arm's decision carries the fine-tuned SLM's rates and paired gain beside the before."""
        started = time.time()
        self.steps.run_tool("decide", [*self.decide_args(arm), "--quiet"])
        self.steps.state.refresh_outputs(f"decide {arm}")  # the decide step's own file, completed
        self.spans.append(StepSpan(f"decide {arm} after fine-tuning", "decision", started, time.time(), False))

    def report(self) -> Path:
        banner("report")
        names = {s.name for s in self.spans}
        times = phase2_step_times_path(self.eval_dir)
        write_json_atomic(times, {k: v for k, v in self.steps.state.wall_times().items() if k in names})
        out = phase2_report_path(self.eval_dir)
        argv = ["--eval-dir", str(self.eval_dir), "--ft-dir", str(self.ft_dir), "--step-times", str(times), "--out", str(out)]
        argv += ["--hosted-model", self.config.teacher, "--after-tag", AFTER_TAG, "--agent-only"]
        for arm in self.config.arms:
            argv += ["--agent-decision", arm, str(agent_decision_path(self.eval_dir, arm))]
        started = time.time()
        self.steps.run_tool("report", argv)
        self.spans.append(StepSpan("report", "report", started, time.time(), False, {}, {"files": [str(out)]}))
        return out

    def loop(self) -> dict[str, bool]:
        cfg = self.config
        self.task_lists()
        for arm in cfg.arms:
            self.capture(arm)
        for arm in cfg.arms:
            self.build(arm)
        for model in (cfg.teacher, "slm"):
            for arm in cfg.arms:
                self.evaluate(arm, model)
        decided = {arm: self.decide(arm) for arm in cfg.arms}
        marked = {arm: decided[arm] or cfg.pipeline.force_finetune for arm in cfg.arms}
        for arm in (a for a, m in marked.items() if m):
            self.fine_tune(arm, decided[arm])
            self.evaluate(arm, "slm", tag=AFTER_TAG)
            self.decide_after(arm)
        if not any(marked.values()):
            banner("no arm is marked for fine-tuning (use --force-finetune to train anyway)")
        self.report()
        banner("verdicts")
        for arm in cfg.arms:
            for line in verdict_lines(read_json(agent_decision_path(self.eval_dir, arm))):
                print(f"{arm} arm, {line}", flush=True)
        return marked

    def run(self) -> dict[str, bool]:
        """The loop, then its Langfuse trace (also when a step stopped it; the StepFailed is raised after)."""
        started = time.time()
        try:
            marked = self.loop()
        except StepFailed as exc:
            self.record(started, str(exc))
            raise
        self.record(started, None)
        return marked

    def record(self, started: float, error: str | None) -> None:
        cfg = self.config
        base = cfg.pipeline
        settings = {"arms": list(cfg.arms), "teacher": cfg.teacher, "task_order": cfg.task_order, "limit": base.limit}
        settings |= {"train_limit": base.train_limit, "max_steps_per_turn": cfg.max_steps_per_turn, "slm": str(base.slm_model_path)}
        loop = LoopTrace(cfg.trace_name, started, time.time(), settings, tuple(self.spans), error)
        self.trace = record_loop(cfg.langfuse, loop)
        print(f"loop trace ({len(self.spans)} step spans): {self.trace.url}", flush=True)
