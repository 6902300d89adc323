"""The controller's side of a run: gathers each track's records from reports, writes files, applies the gate.

Each track's part (its records, its metric document's own part, its predictions, its trace) comes from its
implementation of the track protocol (`slm_swap.tracks.registry.get_track`); this module never asks which track.

Registered by the plugin only in the controlling process (never in an xdist worker), so exactly
one process writes metric files, whatever `-n` is. It is handed the run's context (settings,
environment, selected rows) and imports nothing from the plugin.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest

from slm_swap.files import sha256_file, write_json_atomic, write_jsonl_atomic
from slm_swap.harness.context import RunContext
from slm_swap.harness.factory import ModelSetupError, check_model_config
from slm_swap.harness.gate import GateCheck, gate_passes, load_reference_flags, run_gate
from slm_swap.harness.records import METRIC_SCHEMA, load_metric_file
from slm_swap.harness.stops import stop_run
from slm_swap.harness.summary import run_summary_lines
from slm_swap.tracing.client import LangfuseSettings, TracingError, check_connection, settings_from_env
from slm_swap.tracks.protocol import CollectedRun
from slm_swap.tracks.registry import get_track, track_names

# the node id of one case: `evals/test_<track>.py::test_<track>[<case id>]`
CASE_NODE = re.compile(r"::test_(\w+)\[[^\]]+\]$")

SECRET_VARIABLES = ("AZURE_API_KEY",)


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class RunWriter:
    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.settings = context.settings
        self.runs: dict[str, CollectedRun] = {}  # track -> what its cases' reports carried
        self.started_at = utc_now()
        self.started_clock = time.monotonic()
        self.written: dict[str, dict[str, Any]] = {}
        self.gate: list[GateCheck] | None = None
        self.gate_error: str | None = None
        self.gate_warnings: list[str] = []
        self.error_rate_breaches: list[str] = []
        self.langfuse: LangfuseSettings | None = None
        self.langfuse_checked = False
        self.tracing_errors: list[str] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Langfuse is mandatory: check configuration and credentials before any row runs."""
        self.started_at = utc_now()
        self.started_clock = time.monotonic()
        if self.settings.model is None or session.config.option.collectonly:
            return
        try:
            check_model_config(self.settings, self.context.environ)
        except ModelSetupError as exc:
            raise pytest.UsageError(str(exc)) from None
        try:
            self.langfuse = settings_from_env(self.context.environ)
        except TracingError as exc:
            raise pytest.UsageError(f"Langfuse: {exc}") from None

    def check_langfuse(self) -> None:
        self.langfuse_checked = True
        try:
            check_connection(self.langfuse)
        except TracingError as exc:
            stop_run(f"Langfuse: {exc}")
        # the trace's modules (the SDK's exporter stack) load now, while a hosted run's requests are in flight,
        # not once the last answer is in (about 0.2 s at the end of a hosted run on the 2-core machine)
        import slm_swap.harness.trace  # noqa: F401

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """The keys are checked against Langfuse before any row's test runs: here, before any model works, except
        for a hosted model in one process, whose check waits until its first row's fixtures have sent the requests
        (`pytest_runtest_setup`): the SDK then loads and asks Langfuse while they are in flight, about 0.6 s off a
        hosted run on the 2-core machine (docs/benchmarks.md). With keys Langfuse refuses, those requests are the
        cost, and their answers stay in the journal for `--resume`; the run still stops before any row's test."""
        if self.langfuse is None or session.config.option.collectonly:
            return
        if self.settings.model == "azure" and not getattr(session.config.option, "numprocesses", None):
            return
        self.check_langfuse()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        result = yield
        if self.langfuse is not None and not self.langfuse_checked:
            self.check_langfuse()
        return result

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        match = CASE_NODE.search(report.nodeid)
        if match is None or match.group(1) not in track_names():
            return
        track = get_track(match.group(1))
        collected = track.collect(report)
        if collected is not None:
            self.runs.setdefault(track.name, CollectedRun()).add(collected)

    def metric_document(self, track: str, run: CollectedRun, finished_at: str) -> dict[str, Any]:
        """The run's identity and timing around the track's own part (`Track.metric_part`)."""
        settings = self.settings
        dataset = settings.dataset_path(track)
        return {
            "schema": METRIC_SCHEMA,
            "track": track,
            "model": settings.model,
            "tag": settings.tag,
            "split": settings.split_name(),
            **get_track(track).metric_part(run, settings, self.context),
            "dataset": {"path": str(dataset), "sha256": sha256_file(dataset)},
            "model_description": dict(run.model),
            "started_at": self.started_at,
            "finished_at": finished_at,
            "duration_s": round(time.monotonic() - self.started_clock, 3),
            "pytest_args": list(settings.pytest_args),
            "predictions_path": str(settings.predictions_path(track)),
        }

    def trace(self, document: dict[str, Any], run: CollectedRun) -> dict[str, Any]:
        if self.langfuse is None:
            return {"error": "Langfuse was not configured for this run"}
        environ = self.context.environ
        secrets = [environ[name] for name in SECRET_VARIABLES if environ.get(name)]
        track = document["track"]
        try:
            ref = get_track(track).trace(self.langfuse, self.settings, document, run, self.context, secrets)
        except TracingError as exc:
            self.tracing_errors.append(f"{track}: {exc}")
            return {"error": str(exc)}
        return {"trace_id": ref.trace_id, "trace_url": ref.url}

    def write_files(self) -> None:
        finished_at = utc_now()
        for name in sorted(self.runs):
            track, run = get_track(name), self.runs[name]
            document = self.metric_document(name, run, finished_at)
            document["langfuse"] = self.trace(document, run)
            # predictions first, metrics last: a metric file on disk means its run finished
            write_jsonl_atomic(self.settings.predictions_path(name), track.prediction_lines(run.sorted_records()))
            track.write_more(run, self.settings, document)
            write_json_atomic(self.settings.metric_path(name), document)
            self.written[name] = document

    def apply_gate(self, session: pytest.Session) -> None:
        settings = self.settings
        try:
            reference = load_metric_file(settings.gate_against)
            track = reference["track"]
            if track not in self.written:
                raise ValueError(f"{settings.gate_against}: reference is for track {track!r}, which this run did not evaluate")
            reference_flags = load_reference_flags(settings.gate_against, reference)
            current = get_track(track).flags(self.runs[track].records)
            rule, metrics = settings.gate_rule, self.written[track]["metrics"]
            self.gate, self.gate_warnings = run_gate(track, rule, reference, reference_flags, current, metrics, settings.delta)
        except ValueError as exc:
            self.gate_error = str(exc)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            return
        session.exitstatus = pytest.ExitCode.OK if gate_passes(self.gate) else pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not self.runs:
            return  # interrupted or broken runs leave no file that looks complete
        self.write_files()
        if self.settings.gate_against is not None:
            self.apply_gate(session)
        self.apply_max_error_rate(session)
        if self.tracing_errors:
            # metric files are written, but a run whose trace was lost is not a success
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def apply_max_error_rate(self, session: pytest.Session) -> None:
        limit = self.settings.max_error_rate
        if limit is None:
            return
        for track, doc in self.written.items():
            share = doc["errors"] / doc["n"] if doc["n"] else 0.0
            if share > limit:
                self.error_rate_breaches.append(
                    f"{track}: {doc['errors']} of {doc['n']} rows are errors ({share:.1%} > {limit:.1%}); classes {doc['error_classes']}"
                )
        if self.error_rate_breaches:
            # an outage must never read as a bad model, nor pass a gate
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written and not self.gate_error:
            return
        tr = terminalreporter
        tr.section("slm-swap metrics")
        for track, doc in self.written.items():
            for line in run_summary_lines(doc, self.settings.metric_path(track)):
                tr.write_line(line)
        for failure in self.tracing_errors:
            tr.write_line(f"LANGFUSE FAILED, the run is not recorded: {failure}", red=True, bold=True)
        for breach in self.error_rate_breaches:
            tr.write_line(f"max error rate exceeded: {breach}", red=True)
        if self.gate_error:
            tr.write_line(f"gate: error: {self.gate_error}", red=True)
        elif self.gate is not None:
            for check in self.gate:
                tr.write_line(check.summary())
            for warning in self.gate_warnings:
                tr.write_line(f"gate: warning: {warning}", yellow=True)
            tr.write_line(
                "gate: PASSED (exit status follows the metrics)" if gate_passes(self.gate) else "gate: FAILED",
                green=gate_passes(self.gate),
                red=not gate_passes(self.gate),
            )
