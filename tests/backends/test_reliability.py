"""Reliability of evaluation runs: the real harness with --model=azure against a fault-injecting endpoint.

Each test runs the project's conftest, evals and plugin (through pytester) against
tests/fault_server.py on 127.0.0.1, injects one kind of trouble, and checks what the
metric file, the predictions, the answer journal and the server's request log say.
The fault-injection tests run twice: serially (`--max-connections 1`, one request in flight
per process) and with `--max-connections 8` (rows answered up front through 8 connections).
docs/reliability.md records the figures these tests print with `-s`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import Fault, _uniform

from slm_swap.backends.journal import read_journal

KEY = "canary-key-7d3e9a51c04b"
TOOLCALL = "evals/test_toolcall.py"
# Fields that say when and how a run was started, not what it measured.
TIMING_FIELDS = ("started_at", "finished_at", "duration_s", "pytest_args", "langfuse")
# --max-connections for the fault-injection tests: one request in flight per process, then eight
CONNECTIONS = pytest.mark.parametrize("connections", ["1", "8"], ids=["serial", "connections-8"])


def figure(name: str, **values) -> None:
    """One line of figures for docs/reliability.md, visible with `-s`."""
    print(f"\nFIGURE {name}: " + " ".join(f"{key}={value}" for key, value in values.items()))


def check_connections(doc: dict, connections: str) -> None:
    """The metric file describes the hosted connections of a concurrent run, and none of a serial one."""
    described = doc["model_description"].get("concurrency")
    if connections == "1":
        assert described is None
        return
    assert described["start"] == int(connections)
    assert 1 <= described["minimum"] <= described["final"] <= described["start"]
    assert 0 <= described["max_in_flight"] <= described["start"]  # 0: every row this worker ran came from the journal


# -- 1. rate limits ---------------------------------------------------------------------------------


@CONNECTIONS
def test_429s_with_retry_after_ms_lose_no_row_and_every_wait_is_honoured(bench, connections):
    b = bench(200, connections)
    server = b.serve(rates={"rate_limit": 0.2}, retry_after_ms=50, max_faults_per_prompt=3, seed=11)
    started = time.monotonic()
    result = b.run("-n", "4", "--max-error-rate", "0", xdist=True)
    wall = time.monotonic() - started
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc, predictions = b.metric(), b.predictions()
    injected = server.fault_counts()["rate_limit:ms=50"]
    gaps = server.retry_gaps()
    assert (doc["n"], doc["errors"], doc["passed"]) == (200, 0, 200)
    assert sorted(p["id"] for p in predictions) == [f"test-{i:04d}" for i in range(200)]
    assert len(server.requests) == 200 + injected
    assert doc["retries"] == {"rate_limit": injected} and len(gaps) == injected > 0
    assert all(gap >= asked for asked, gap in gaps)
    assert set(doc["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert doc["usage"]["total_tokens"] == sum(p["usage"]["total_tokens"] for p in predictions) > 0
    result.stdout.fnmatch_lines([f"*retries by class {{'rate_limit': {injected}}}*"])
    check_connections(doc, connections)
    assert server.max_in_flight() <= 4 * int(connections)  # 4 workers, each with its connections
    figure(
        "1",
        rows=200,
        connections=connections,
        max_in_flight=server.max_in_flight(),
        requests=len(server.requests),
        injected_429=injected,
        errors=doc["errors"],
        min_gap_s=round(min(g for _, g in gaps), 4),
        wall_s=round(wall, 1),
    )


# -- 2. exhausted quota -----------------------------------------------------------------------------


@CONNECTIONS
def test_insufficient_quota_is_one_attempt_of_class_quota_and_fails_the_error_rate(bench, connections):
    b = bench(8, connections)
    quota_prompts = b.prompts[2:5]
    # more faults than any run asks for: a retried quota row would get a second request
    server = b.serve(per_prompt={prompt: ["quota"] * 5 for prompt in quota_prompts})
    # the reference is a real run of the same rows (the gate recomputes its rates from its predictions): 5 of 8 right
    assert b.run("--no-cache").ret == pytest.ExitCode.TESTS_FAILED  # the 3 quota rows fail their cases
    reference = b.pytester.path / "reference.json"
    shutil.copy(b.out / "toolcall_azure.json", reference)
    shutil.copy(b.out / "toolcall_azure.predictions.jsonl", b.pytester.path / "reference.predictions.jsonl")
    # the gate alone judges metrics (5 of 8 right, as the reference), so this run passes ...
    gated = b.run("--no-cache", f"--gate-against={reference}")
    assert gated.ret == 0
    result = b.run("--no-cache", f"--gate-against={reference}", "--max-error-rate", "0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*max error rate exceeded: toolcall: 3 of 8 rows are errors*{'quota': 3}*"])
    doc = b.metric()
    assert (doc["n"], doc["errors"], doc["error_classes"], doc["retries"]) == (8, 3, {"quota": 3}, {})
    assert all(len(server.requests_for(prompt)) == 3 for prompt in quota_prompts)  # one per run
    errors = [p for p in b.predictions() if p["error"]]
    assert sorted(p["id"] for p in errors) == ["test-0002", "test-0003", "test-0004"]
    assert all("exceeded your current quota" in p["error"] for p in errors)
    check_connections(doc, connections)
    figure(
        "2",
        connections=connections,
        rows=8,
        quota_rows=3,
        requests_per_quota_row_per_run=1,
        exit_without=gated.ret,
        exit_with_max_error_rate_0=int(result.ret),
    )


@CONNECTIONS
def test_identical_failures_on_row_after_row_stop_the_run_early(bench, connections):
    b = bench(12, connections)
    server = b.serve(rates={"quota": 1.0})
    result = b.run("--circuit-threshold", "3")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    stopped = re.search(r"stopping: the last (\d+) rows all failed with error class 'quota'", result.stdout.str() + result.stderr.str())
    # serially exactly the threshold; with connections, rows already in flight when it opened may add to the count
    assert stopped and 3 <= int(stopped.group(1)) <= 3 + int(connections) - 1
    # serially the 4th row never calls; with connections, only the requests already in flight when the
    # third failure came back may still go out (each of the other connections holds at most one)
    assert 3 <= len(server.requests) <= 3 + int(connections) - 1
    assert not (b.pytester.path / "slm_swap" / "05_eval" / "toolcall_azure.json").exists()


# -- 3. a wait longer than the row budget ------------------------------------------------------------


@CONNECTIONS
def test_retry_after_600_fails_the_row_inside_its_budget(bench, connections):
    b = bench(6, connections)
    slow = b.prompts[:2]
    server = b.serve(per_prompt={prompt: [Fault("rate_limit", retry_after_s=600)] for prompt in slow})
    started = time.monotonic()
    result = b.run("--row-budget", "5")
    wall = time.monotonic() - started
    result.assert_outcomes(passed=4, failed=2)
    doc = b.metric()
    assert (doc["errors"], doc["error_classes"], doc["retries"]) == (2, {"rate_limit": 2}, {})
    failed = [p for p in b.predictions() if p["error"]]
    assert all("asked to wait 600s, beyond the row budget of 5s" in p["error"] for p in failed)
    assert all(p["latency_s"] < 5 for p in failed) and wall < 60
    assert all(len(server.requests_for(prompt)) == 1 for prompt in slow)
    figure(
        "3",
        connections=connections,
        rows=6,
        retry_after_600_rows=2,
        row_budget_s=5,
        max_row_latency_s=round(max(p["latency_s"] for p in failed), 3),
        wall_s=round(wall, 1),
    )


# -- 4. stalls past the timeout ------------------------------------------------------------------------


def seed_where(prompts: list[str], wanted) -> int:
    """The first seed whose per-(prompt, attempt) fault draws satisfy `wanted`, so the test never hangs on luck."""
    for seed in range(1000):
        draws = {prompt: [_uniform(seed, prompt, attempt) for attempt in range(2)] for prompt in prompts}
        if wanted(draws):
            return seed
    raise AssertionError("no seed gives the wanted faults")


@CONNECTIONS
def test_stalls_past_the_timeout_are_class_timeout_and_bounded_per_row(bench, connections):
    b = bench(30, connections)
    timeout, retries = 0.5, 1
    # 10 % of requests stall; some rows stall on both attempts and end as `timeout`
    seed = seed_where(b.prompts, lambda d: sum(a < 0.1 and r < 0.1 for a, r in d.values()) >= 1)
    server = b.serve(rates={"stall": 0.1}, seed=seed, stall_s=5)
    started = time.monotonic()
    result = b.run("--request-timeout", str(timeout), "--max-retries", str(retries))
    wall = time.monotonic() - started
    doc, predictions = b.metric(), b.predictions()
    stalled = server.fault_counts().get("stall", 0)
    timed_out = [p for p in predictions if p["error_class"] == "timeout"]
    assert timed_out and doc["error_classes"] == {"timeout": len(timed_out)}
    # every stalled attempt is either retried or ends its row
    assert doc["retries"] == {"timeout": stalled - len(timed_out)}
    assert all(len(server.requests_for(b.prompt_of(p["id"]))) == retries + 1 for p in timed_out)
    # one attempt per allowed try, plus the one backoff wait between them (at most base 0.5 s)
    bound = timeout * (retries + 1) + 0.5
    assert max(p["latency_s"] for p in predictions) <= bound + 0.5  # slack for a busy CI machine
    result.assert_outcomes(passed=30 - len(timed_out), failed=len(timed_out))
    check_connections(doc, connections)
    figure(
        "4",
        connections=connections,
        rows=30,
        requests=len(server.requests),
        stalled=stalled,
        timeout_rows=len(timed_out),
        retried=doc["retries"],
        max_row_latency_s=round(max(p["latency_s"] for p in predictions), 3),
        bound_s=bound,
        wall_s=round(wall, 1),
    )


# -- 5. content filters -----------------------------------------------------------------------------------


@CONNECTIONS
def test_content_filter_400_and_filtered_finish_are_two_classes(bench, connections):
    b = bench(100, connections)
    rates = {"content_filter_400": 0.05, "content_filter_finish": 0.02}
    # a seed that draws exactly the nominal shares, 5 and 2 of 100 rows, keeps the figures readable
    seed = seed_where(b.prompts, lambda d: sum(a < 0.05 for a, _ in d.values()) == 5 and sum(0.05 <= a < 0.07 for a, _ in d.values()) == 2)
    server = b.serve(rates=rates, seed=seed)
    result = b.run()
    counts = server.fault_counts()
    rejected, filtered = counts.get("content_filter_400", 0), counts.get("content_filter_finish", 0)
    doc, predictions = b.metric(), b.predictions()
    assert (rejected, filtered) == (5, 2) and len(server.requests) == 100  # neither kind is retried
    assert doc["error_classes"] == {"content_filter": rejected} and doc["errors"] == rejected
    assert doc["content_filtered"] == filtered and doc["retries"] == {}
    flagged = [p for p in predictions if p["finish_reason"] == "content_filter"]
    # a filtered 200 still has its text scored (here the gold reply): flagged, not an error
    assert len(flagged) == filtered and all(p["error"] is None and p["flags"]["args_exact"] for p in flagged)
    result.assert_outcomes(passed=100 - rejected, failed=rejected)
    check_connections(doc, connections)
    figure(
        "5",
        connections=connections,
        rows=100,
        content_filter_400=rejected,
        finish_content_filter=filtered,
        error_classes=doc["error_classes"],
        content_filtered=doc["content_filtered"],
    )


# -- 6. a run killed halfway, then resumed -------------------------------------------------------------


def journal_keys(path: Path) -> list[str]:
    """The key of every whole line of a journal, repeats included."""
    keys = []
    for line in path.read_bytes().splitlines():
        try:
            keys.append(json.loads(line)["key"])
        except ValueError:
            continue
    return keys


def kill_when(command: list[str], cwd: Path, log: Path, ready, deadline_s: float = 60) -> int:
    """Start a run in its own process group and SIGKILL the whole group (controller and workers) once `ready()`."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + deadline_s
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        reached = ready() and proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert reached, f"the run ended or stalled before it could be killed:\n{log.read_text()[-2000:]}"
    while time.monotonic() < deadline + 30:  # the workers die with the group; wait until none is left
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return proc.returncode
        time.sleep(0.01)
    raise AssertionError("processes of the killed run are still alive")


