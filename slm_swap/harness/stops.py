"""A run that cannot go on says so in one line beginning `error:`, and exits with the status that says why.

pytest prints a `pytest.exit` from inside a test as `!!! _pytest.outcomes.Exit: error: ... !!!` (and once more as
`Exit: ...` before the first test) and a `pytest.UsageError` as `ERROR: ...` and a blank line. A row's fixture cannot
raise a usage error (the runner makes any other exception that row's error), so it raises `RunStop` (an exit, which
passes through the runner), the plugin turns it into a `StoppedRun` (a usage error, which pytest hands on without
printing) once the test loop has unwound, and prints every usage error of the run, pytest's own among them, as one line.
Under pytest-xdist a worker cannot stop the run (an exit there crashes it): the row's setup fails carrying the stop
in its report, and the controller stops the run when that report arrives. The plugin module imports the hooks here,
so they are registered with it.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn, TextIO

import pytest

PREFIX = "error: "
STOP_PROPERTY = "slm_swap_stop"  # [message, exit status] of a stop met in an xdist worker


class RunStop(pytest.exit.Exception):
    """Raised where a test runs: the run stops with `message` and `returncode`."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message, returncode)
        self.message = message


class StoppedRun(pytest.UsageError):
    """A `RunStop` once the test loop has unwound: printed like any usage error, but with its own exit status."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode


def stop_run(message: str, returncode: int = pytest.ExitCode.USAGE_ERROR) -> NoReturn:
    """Stop the run from inside a test or a hook; `message` without the `error: ` that is printed before it."""
    raise RunStop(message, int(returncode))


def unwound(stop: RunStop) -> StoppedRun:
    return StoppedRun(stop.message, int(stop.returncode if stop.returncode is not None else pytest.ExitCode.INTERRUPTED))


def print_usage_error(error: pytest.UsageError, stream: TextIO | None = None) -> int:
    """Each message on its own line beginning `error: `; the exit status."""
    out = stream or sys.stderr
    for message in error.args or ("usage error",):
        text = str(message)
        out.write(f"{text if text.startswith(PREFIX) else PREFIX + text}\n")
    out.flush()
    return error.returncode if isinstance(error, StoppedRun) else int(pytest.ExitCode.USAGE_ERROR)


class StoppedInWorker(RuntimeError):
    """A stop met in a pytest-xdist worker: that row's setup fails with it, and its report carries the stop to the
    controller (`STOP_PROPERTY`), which stops the run there. An exit in a worker would crash it instead."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    try:
        return (yield)
    except RunStop as stop:
        if not hasattr(item.config, "workerinput"):
            raise
        item.user_properties.append((STOP_PROPERTY, [stop.message, int(stop.returncode or pytest.ExitCode.INTERRUPTED)]))
        raise StoppedInWorker(stop.message) from None


class StopRelay:
    """Registered in the controller only (a worker's own reports pass through its hooks too): a row's report that
    carries a worker's stop stops the run, before anything records the row."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        stop = dict(report.user_properties).get(STOP_PROPERTY)
        if stop is not None:
            stop_run(*stop)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    """A row that stopped the run (`stop_run`) becomes a usage error here, past the runner, so pytest prints no `Exit`
    banner; an xdist worker (it has `workerinput`) hands its stop on as it came."""
    try:
        return (yield)
    except RunStop as stop:
        if hasattr(session.config, "workerinput"):
            raise
        raise unwound(stop) from None


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """Every usage error of the run, the plugin's and pytest's, as one line beginning `error:`."""
    try:
        return (yield)
    except pytest.UsageError as error:
        return print_usage_error(error)
