"""The hosted evaluation step asks pytest for many connections in one process; xdist only when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_swap.cli import pipeline as pipeline_tool
from slm_swap.layout import Layout, metric_path
from slm_swap.options import MAX_CONNECTIONS
from slm_swap.pipeline.steps import Pipeline, PipelineConfig, StepFailed


def hosted_argv(tmp_path: Path, **config) -> list[str]:
    """The pytest arguments of the hosted step, from a pipeline whose pytest only writes the metric file."""
    steps = Pipeline(PipelineConfig(repo=tmp_path, slm_model_path=tmp_path / "no-model", hosted_identity={}, **config), tools={})
    seen: list[list[str]] = []

    def fake_pytest(step: str, argv: list[str]) -> None:
        seen.append(argv)
        metric = metric_path(Layout(tmp_path).eval_dir, "toolcall", "azure")
        metric.parent.mkdir(parents=True, exist_ok=True)
        metric.write_text("{}", encoding="utf-8")

    steps.run_pytest = fake_pytest
    steps.evaluate("toolcall", "azure")
    (argv,) = seen
    return argv


def option_value(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_the_hosted_step_uses_8_connections_and_no_xdist_by_default(tmp_path: Path):
    argv = hosted_argv(tmp_path)
    assert option_value(argv, "--max-connections") == "8"
    assert "-n" not in argv


def test_the_hosted_step_passes_connections_and_workers_when_given(tmp_path: Path):
    argv = hosted_argv(tmp_path, max_connections=16, workers=4)
    assert option_value(argv, "--max-connections") == "16"
    assert option_value(argv, "-n") == "4"


def test_the_slm_step_takes_neither(tmp_path: Path):
    steps = Pipeline(PipelineConfig(repo=tmp_path, slm_model_path=tmp_path / "no-model", hosted_identity={}, max_connections=16), tools={})
    seen: list[list[str]] = []
    steps.run_pytest = lambda step, argv: seen.append(argv)
    with pytest.raises(StepFailed, match="finished without writing"):
        steps.evaluate("toolcall", "slm")
    assert "--max-connections" not in seen[0] and "-n" not in seen[0]


@pytest.mark.parametrize(
    ("argv", "connections", "workers"),
    [([], None, 1), (["--max-connections", "16"], 16, 1), (["-n", "4", "--max-connections", "4"], 4, 4)],
)
def test_the_pipeline_command_takes_max_connections_and_workers(argv: list[str], connections: int | None, workers: int):
    args = pipeline_tool.build_parser().parse_args(argv)
    assert (args.max_connections, args.workers) == (connections, workers)
    assert MAX_CONNECTIONS.default == 8 and pipeline_tool.DEMO_MAX_CONNECTIONS == 1
