"""The evaluation harness's pytest plugin.

It adds the options, parametrises each evals test with one case per dataset row,
and, in the controlling process only, collects each row's record from its test
report, writes the metric JSON and predictions JSONL, and applies the regression
gate. It never decides whether a row passes: the test does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data.rows import DatasetError, Row, load_rows
from slm_swap.harness.records import ROW_PROPERTY, error_record
from slm_swap.harness.settings import EvalSettings
from slm_swap.harness.writer import RunWriter

MODEL_PROPERTY = "slm_swap_model"
MODEL_CHOICES = ("azure", "slm", "replay")
SETTINGS_KEY = pytest.StashKey[EvalSettings]()
ROWS_KEY = pytest.StashKey[dict]()
BROKEN_KEY = pytest.StashKey[dict]()
BROKEN_ID = "dataset-error"
ROW_NODE = re.compile(r"::test_(structured|toolcall)\[([^\]]+)\]$")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slm_swap", "SLM Swap evaluation")
    group.addoption("--model", choices=MODEL_CHOICES, default=None, help="which model answers the rows")
    group.addoption("--split", default="test", help="dataset split: train, val or test (default test)")
    group.addoption("--dataset", type=Path, default=None, help="evaluate another JSONL file in the row format")
    group.addoption("--limit", type=int, default=None, help="evaluate only the first N rows of the split")
    group.addoption("--predictions", type=Path, default=None, help="predictions JSONL for --model=replay")
    group.addoption("--tag", default=None, help="suffix of the metric file: <track>_<model>_<tag>.json")
    group.addoption("--out-dir", type=Path, default=None, help="where metric files go (default slm_swap/05_eval)")
    group.addoption("--gate-against", type=Path, default=None, help="reference metric file: exit status follows the gate")
    group.addoption("--delta", type=float, default=0.02, help="largest allowed drop of a core metric under the gate")
    group.addoption("--adapter", default="none", help="SLM adapter: PATH, auto (slm_swap/04_ft/adapter_<track> if present) or none")
    group.addoption("--max-new-tokens", type=int, default=256, help="output-token cap, the same for every model (default 256)")
    group.addoption("--batch-size", type=int, default=None, help="SLM batch size (default: chosen from free memory; 8 on CPU)")
    group.addoption(
        "--engine",
        choices=("static", "padded", "continuous"),
        default="static",
        help="SLM generation engine (default static: static KV cache, CUDA graphs on CUDA)",
    )
    group.addoption("--quantization", choices=("nf4", "none"), default="nf4", help="SLM weights: 4-bit NF4 (default) or unquantised")
    group.addoption("--request-timeout", type=float, default=60.0, help="hosted request timeout in seconds")
    group.addoption("--max-retries", type=int, default=5, help="hosted retries per row (429, 5xx, timeouts)")
    group.addoption("--row-budget", type=float, default=120.0, help="hosted seconds per row, retries and waits included")
    group.addoption("--circuit-threshold", type=int, default=10, help="stop the run after this many identical failures in a row")
    group.addoption("--resume", action="store_true", help="reuse journalled answers: ask the model only for rows not yet answered")
    group.addoption("--retry-errors", action="store_true", help="reuse journalled answers except errors, which are asked again")
    group.addoption("--no-cache", action="store_true", help="neither read nor write the answer journal")
    group.addoption("--cache-dir", type=Path, default=None, help="answer journal folder (default slm_swap/05_eval/cache)")
    group.addoption("--max-error-rate", type=float, default=None, help="fail the session when errors exceed this share of rows")


def settings_from_config(config: pytest.Config) -> EvalSettings:
    root = config.rootpath
    opt = config.getoption
    limit = opt("--limit")
    if limit is not None and limit < 1:
        raise pytest.UsageError("--limit must be at least 1")
    if opt("--max-new-tokens") < 1:
        raise pytest.UsageError("--max-new-tokens must be at least 1")
    if opt("--delta") < 0:
        raise pytest.UsageError("--delta must be >= 0")
    if opt("--model") == "replay" and opt("--predictions") is None:
        raise pytest.UsageError("--model=replay needs --predictions PATH")
    out_dir = Path(opt("--out-dir") or root / "slm_swap" / "05_eval")
    if opt("--no-cache") and (opt("--resume") or opt("--retry-errors")):
        raise pytest.UsageError("--no-cache cannot be combined with --resume or --retry-errors")
    max_error_rate = opt("--max-error-rate")
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise pytest.UsageError("--max-error-rate must be between 0 and 1")
    reuse = "successes" if opt("--retry-errors") else "all" if opt("--resume") else "none"
    return EvalSettings(
        model=opt("--model"),
        split=opt("--split"),
        dataset=opt("--dataset"),
        limit=limit,
        predictions=opt("--predictions"),
        tag=opt("--tag"),
        out_dir=out_dir,
        dataset_dir=root / "slm_swap" / "02_dataset",
        gate_against=opt("--gate-against"),
        delta=opt("--delta"),
        pytest_args=tuple(str(a) for a in config.invocation_params.args),
        cache_dir=None if opt("--no-cache") else Path(opt("--cache-dir") or out_dir / "cache"),
        reuse=reuse,
        max_error_rate=max_error_rate,
        adapter=opt("--adapter"),
        max_new_tokens=opt("--max-new-tokens"),
        batch_size=opt("--batch-size"),
        quantization=opt("--quantization"),
        engine=opt("--engine"),
        request_timeout_s=opt("--request-timeout"),
        max_retries=opt("--max-retries"),
        row_budget_s=opt("--row-budget"),
        circuit_threshold=opt("--circuit-threshold"),
        ft_dir=root / "slm_swap" / "04_ft",
    )


class HiddenEnviron(Mapping[str, str]):
    """The environment, read-only, printed without its values.

    The models are built from it, so it sits in the locals of every frame of a
    failed model setup, and `pytest -l` prints those locals: the API key with them.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    def __repr__(self) -> str:
        return f"<environment: {len(self)} variables, values hidden>"


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_from_config(config)
    if settings.model == "slm" and (is_worker(config) or getattr(config.option, "numprocesses", None)):
        # one model per device: N workers would load N copies and fight over the GPU
        raise pytest.UsageError("--model=slm cannot run under pytest-xdist (-n): the SLM batches all rows in one process; drop -n")
    config.stash[SETTINGS_KEY] = settings
    config.stash[ROWS_KEY] = {}
    config.stash[BROKEN_KEY] = {}
    if not is_worker(config):
        config.pluginmanager.register(RunWriter(settings), "slm_swap_run_writer")