@CONNECTIONS
def test_sigkill_halfway_then_resume_asks_only_for_unanswered_rows(bench, connections):
    b = bench(300, connections)
    workers, in_flight_per_worker = 4, int(connections)
    # every reply takes 20 ms per connection, so the kill lands mid-run rather than after the last row
    server = b.serve(rates={"stall": 1.0}, stall_s=0.02 * in_flight_per_worker)
    command = [sys.executable, "-m", "pytest", *b.args("-n", "4")]
    returncode = kill_when(command, b.pytester.path, b.pytester.path / "killed.log", lambda: len(server.requests) >= 150)
    assert returncode == -signal.SIGKILL
    calls_before = len(server.requests)
    journalled = read_journal(b.journal())
    answered = len(journalled.answers)
    in_flight = calls_before - answered  # asked, but killed before the answer was journalled
    assert 0 <= in_flight <= workers * in_flight_per_worker  # each worker asks for as many rows at a time as it has connections
    assert not (b.pytester.path / "slm_swap" / "05_eval" / "toolcall_azure.json").exists()
    result = b.run("-n", "4", "--resume", xdist=True)
    assert result.ret == 0, result.stdout.str()[-3000:]
    new_calls = len(server.requests) - calls_before
    doc, predictions = b.metric(), b.predictions()
    ids = [p["id"] for p in predictions]
    assert len(ids) == len(set(ids)) == 300 and doc["n"] == 300 and doc["errors"] == 0
    assert doc["cached_rows"] == answered and new_calls == 300 - answered
    assert new_calls <= 150 + in_flight
    # no prompt was answered twice: the journal holds each row once
    keys = journal_keys(b.journal())
    assert len(keys) == len(set(keys)) == 300
    check_connections(doc, connections)
    # the resumed run's requests only: a killed run's last replies may still be going out when it starts
    assert server.max_in_flight(first=calls_before) <= workers * in_flight_per_worker
    figure(
        "6",
        connections=connections,
        rows=300,
        calls_before_kill=calls_before,
        journalled_at_kill=answered,
        in_flight=in_flight,
        dropped_lines=journalled.dropped_lines,
        new_calls_on_resume=new_calls,
        cached_rows=doc["cached_rows"],
        unique_ids=len(set(ids)),
    )


