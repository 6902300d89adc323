"""The evaluation harness's pytest plugin.

It adds the options, parametrises each evals test with one case per dataset row,
and, in the controlling process only, registers the run writer that collects each
row's record, writes the metric JSON and predictions JSONL, and applies the
regression gate. It never decides whether a row passes: the test does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from slm_swap import layout, options
from slm_swap.harness.context import CONTEXT_KEY, RunContext, run_context
from slm_swap.harness.environ import HiddenEnviron
from slm_swap.harness.gate import check_gate_track, load_reference_flags
from slm_swap.harness.records import ROW_PROPERTY, load_metric_file
from slm_swap.harness.selection import BROKEN_ID, pytest_collection_modifyitems  # noqa: F401 (hook)
from slm_swap.harness.settings import (
    ARM_CHOICES,
    ENGINE_CHOICES,
    GATE_RULE_CHOICES,
    MODEL_CHOICES,
    QUANTIZATION_CHOICES,
    EvalSettings,
    default,
    help_text,
)
from slm_swap.harness.startup import block_unused_plugins, freeze_startup_objects
from slm_swap.harness.stops import StopRelay, pytest_cmdline_main, pytest_runtest_setup, pytest_runtestloop  # noqa: F401 (hooks)
from slm_swap.harness.writer import RunWriter
from slm_swap.noise import silence_third_party_noise, warning_filter_lines
from slm_swap.tracks.registry import get_track


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slm_swap", "SLM Swap evaluation")
    group.addoption("--model", choices=MODEL_CHOICES, default=None, help=help_text("model"))
    group.addoption("--split", default=default("split"), help=help_text("split"))
    group.addoption("--dataset", type=Path, default=None, help=help_text("dataset"))
    group.addoption("--limit", type=int, default=None, help=help_text("limit"))
    group.addoption("--predictions", type=Path, default=None, help=help_text("predictions"))
    group.addoption("--tag", default=None, help=help_text("tag"))
    group.addoption("--out-dir", type=Path, default=None, help=help_text("out_dir"))
    group.addoption("--gate-against", type=Path, default=None, help=help_text("gate_against"))
    group.addoption("--delta", type=float, default=default("delta"), help=help_text("delta"))
    group.addoption("--gate-rule", choices=GATE_RULE_CHOICES, default=default("gate_rule"), help=help_text("gate_rule"))
    group.addoption("--adapter", default=default("adapter"), help=help_text("adapter"))
    group.addoption("--max-new-tokens", type=int, default=default("max_new_tokens"), help=help_text("max_new_tokens"))
    group.addoption("--batch-size", type=int, default=None, help=help_text("batch_size"))
    group.addoption("--engine", choices=ENGINE_CHOICES, default=default("engine"), help=help_text("engine"))
    group.addoption("--batch-invariant", action="store_true", help=help_text("batch_invariant"))
    group.addoption(
        "--check-batch-invariance", type=int, default=default("check_batch_invariance"), help=help_text("check_batch_invariance")
    )
    group.addoption("--quantization", choices=QUANTIZATION_CHOICES, default=default("quantization"), help=help_text("quantization"))
    group.addoption("--request-timeout", type=float, default=default("request_timeout_s"), help=help_text("request_timeout_s"))
    group.addoption("--max-retries", type=int, default=default("max_retries"), help=help_text("max_retries"))
    group.addoption("--row-budget", type=float, default=default("row_budget_s"), help=help_text("row_budget_s"))
    group.addoption("--circuit-threshold", type=int, default=default("circuit_threshold"), help=help_text("circuit_threshold"))
    group.addoption("--max-connections", type=int, default=default("max_connections"), help=help_text("max_connections"))
    group.addoption("--resume", action="store_true", help="reuse journalled answers: ask the model only for rows not yet answered")
    group.addoption("--retry-errors", action="store_true", help="reuse journalled answers except errors, which are asked again")
    group.addoption("--no-cache", action="store_true", help="neither read nor write the answer journal")
    group.addoption("--cache-dir", type=Path, default=None, help=help_text("cache_dir"))
    group.addoption("--max-error-rate", type=float, default=None, help=help_text("max_error_rate"))
    group.addoption("--arm", choices=ARM_CHOICES, default=default("arm"), help=help_text("arm"))
    group.addoption("--max-steps-per-turn", type=int, default=default("max_steps_per_turn"), help=help_text("max_steps_per_turn"))
    group.addoption("--max-active", type=int, default=default("max_active"), help=help_text("max_active"))
    group.addoption("--unsafe-local-executor", action="store_true", help=help_text("unsafe_local_executor"))
    group.addoption("--capture-trajectories", action="store_true", help=help_text("capture"))
    group.addoption("--samples", type=int, default=default("samples"), help=help_text("samples"))
    group.addoption("--temperature", type=float, default=default("temperature"), help=help_text("temperature"))


def check_options(opt: Any) -> None:
    """Refuse contradictory or out-of-range options before anything runs."""
    limit, max_error_rate = opt("--limit"), opt("--max-error-rate")
    if limit is not None and limit < 1:
        raise pytest.UsageError("--limit must be at least 1")
    if opt("--max-new-tokens") < 1:
        raise pytest.UsageError("--max-new-tokens must be at least 1")
    for name in ("--max-connections", "--max-steps-per-turn", "--max-active"):
        if opt(name) < 1:
            raise pytest.UsageError(f"{name} must be at least 1")
    if opt("--samples") < 0 or opt("--temperature") < 0:
        raise pytest.UsageError("--samples and --temperature must be >= 0")
    if opt("--delta") < 0:
        raise pytest.UsageError("--delta must be >= 0")
    if opt("--check-batch-invariance") < 0:
        raise pytest.UsageError("--check-batch-invariance must be at least 0")
    for spec in options.RULED:  # each option's rule is written once, beside the option (slm_swap/options.py)
        if (refusal := spec.refusal(opt)) is not None:
            raise pytest.UsageError(refusal)
    if opt("--model") == "replay" and opt("--predictions") is None:
        raise pytest.UsageError("--model=replay needs --predictions PATH")
    if opt("--no-cache") and (opt("--resume") or opt("--retry-errors")):
        raise pytest.UsageError("--no-cache cannot be combined with --resume or --retry-errors")
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise pytest.UsageError("--max-error-rate must be between 0 and 1")
    out_dir = opt("--out-dir")
    blocked = file_in_the_way(out_dir)
    if blocked is not None:
        where = "" if blocked == out_dir else f" {blocked}"
        raise pytest.UsageError(f"--out-dir {out_dir}:{where} is a file, not a folder")
    reference = None
    if opt("--gate-against") is not None:
        try:
            reference = load_metric_file(opt("--gate-against"))
        except ValueError as exc:
            raise pytest.UsageError(f"--gate-against: {exc}") from None
    if opt("--gate-rule") == "interval" or reference is not None:
        check_reference(opt("--gate-against"), reference, opt("--gate-rule"))


def check_reference(reference_path: Path | None, reference: dict[str, Any] | None, rule: str) -> None:
    """Both rules compare the reference run's rows, read from its predictions and checked against its metric file:
    they must be there, and agree, before any row runs."""
    if reference_path is None or reference is None:
        raise pytest.UsageError("--gate-rule interval needs --gate-against M.json")
    try:
        load_reference_flags(reference_path, reference)
    except ValueError as exc:
        raise pytest.UsageError(f"--gate-rule {rule}: {exc}") from None


def file_in_the_way(folder: Path | None) -> Path | None:
    """The nearest existing part of `folder` when it is not a folder (so the folder cannot be made)."""
    if folder is None:
        return None
    for part in (folder, *folder.parents):
        if part.exists():
            return None if part.is_dir() else part
    return None


# settings read straight from the option of the same meaning
DIRECT_OPTIONS = {
    "model": "--model",
    "split": "--split",
    "dataset": "--dataset",
    "limit": "--limit",
    "predictions": "--predictions",
    "tag": "--tag",
    "gate_against": "--gate-against",
    "delta": "--delta",
    "gate_rule": "--gate-rule",
    "max_error_rate": "--max-error-rate",
    "adapter": "--adapter",
    "max_new_tokens": "--max-new-tokens",
    "batch_size": "--batch-size",
    "quantization": "--quantization",
    "engine": "--engine",
    "batch_invariant": "--batch-invariant",
    "check_batch_invariance": "--check-batch-invariance",
    "request_timeout_s": "--request-timeout",
    "max_retries": "--max-retries",
    "row_budget_s": "--row-budget",
    "circuit_threshold": "--circuit-threshold",
    "max_connections": "--max-connections",
    "arm": "--arm",
    "max_steps_per_turn": "--max-steps-per-turn",
    "max_active": "--max-active",
    "unsafe_local_executor": "--unsafe-local-executor",
    "capture": "--capture-trajectories",
    "samples": "--samples",
    "temperature": "--temperature",
}


def settings_from_config(config: pytest.Config) -> EvalSettings:
    opt = config.getoption
    check_options(opt)
    paths = layout.Layout(config.rootpath)
    out_dir = Path(opt("--out-dir") or paths.eval_dir)
    return EvalSettings(
        **{name: opt(option) for name, option in DIRECT_OPTIONS.items()},
        out_dir=out_dir,
        dataset_dir=paths.dataset_dir,
        ft_dir=paths.ft_dir,
        cache_dir=None if opt("--no-cache") else Path(opt("--cache-dir") or layout.journal_dir(out_dir)),
        reuse="successes" if opt("--retry-errors") else "all" if opt("--resume") else "none",
        pytest_args=tuple(str(a) for a in config.invocation_params.args),
    )


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    silence_third_party_noise()
    for line in warning_filter_lines():  # pytest applies its own filters around each test, ours among them
        config.addinivalue_line("filterwarnings", line)
    settings = settings_from_config(config)
    if settings.model in ("slm", "routed") and (is_worker(config) or getattr(config.option, "numprocesses", None)):
        # one model per device: N workers would load N copies and fight over the GPU
        raise pytest.UsageError(
            f"--model={settings.model} cannot run under pytest-xdist (-n): the SLM batches all rows in one process; drop -n"
        )
    context = RunContext(settings, HiddenEnviron(os.environ))  # the environment is read here, at the edge
    config.stash[CONTEXT_KEY] = context
    if settings.model is not None:
        block_unused_plugins(config)  # an evaluation holds no property-based test (harness/startup.py)
    if not is_worker(config):
        config.pluginmanager.register(RunWriter(context), "slm_swap_run_writer")
        config.pluginmanager.register(StopRelay(), "slm_swap_stop_relay")  # a worker's stop stops the run here


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    name = getattr(metafunc.module, "TRACK", None)
    if name is None:
        return  # only evals modules (which set TRACK) get one case per case of their track
    track = get_track(name)
    if track.case_fixture in metafunc.fixturenames:
        track.parametrize(metafunc, run_context(metafunc.config))


def selected_tracks(items: list[pytest.Item]) -> list[str]:
    """The tracks whose cases survived -k and node ids, in collection order."""
    found = []
    for item in items:
        name = getattr(getattr(item, "module", None), "TRACK", None)
        callspec = getattr(item, "callspec", None)
        if name is not None and callspec is not None and get_track(name).case_fixture in callspec.params:
            found.append(name)
    return list(dict.fromkeys(found))


def pytest_collection_finish(session: pytest.Session) -> None:
    context = run_context(session.config)
    for item in session.items:
        track = getattr(getattr(item, "module", None), "TRACK", None)
        if track in context.broken and getattr(item, "callspec", None) and item.callspec.id == BROKEN_ID:
            raise pytest.UsageError(context.broken[track])
    tracks = selected_tracks(session.items)
    if tracks and context.settings.model is None:
        raise pytest.UsageError("choose the model that answers: --model=" + "|".join(MODEL_CHOICES))
    for track in tracks:
        refusal = get_track(track).refusal(str(context.settings.model))
        if refusal is not None:
            raise pytest.UsageError(refusal)
    if tracks and context.settings.gate_against is not None:
        check_gate_track(context.settings.gate_against, session.items, context.settings)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = run_context(config).settings
    if settings.model is None:
        return []
    source = str(settings.dataset) if settings.dataset else f"{settings.dataset_dir}/<track>/{settings.split}.jsonl"
    lines = [f"slm-swap: model={settings.model} dataset={source} limit={settings.limit or 'all'}"]
    lines.append(
        f"slm-swap: agent track: arm={settings.arm} max steps per turn={settings.max_steps_per_turn} episodes open={settings.max_active}"
    )
    lines.append(f"slm-swap: metric files -> {settings.out_dir}")
    if settings.check_batch_invariance:
        lines.append(f"slm-swap: batch invariance check: {settings.check_batch_invariance} rows generated again one at a time")
    if settings.gate_against:
        lines.append(f"slm-swap: gate against {settings.gate_against} with delta {settings.delta}, {settings.gate_rule} rule")
    return lines


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    """Under -v, a row whose answer took retries says so on its own line: `PASSED (retries rate_limit=2)`."""
    if report.when != "call" or report.outcome not in ("passed", "failed"):
        return None
    record = dict(report.user_properties).get(ROW_PROPERTY)
    if not record or not record.get("retries"):
        return None
    retries = " ".join(f"{name}={count}" for name, count in sorted(record["retries"].items()))
    letter = "." if report.passed else "F"
    return report.outcome, letter, (f"{report.outcome.upper()} (retries {retries})", {"green": report.passed, "red": report.failed})


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    freeze_startup_objects()