def selected_rows(config: pytest.Config, track: str) -> list[Row]:
    """The rows of a track after --limit; loaded once per process."""
    cache = config.stash[ROWS_KEY]
    if track not in cache:
        settings = config.stash[SETTINGS_KEY]
        rows = load_rows(settings.dataset_path(track), track, settings.split_name())
        cache[track] = rows[: settings.limit] if settings.limit else rows
    return cache[track]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "row" not in metafunc.fixturenames:
        return
    track = getattr(metafunc.module, "TRACK", None)
    if track is None:
        return  # only evals modules (which set TRACK) get one case per dataset row
    try:
        rows = selected_rows(metafunc.config, track)
    except DatasetError as exc:
        # reported only if this track's case survives -k: `-k toolcall` must not
        # fail on a structured dataset it never reads
        metafunc.config.stash[BROKEN_KEY][track] = str(exc)
        metafunc.parametrize("row", [None], ids=[BROKEN_ID])
        return
    # an ordered list, so every xdist worker collects the same cases in the same order
    metafunc.parametrize("row", rows, ids=[row.id for row in rows])


def pytest_collection_finish(session: pytest.Session) -> None:
    settings = session.config.stash[SETTINGS_KEY]
    broken = session.config.stash[BROKEN_KEY]
    for item in session.items:
        track = getattr(getattr(item, "module", None), "TRACK", None)
        if track in broken and getattr(item, "callspec", None) and item.callspec.id == BROKEN_ID:
            raise pytest.UsageError(broken[track])
    has_rows = any("row" in getattr(item, "fixturenames", ()) for item in session.items)
    if has_rows and settings.model is None:
        raise pytest.UsageError("choose the model that answers: --model=" + "|".join(MODEL_CHOICES))


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[SETTINGS_KEY]
    if settings.model is None:
        return []
    source = str(settings.dataset) if settings.dataset else f"{settings.dataset_dir}/<track>/{settings.split}.jsonl"
    lines = [f"slm-swap: model={settings.model} dataset={source} limit={settings.limit or 'all'}"]
    lines.append(f"slm-swap: metric files -> {settings.out_dir}")
    if settings.gate_against:
        lines.append(f"slm-swap: gate against {settings.gate_against} with delta {settings.delta}")
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


def parse_row_node(nodeid: str) -> tuple[str, str] | None:
    match = ROW_NODE.search(nodeid)
    return (match.group(1), match.group(2)) if match else None


def record_from_report(report: pytest.TestReport) -> tuple[str, dict[str, Any], dict[str, Any] | None] | None:
    """The row record a test report carries; crashed or broken rows become error records."""
    parsed = parse_row_node(report.nodeid)
    if parsed is None:
        return None
    track, row_id = parsed
    props = dict(report.user_properties)
    if ROW_PROPERTY in props:
        return track, props[ROW_PROPERTY], props.get(MODEL_PROPERTY)
    if report.when == "???":  # how pytest-xdist reports the row a worker died on
        return track, error_record(track, row_id, "the worker process crashed on this row", "worker_crash"), None
    if report.when == "setup" and report.failed:
        message = str(report.longrepr).strip().splitlines()[-1] if report.longrepr else "setup failed"
        return track, error_record(track, row_id, message, "setup"), None
    return None