# -- 7. a worker dies on a row ---------------------------------------------------------------------------


def test_worker_exit_on_a_row_is_worker_crash_and_counts_sum_to_n(bench):
    b = bench(16)
    server = b.serve()
    b.pytester.makepyfile(
        crash_plugin="""
import os
def pytest_runtest_call(item):
    if item.name.endswith("[test-0005]"):
        os._exit(1)
"""
    )
    # one row at a time: rows a dead worker answered up front but never ran would be asked again elsewhere
    result = b.run("-n", "2", "--max-connections", "1", "-p", "crash_plugin", xdist=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = b.metric()
    assert (doc["n"], doc["errors"], doc["error_classes"], doc["passed"]) == (16, 1, {"worker_crash": 1}, 15)
    assert sum(doc["failures"].values()) + doc["passed"] == 16
    (crashed,) = [p for p in b.predictions() if p["error"]]
    assert crashed["id"] == "test-0005" and crashed["error_class"] == "worker_crash"
    assert len(server.requests) == 16  # the rows the dead worker had queued were asked once, elsewhere
    # the crashed row's answer arrived before the crash; it is in the journal, so a resume asks nothing
    resumed = b.run("-n", "2", "--resume", xdist=True)
    assert resumed.ret == 0 and len(server.requests) == 16 and b.metric()["cached_rows"] == 16
    figure(
        "7",
        rows=16,
        workers=2,
        crashed_row=crashed["id"],
        error_classes=doc["error_classes"],
        passed=doc["passed"],
        requests=16,
        resume_new_calls=0,
    )


# -- 8. serial and -n 4 from the same journal -------------------------------------------------------------


def as_written(document: dict) -> bytes:
    """A metric document serialised the way slm_swap.files.write_json_atomic writes it."""
    return (json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8")


def test_serial_and_xdist_runs_on_cached_answers_write_identical_files(bench):
    b = bench(40)
    # the journal holds retried rows, errors and a filtered reply, so every count of the file is exercised
    server = b.serve(
        rates={"rate_limit": 0.2, "content_filter_400": 0.05, "content_filter_finish": 0.05},
        retry_after_ms=10,
        max_faults_per_prompt=2,
        seed=5,
    )
    b.run()
    calls = len(server.requests)
    out = b.pytester.path / "slm_swap" / "05_eval"
    files = ("toolcall_azure.json", "toolcall_azure.predictions.jsonl")
    written = {}
    for mode, extra in (("serial", ()), ("xdist", ("-n", "4"))):
        b.run("--resume", *extra, xdist=bool(extra))
        written[mode] = [(out / name).read_bytes() for name in files]
    assert len(server.requests) == calls  # both runs answered from the journal alone
    (serial_metric, serial_predictions), (xdist_metric, xdist_predictions) = written["serial"], written["xdist"]
    serial, parallel = json.loads(serial_metric), json.loads(xdist_metric)
    assert serial["cached_rows"] == parallel["cached_rows"] == 40 and serial["errors"] > 0 and serial["retries"]
    assert serial["started_at"] != parallel["started_at"] and serial["pytest_args"] != parallel["pytest_args"]
    # loading and dumping again gives the same bytes, so comparing dumps is comparing the files byte for byte
    assert as_written(serial) == serial_metric
    assert as_written({key: serial[key] if key in TIMING_FIELDS else value for key, value in parallel.items()}) == serial_metric
    assert serial_predictions == xdist_predictions
    figure(
        "8",
        rows=40,
        calls_to_fill_journal=calls,
        calls_on_resume=0,
        cached_rows=40,
        errors=serial["errors"],
        retries=serial["retries"],
        differing_fields=sorted(k for k in serial if serial[k] != parallel[k]),
    )


# -- 9. the key never leaks ---------------------------------------------------------------------------------


@CONNECTIONS
def test_canary_key_appears_in_no_file_output_or_trace(bench, connections):
    b = bench(8, connections)
    prompts = b.prompts
    # a 401 that quotes the key back, a wrong answer, a filtered reply and a retried 429
    server = b.serve(
        per_prompt={prompts[1]: ["unauthorized"], prompts[2]: ["content_filter_400"], prompts[3]: [Fault("rate_limit", retry_after_ms=10)]}
    )
    server.plan.answers = {**server.plan.answers, prompts[4]: "not a tool call"}
    outputs = []
    result = b.run("--tb=long", "-l", "-v", "-rA")
    outputs += [result.stdout.str(), result.stderr.str()]
    assert result.parseoutcomes()["failed"] == 3
    xdist = b.run("--tb=long", "-l", "-n", "2", "--resume", xdist=True)
    outputs += [xdist.stdout.str(), xdist.stderr.str()]
    # a model setup that breaks (here: the HTTP client refuses, as it does for a proxy variable with an
    # unknown scheme) prints a long traceback with every frame's locals, untruncated under -vv
    b.pytester.makepyfile(
        client_refused="""
import slm_swap.backends.hosted

class Refused:
    def __init__(self, **settings):
        raise ValueError("Unknown scheme for proxy URL")

slm_swap.backends.hosted.openai.OpenAI = Refused
"""
    )
    b.monkeypatch.delenv("AZURE_API_KEY")
    b.monkeypatch.setenv("AZURE_API_KEY", KEY)  # last in the environment, where a truncated repr still shows it
    broken = b.run("--tb=long", "-l", "-vv", "-p", "client_refused", xdist=True)
    outputs += [broken.stdout.str(), broken.stderr.str()]
    assert broken.ret == pytest.ExitCode.TESTS_FAILED and "Unknown scheme for proxy URL" in outputs[-2]
    assert "environ" in outputs[-2] and "api_key" in outputs[-2]  # the frames that hold the key were printed
    assert any(KEY in str(request.headers.get("api-key")) for request in server.requests)  # the canary was really used
    files = [path for path in b.pytester.path.rglob("*") if path.is_file()]
    assert b.journal() in files and (b.pytester.path / "slm_swap" / "05_eval" / "toolcall_azure.json") in files
    leaks = [str(path) for path in files if KEY.encode() in path.read_bytes()]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if KEY in text]
    received = [request.body for request in b.receiver.requests()]
    assert received and b.receiver.spans()
    leaks += ["langfuse request" for body in received if KEY.encode() in body]
    leaks += ["langfuse span" for span in b.receiver.spans() if KEY in repr(span)]
    leaks += ["langfuse score" for score in b.receiver.scores() if KEY in json.dumps(score)]
    assert leaks == []
    figure(
        "9",
        connections=connections,
        files_checked=len(files),
        outputs_checked=len(outputs),
        langfuse_requests=len(received),
        spans=len(b.receiver.spans()),
        scores=len(b.receiver.scores()),
        occurrences=0,
    )


# -- the journal and the cache options ----------------------------------------------------------------------


def test_retry_errors_asks_again_only_for_error_rows(bench):
    b = bench(10)
    flaky = [b.prompts[1], b.prompts[6]]
    server = b.serve(per_prompt={prompt: ["server_error"] for prompt in flaky})
    b.run("--max-retries", "0")
    assert b.metric()["error_classes"] == {"server": 2}
    calls = len(server.requests)
    result = b.run("--retry-errors")
    assert result.ret == 0
    new = server.requests[calls:]
    assert sorted(request.prompt for request in new) == sorted(flaky)
    doc = b.metric()
    assert (doc["errors"], doc["cached_rows"]) == (0, 8)
    result.stdout.fnmatch_lines(["*rows from cache 8*"])


def test_no_cache_writes_no_journal_and_asks_every_row(bench):
    b = bench(5)
    server = b.serve()
    for _ in range(2):
        assert b.run("--no-cache").ret == 0
    assert len(server.requests) == 10 and b.metric()["cached_rows"] == 0
    assert not (b.pytester.path / "slm_swap" / "05_eval" / "cache").exists()


def test_resume_after_a_line_cut_short_drops_it_and_keeps_the_journal_readable(bench):
    b = bench(6)
    server = b.serve()
    b.run()
    journal = b.journal()
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a crash mid-write
    cut = json.loads(lines[-1])["id"]
    assert b.run("--resume").ret == 0
    assert [request.prompt for request in server.requests[6:]] == [b.prompt_of(cut)]
    assert b.metric()["cached_rows"] == 5 and b.metric()["model_description"]["answer_journal_dropped_lines"] == 1
    # the answer appended after the cut line must not be glued onto it
    assert b.run("--resume").ret == 0
    assert len(server.requests) == 7 and b.metric()["cached_rows"] == 6
    assert read_journal(journal).dropped_lines == 1


def test_resume_with_a_longer_budget_reuses_the_journal(bench):
    b = bench(4)
    server = b.serve()
    b.run("--row-budget", "30", "--request-timeout", "10")
    # timeouts, retries and budgets change how hard a call is tried, not its answer
    assert b.run("--resume", "--row-budget", "300", "--request-timeout", "60", "--max-retries", "8").ret == 0
    assert len(server.requests) == 4 and b.metric()["cached_rows"] == 4


def test_unusable_cache_folder_stops_before_any_row(bench):
    b = bench(4)
    server = b.serve()
    (b.pytester.path / "taken").write_text("a file, not a folder")
    result = b.run("--cache-dir", str(b.pytester.path / "taken"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "taken" in result.stdout.str() + result.stderr.str() and "--no-cache" in result.stdout.str() + result.stderr.str()
    assert server.requests == [] and not (b.pytester.path / "slm_swap" / "05_eval" / "toolcall_azure.json").exists()


def test_verbose_progress_shows_each_rows_retries(bench):
    b = bench(4)
    b.serve(per_prompt={b.prompts[2]: [Fault("rate_limit", retry_after_ms=10)] * 2, b.prompts[3]: ["server_error"]})
    result = b.run("-v")
    result.stdout.fnmatch_lines(
        [
            "*test_toolcall?test-0001? PASSED*",
            "*test_toolcall?test-0002? PASSED (retries rate_limit=2)*",
            "*test_toolcall?test-0003? PASSED (retries server=1)*",
        ]
    )


def test_two_writers_mending_the_same_cut_line_lose_nothing(tmp_path):
    from slm_swap.backends.api import Answer
    from slm_swap.backends.journal import AnswerJournal

    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"key":"a","answer":{"text":"x"}}\n{"key":"b","ans')
    # both open before either writes, as two xdist workers starting together do: each ends the cut line
    first, second = AnswerJournal(path), AnswerJournal(path)
    for journal, key in ((first, "c"), (second, "d")):
        journal.append_record({"key": key, "id": f"test-{key}", "track": "toolcall", "answer": Answer(text=key).to_record()})
        journal.close()
    read = read_journal(path)
    assert sorted(read.answers) == ["a", "c", "d"] and read.dropped_lines == 1
