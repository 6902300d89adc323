"""The pipeline routes after the decision and again after re-evaluation, when the SLM + adapter's runs are there;
a second pipeline on the same files skips it."""

from __future__ import annotations

import json
from pathlib import Path

from slm_swap.layout import ADAPTER_CONFIG, Layout, adapter_dir, decision_path, metric_path, route_path
from slm_swap.pipeline.steps import Pipeline, PipelineConfig


def pipeline(repo: Path, calls: list[tuple[str, list[str]]]) -> Pipeline:
    eval_dir, ft_dir = Layout(repo).eval_dir, Layout(repo).ft_dir

    def tool(name: str):
        def run(argv: list[str]) -> int:
            calls.append((name, argv))
            if name == "decide":
                decision = {"tracks": {"toolcall": {"fine_tune": 1, "verdict_text": "slm_trails: ...", "metrics": {}}}}
                decision_path(eval_dir).write_text(json.dumps(decision))
            elif name == "route":
                route_path(eval_dir, "toolcall").write_text(json.dumps({"runs": len(list(eval_dir.glob("toolcall_*.json")))}))
            elif name == "finetune":
                (adapter_dir(ft_dir, "toolcall") / ADAPTER_CONFIG).parent.mkdir(parents=True, exist_ok=True)
                (adapter_dir(ft_dir, "toolcall") / ADAPTER_CONFIG).write_text("{}")
            return 0

        return run

    steps = Pipeline(
        PipelineConfig(repo, repo / "model", {"model": "m"}, tracks=("toolcall",)),
        tools={name: tool(name) for name in ("decide", "route", "finetune", "report")},
    )

    def evaluate(track: str, model: str, tag: str | None = None) -> Path:
        path = metric_path(eval_dir, track, model, tag)
        path.write_text(json.dumps({"model": model, "tag": tag}))
        return path

    steps.prepare = lambda: None  # type: ignore[method-assign]
    steps.evaluate = evaluate  # type: ignore[method-assign]
    eval_dir.mkdir(parents=True, exist_ok=True)
    return steps


def test_route_runs_after_the_decision_and_again_after_re_evaluation(tmp_path):
    calls: list[tuple[str, list[str]]] = []
    pipeline(tmp_path, calls).run()
    assert [name for name, _ in calls] == ["decide", "route", "finetune", "decide", "route", "report"]
    route_argv = dict(calls)["route"]
    assert route_argv == ["--tracks", "toolcall", "--delta", "0.02", "--eval-dir", str(Layout(tmp_path).eval_dir)]
    # the second routing saw the SLM + adapter's metric file beside the hosted and base runs
    assert json.loads(route_path(Layout(tmp_path).eval_dir, "toolcall").read_text()) == {"runs": 3}


def test_route_is_skipped_when_its_runs_are_unchanged(tmp_path):
    calls: list[tuple[str, list[str]]] = []
    pipeline(tmp_path, calls).run()
    calls.clear()
    pipeline(tmp_path, calls).run()
    assert [name for name, _ in calls] == ["decide", "report"]  # the decision's after-part and the report, nothing else
