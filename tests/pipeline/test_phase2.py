"""The Phase II loop: its Langfuse spans, its task choice, and the offline demo end to end on a copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slm_swap.backends.checkpoints import ensure_checkpoint
from slm_swap.layout import AGENT_TRACK, agent_decision_path, agent_metric_path, teacher_capture_path
from slm_swap.pipeline.steps import PipelineConfig
from slm_swap.prompts import AGENT_ARMS
from slm_swap.tracing.client import settings_from_env
from slm_swap.tracing.receiver.server import LangfuseReceiver
from slm_swap.tracks.agent.data.bfcl_multi_turn import load_multi_turn
from slm_swap.tracks.agent.data.splits import load_split_tasks
from slm_swap.tracks.agent.definition import AGENT
from slm_swap.tracks.agent.loop.phase2 import Phase2Config, Phase2Pipeline
from slm_swap.tracks.agent.loop.tasks import pick_tasks
from slm_swap.tracks.agent.loop.trace import LoopTrace, StepSpan, record_loop

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
METADATA = "langfuse.observation.metadata."


def loop_spans(receiver: LangfuseReceiver, trace_name: str) -> list:
    """The step spans under the last loop root called `trace_name`, in start order."""
    roots = [s for s in receiver.spans() if s.name == trace_name and s.parent_span_id is None]
    assert roots, f"no {trace_name} trace among {sorted({s.name for s in receiver.spans()})}"
    root = roots[-1]
    return sorted((s for s in receiver.spans(root.trace_id) if s.parent_span_id == root.span_id), key=lambda s: s.start_time_ns)


def test_the_loop_trace_has_one_span_per_step_and_marks_the_step_that_stopped_it(langfuse_env: LangfuseReceiver):
    steps = [
        StepSpan("capture gold toolcall", "capture", 10.0, 11.0, skipped=True, inputs={"tasks": "abc"}),
        StepSpan("fine-tune agent_toolcall", "training", 11.0, 20.0, skipped=False, error="finetune exited with status 1"),
    ]
    loop = LoopTrace("phase2:test", 10.0, 20.5, {"arms": ["toolcall"]}, steps, error="finetune exited with status 1")
    record_loop(settings_from_env(os.environ), loop)
    spans = loop_spans(langfuse_env, "phase2:test")
    assert [s.name for s in spans] == ["capture gold toolcall", "fine-tune agent_toolcall"]
    assert [s.json_attribute(METADATA + "kind") for s in spans] == ["capture", "training"]
    assert [s.json_attribute(METADATA + "skipped") for s in spans] == [True, False]
    assert spans[1].attributes.get("langfuse.observation.level") == "ERROR" and spans[0].start_time_ns == 10_000_000_000


def test_the_loop_names_its_files_for_the_agent_track():
    assert AGENT.name == AGENT_TRACK  # slm_swap.layout sits below slm_swap.tracks.rows.definitions, so it keeps its own copy


def test_the_demo_picks_the_shortest_scorable_tasks_and_a_real_run_the_first():
    tasks = load_split_tasks(REPO / "slm_swap" / "02_dataset" / "agent" / "test.jsonl", load_multi_turn())
    shortest = pick_tasks(tasks, 3, "shortest")
    assert len(shortest) == 3 and not any(t.long_context for t in shortest)
    assert max(len(t.turns) for t in shortest) <= min(len(t.turns) for t in tasks if not t.long_context)
    assert pick_tasks(tasks, 3, "first") == tasks[:3] and pick_tasks(tasks, None, "first") == tasks
    with pytest.raises(ValueError, match="needs a number of tasks"):
        pick_tasks(tasks, None, "shortest")


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_a_real_run_captures_with_the_hosted_teacher_and_trains_what_it_evaluates_again(tmp_path: Path, langfuse_env):
    """The steps' command lines, with tools and pytest that only write their outputs; a second run runs none of them."""
    shutil.copytree(REPO / "slm_swap" / "02_dataset" / "agent", tmp_path / "slm_swap" / "02_dataset" / "agent")
    base = PipelineConfig(repo=tmp_path, slm_model_path=tmp_path / "no-model", hosted_identity={"endpoint": "x"}, limit=2, train_limit=1)
    config = Phase2Config(pipeline=base, langfuse=settings_from_env(os.environ), arms=("toolcall",))
    evals, calls = tmp_path / "slm_swap" / "05_eval", []

    def write(path: Path, text: str = "{}") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def pytest_run(step: str, argv: list[str]) -> None:
        calls.append(argv)
        model = option(argv, "--model") if "--model" in argv else next(a for a in argv if a.startswith("--model=")).split("=")[1]
        if "--capture-trajectories" in argv:
            return write(teacher_capture_path(evals, model, "toolcall"))
        write(agent_metric_path(evals, model, "toolcall", option(argv, "--tag") if "--tag" in argv else None))

    def tool(name: str):
        def run(argv: list[str]) -> int:
            calls.append([name, *argv])
            records = tmp_path / "slm_swap" / "02_dataset" / "agent_toolcall"
            if name == "build_trajectories":
                for file in ("train.jsonl", "val.jsonl", "manifest.json"):
                    write(records / file)
            elif name == "decide":
                write(
                    agent_decision_path(evals, "toolcall"),
                    json.dumps({"tracks": {"agent": {"fine_tune": 1, "arm": "toolcall", "metrics": {}}}}),
                )
            elif name == "finetune":
                write(Path(option(argv, "--out-dir")) / "adapter_agent_toolcall" / "adapter_config.json")
            return 0

        return run

    loop = Phase2Pipeline(config, tools={name: tool(name) for name in ("build_trajectories", "decide", "finetune", "report")})
    loop.steps.run_pytest = pytest_run
    assert loop.run() == {"toolcall": True}
    capture, hosted, before, after = calls[0], calls[2], calls[3], calls[6]
    assert "--capture-trajectories" in capture and "--model=azure" in capture and option(capture, "--max-connections") == "8"
    assert option(capture, "--out-dir").endswith("05_eval/teacher") and option(capture, "--dataset").endswith("agent_tasks_teacher.jsonl")
    assert "--model=azure" in hosted and option(hosted, "--dataset").endswith("agent_tasks_test.jsonl")
    assert option(before, "--adapter") == "none" and (option(after, "--adapter"), option(after, "--tag")) == ("auto", "ft")
    finetune = next(c for c in calls if c[0] == "finetune")
    assert option(finetune, "--track") == "agent_toolcall" and option(finetune, "--max-seq-len") == "8192"
    # trained because the arm's own decision marks it: the decision file is passed, never --force
    assert option(finetune, "--decision").endswith("decision_agent_toolcall.json") and "--force" not in finetune
    assert len((evals / "agent_tasks_test.jsonl").read_text().splitlines()) == 2
    calls.clear()
    Phase2Pipeline(config, tools={name: tool(name) for name in ("build_trajectories", "decide", "finetune", "report")}).run()
    assert [c[0] for c in calls] == ["decide", "report"]  # the decision's after-part and the report, nothing else


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--phase2"], "AZURE_"),  # a real run's teacher is the hosted model
        (["--phase2", "--demo", "--teacher", "azure"], "the offline demo asks no hosted model"),
        (["--phase2", "--teacher", "gold", "--samples", "2"], "the gold policy has one answer"),
    ],
)
def test_a_loop_without_its_teacher_stops_before_any_step(tmp_path: Path, argv: list[str], message: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "LANGFUSE_"))}
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "pipeline.py"), *argv], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as a fresh clone has it (tracked and new, unignored files; no built trajectories), plus the checkpoint."""
    root = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    source = ensure_checkpoint(MODEL, REPO / "slm_swap" / "models" / MODEL)
    (root / "slm_swap" / "models" / MODEL).symlink_to(source, target_is_directory=True)
    return root


def run_phase2_demo(clone: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}  # LANGFUSE_*: the test's receiver
    env.update(PYTHONPATH=str(clone))
    # the demo on 2 test tasks (one train and one val task for the teacher, so one training record per arm)
    command = [sys.executable, "tools/pipeline.py", "--phase2", "--demo", "--limit", "2", "--train-limit", "1", "--max-new-tokens", "32"]
    return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_phase2_demo_runs_the_loop_for_both_arms_and_skips_it_when_run_again(clone: Path, langfuse_env: LangfuseReceiver):
    first = run_phase2_demo(clone)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    evals, ft = clone / "slm_swap" / "05_eval", clone / "slm_swap" / "04_ft"
    for arm in AGENT_ARMS:
        records = clone / "slm_swap" / "02_dataset" / f"agent_{arm}"
        assert json.loads((records / "manifest.json").read_text())["counts"]["train"] == 1  # the gold teacher's one train task
        assert (evals / "teacher" / f"agent_gold_{arm}.trajectories.jsonl").is_file()
        adapter = ft / f"adapter_agent_{arm}"
        assert (adapter / "adapter_config.json").is_file()
        runs = {name: json.loads((evals / f"agent_{name}.json").read_text()) for name in (f"gold_{arm}", f"slm_{arm}", f"slm_{arm}_ft")}
        assert all(doc["n"] == 2 for doc in runs.values())
        assert runs[f"slm_{arm}_ft"]["written_observations"]["steps"] > 0  # the masking check counted every step
        # before: the base checkpoint; after: the same tasks with the arm's trained adapter applied
        assert runs[f"slm_{arm}"]["model_description"]["adapter"] is None
        assert runs[f"slm_{arm}_ft"]["model_description"]["adapter"] == str(adapter)
        decision = json.loads((evals / f"decision_agent_{arm}.json").read_text())["tracks"]["agent"]
        assert "after_gain" in decision["metrics"]["task_success_rate"]
    report = (evals / "report_phase2.md").read_text()
    assert "## Agent track: before and after fine-tuning" in report and "SLM \\+ adapter, after" in report
    assert all(f"### Arm ` {arm} `" in report for arm in AGENT_ARMS) and "not a model" in report
    assert "steps writing an observation" in report
    assert "What this demo proves" in first.stdout and "What it does not prove" in first.stdout
    spans = loop_spans(langfuse_env, "phase2:demo")
    kinds = {s.json_attribute(METADATA + "kind") for s in spans}
    assert {"capture", "filtering and building", "evaluation", "decision", "training", "report"} <= kinds
    assert "fine-tune agent_codeact" in [s.name for s in spans] and not any(s.json_attribute(METADATA + "skipped") for s in spans)

    second = run_phase2_demo(clone)
    assert second.returncode == 0, second.stderr[-3000:]
    for arm in AGENT_ARMS:
        for step in (f"capture gold {arm}", f"filter and build {arm}", f"evaluate agent_slm_{arm}", f"fine-tune agent_{arm}"):
            assert f"{step}: skipped" in second.stdout
    again = {s.name: s.json_attribute(METADATA + "skipped") for s in loop_spans(langfuse_env, "phase2:demo")}
    assert again["fine-tune agent_toolcall"] is True and again["evaluate agent_slm_codeact_ft"] is True
