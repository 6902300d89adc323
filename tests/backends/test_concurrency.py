"""Hosted calls in parallel inside one process (`--max-connections`, issue 18).

The end-to-end tests run the project's conftest, evals and plugin (through pytester) with
--model=azure against tests/fault_server.py on 127.0.0.1, which records when each request
arrived and when its reply was sent, so it can tell how many were in flight at once. The
last tests drive `AdaptiveLimit` directly from threads.
"""

from __future__ import annotations

import threading

import pytest

from slm_swap.backends.api import Answer
from slm_swap.backends.concurrency import AdaptiveLimit, ConcurrentModel
from slm_swap.data.rows import Row
from slm_swap.scoring.outcomes import ErrorClass

TOOLCALL = "evals/test_toolcall.py"
# Fields that say when and how a run was started, not what it measured.
TIMING_FIELDS = ("started_at", "finished_at", "duration_s", "pytest_args", "langfuse")


# -- the limit holds, end to end --------------------------------------------------------------------


def test_requests_in_flight_reach_the_limit_and_never_pass_it(bench):
    b = bench(40)
    server = b.serve(rates={"stall": 1.0}, stall_s=0.2)  # every reply held 0.2 s, so requests overlap
    result = b.run("--max-connections", "4")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert len(server.requests) == 40 and b.metric()["passed"] == 40
    assert server.max_in_flight() == 4  # not more, and actually reached
    assert b.metric()["model_description"]["concurrency"] == {"start": 4, "minimum": 4, "final": 4, "max_in_flight": 4}


def test_langfuse_is_checked_while_the_first_requests_are_in_flight_and_a_refusal_still_stops_every_row(bench, monkeypatch):
    b = bench(40)
    server = b.serve(rates={"stall": 1.0}, stall_s=0.3)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-wrong")
    result = b.run("--max-connections", "4")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "refused the keys" in result.stdout.str() + result.stderr.str()
    # the check ran once the first wave was out (its time is not lost to a wrong key's run either) and stopped the
    # run before any row's test: the waves that went out meanwhile are all it cost
    assert 4 <= len(server.requests) < 40
    assert "passed" not in result.stdout.str() and not (b.out / "toolcall_azure.json").exists()


def test_under_xdist_each_worker_keeps_its_own_limit(bench):
    b = bench(40)
    server = b.serve(rates={"stall": 1.0}, stall_s=0.2)
    result = b.run("-n", "2", "--max-connections", "3", xdist=True)
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert len(server.requests) == 40 and b.metric()["passed"] == 40
    assert 3 <= server.max_in_flight() <= 2 * 3
    assert b.metric()["model_description"]["concurrency"]["max_in_flight"] <= 3


def test_a_429_storm_lowers_the_limit_and_loses_no_row(bench):
    b = bench(60)
    server = b.serve(rates={"rate_limit": 0.3}, retry_after_ms=20, max_faults_per_prompt=3, seed=3)
    result = b.run("--max-connections", "8", "--max-error-rate", "0")
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc = b.metric()
    injected = server.fault_counts()["rate_limit:ms=20"]
    assert (doc["n"], doc["errors"], doc["passed"]) == (60, 0, 60) and injected > 0
    assert doc["retries"] == {"rate_limit": injected} and len(server.requests) == 60 + injected
    assert all(gap >= asked for asked, gap in server.retry_gaps())
    limit = doc["model_description"]["concurrency"]
    assert limit["start"] == 8 and 1 <= limit["minimum"] < 8 and limit["minimum"] <= limit["final"] <= 8
    assert limit["max_in_flight"] <= 8 and server.max_in_flight() <= 8
    result.stdout.fnmatch_lines(
        [f"*hosted connections: start 8, minimum {limit['minimum']}, final {limit['final']} (most in flight {limit['max_in_flight']})*"]
    )


# -- the same answers, the same files --------------------------------------------------------------------


def without_timing(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if key not in (*TIMING_FIELDS, "model_description")}


def test_serial_many_connections_and_xdist_write_the_same_metrics(bench):
    b = bench(40)
    # faults drawn per (prompt, attempt): every mode meets the same 429s, rejections and filtered replies
    faults = dict(
        rates={"rate_limit": 0.2, "content_filter_400": 0.05, "content_filter_finish": 0.05},
        retry_after_ms=10,
        max_faults_per_prompt=2,
        seed=5,
    )
    modes = {
        "serial": ("--max-connections", "1"),
        "16 connections": ("--max-connections", "16"),
        "-n 4, 4 connections each": ("-n", "4", "--max-connections", "4"),
    }
    metrics, predictions, requests = {}, {}, {}
    for mode, extra in modes.items():
        server = b.serve(**faults)
        result = b.run("--no-cache", *extra, xdist="-n" in extra)
        assert result.ret in (0, pytest.ExitCode.TESTS_FAILED), result.stdout.str()[-3000:]
        metrics[mode], predictions[mode] = b.metric(), b.predictions()
        requests[mode] = (len(server.requests), server.fault_counts())
        assert ("concurrency" in metrics[mode]["model_description"]) == (mode != "serial")
    serial = metrics["serial"]
    assert serial["errors"] > 0 and serial["retries"] and serial["content_filtered"] > 0  # every count is exercised
    assert all(without_timing(doc) == without_timing(serial) for doc in metrics.values())
    lines = {mode: [{k: v for k, v in p.items() if k != "latency_s"} for p in found] for mode, found in predictions.items()}
    assert all(found == lines["serial"] for found in lines.values()) and len(lines["serial"]) == 40
    assert all(asked == requests["serial"] for asked in requests.values())


# -- only the selected rows are asked -------------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["in-process", "xdist"])
def test_one_selected_row_makes_one_request(bench, extra):
    b = bench(16)
    server = b.serve()
    result = b.run("-k", "toolcall and test-0005", "--max-connections", "8", *extra, xdist=bool(extra))
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert [request.prompt for request in server.requests] == [b.prompts[5]]
    assert b.metric()["n"] == 1


def test_a_run_stopped_by_its_first_failure_sends_no_more_requests(bench):
    b = bench(60)
    # Replies held 1 s: rows 0-3 go first, row 4 when row 2's instant 400 frees its slot, rows 5-8 when
    # rows 0, 1, 3 and 4 answer at 1 s, just as row 2 fails. The stop then has a whole second before a
    # third wave (rows 9-12) could start, however loaded the machine (at 0.2 s a busy CI sent row 12).
    server = b.serve(rates={"stall": 1.0}, stall_s=1.0, per_prompt={b.prompts[2]: ["content_filter_400"]})
    result = b.run("-x", "--max-connections", "4")
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*1 failed, 2 passed*"])
    assert 3 <= len(server.requests) <= 12  # the rows in flight when row 2 failed, not all 60


# -- what a run says ---------------------------------------------------------------------------------------


def test_progress_lines_count_answered_rows_and_errors_on_stderr(bench):
    b = bench(20)
    b.serve(per_prompt={b.prompts[3]: ["content_filter_400"]})
    result = b.run("--max-connections", "8")
    result.stderr.fnmatch_lines(["azure toolcall: 20/20 rows answered, * rows/s, * s, errors content_filter=1"])
    assert "rows answered" not in result.stdout.str()


@pytest.mark.parametrize("connections", ["0", "-2"])
def test_max_connections_below_one_is_a_usage_error(bench, connections):
    b = bench(4)
    server = b.serve()
    result = b.run("--max-connections", connections)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--max-connections must be at least 1" in result.stderr.str()
    assert server.requests == [] and not (b.out / "toolcall_azure.json").exists()


# -- AdaptiveLimit on its own ---------------------------------------------------------------------------


def burst(limit: AdaptiveLimit, outcomes: list) -> None:
    """Hold one slot per outcome, all at once from as many threads, then settle each with its outcome."""
    inside = threading.Barrier(len(outcomes) + 1)
    release = threading.Event()

    def hold(outcome) -> None:
        with limit.slot() as settle:
            inside.wait(timeout=5)
            release.wait(timeout=5)
            settle(outcome)

    threads = [threading.Thread(target=hold, args=(outcome,), daemon=True) for outcome in outcomes]
    for thread in threads:
        thread.start()
    inside.wait(timeout=5)  # every thread holds its slot
    release.set()
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)


def one(limit: AdaptiveLimit, outcome) -> int:
    """One request settled with `outcome`, from a thread that must get its slot within 5 s; the limit after it."""

    def ask() -> None:
        with limit.slot() as settle:
            settle(outcome)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), f"no slot came free: {limit.describe()}"
    return limit.describe()["final"]


def test_a_burst_of_429s_halves_the_limit_once_per_window_and_never_below_one():
    limit = AdaptiveLimit(8)
    burst(limit, [ErrorClass.RATE_LIMIT] * 8)  # eight 429s from requests sent under the same limit
    assert limit.describe() == {"start": 8, "minimum": 4, "final": 4, "max_in_flight": 8}
    burst(limit, [ErrorClass.RATE_LIMIT] * 4)
    assert limit.describe() == {"start": 8, "minimum": 2, "final": 2, "max_in_flight": 8}
    # each request now goes out under a new window: every 429 halves, down to 1 and no further
    assert [one(limit, ErrorClass.RATE_LIMIT) for _ in range(4)] == [1, 1, 1, 1]
    assert limit.describe()["minimum"] == 1


def test_a_429_from_before_a_decrease_does_not_halve_again():
    limit = AdaptiveLimit(8)
    # one 429 and three successes from the first window, then a late 429 from that window too
    burst(limit, [ErrorClass.RATE_LIMIT, None, None, None, ErrorClass.RATE_LIMIT])
    assert limit.describe()["final"] == 4


def test_successes_grow_the_limit_by_one_per_limit_back_to_the_start():
    limit = AdaptiveLimit(8)
    assert one(limit, ErrorClass.RATE_LIMIT) == 4
    seen = [one(limit, None) for _ in range(40)]
    # 4 successes at 4 raise it to 5, 5 at 5 to 6, ... and never past the start
    assert seen == [4] * 3 + [5] * 5 + [6] * 6 + [7] * 7 + [8] * 19
    assert limit.describe() == {"start": 8, "minimum": 4, "final": 8, "max_in_flight": 1}


def test_successes_from_many_threads_count_the_same():
    limit = AdaptiveLimit(8)
    one(limit, ErrorClass.RATE_LIMIT)
    threads = [threading.Thread(target=lambda: [one(limit, None) for _ in range(5)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert limit.describe()["final"] == 7  # 20 successes: 4 + 5 + 6 raise it three times, 7 more are needed for 8
    assert [one(limit, None) for _ in range(2)] == [7, 8]


@pytest.mark.parametrize("error_class", [ErrorClass.TIMEOUT, ErrorClass.SERVER, ErrorClass.QUOTA, ErrorClass.CONTENT_FILTER])
def test_failures_other_than_429_leave_the_limit_alone(error_class):
    limit = AdaptiveLimit(8)
    burst(limit, [error_class] * 8)
    assert [one(limit, error_class) for _ in range(3)] == [8, 8, 8]


def test_a_request_past_the_limit_waits_for_a_slot():
    limit = AdaptiveLimit(4)
    burst(limit, [ErrorClass.RATE_LIMIT] * 2)  # the limit is now 2
    held, release, entered = threading.Barrier(3), threading.Event(), threading.Event()

    def hold() -> None:
        with limit.slot():
            held.wait(timeout=5)
            release.wait(timeout=5)

    def third() -> None:
        with limit.slot():
            entered.set()

    holders = [threading.Thread(target=hold, daemon=True) for _ in range(2)]
    for thread in holders:
        thread.start()
    held.wait(timeout=5)
    late = threading.Thread(target=third, daemon=True)
    late.start()
    assert not entered.wait(0.3)  # two in flight under a limit of 2: the third waits
    release.set()
    assert entered.wait(5)
    for thread in [*holders, late]:
        thread.join(timeout=5)
    assert limit.describe()["max_in_flight"] == 2


def test_many_threads_never_hold_more_slots_than_the_start():
    limit = AdaptiveLimit(6)
    holders, most, lock = [0], [0], threading.Lock()

    def work(seed: int) -> None:
        for i in range(40):
            with limit.slot() as settle:
                with lock:
                    holders[0] += 1
                    most[0] = max(most[0], holders[0])
                threading.Event().wait(0.001)
                with lock:
                    holders[0] -= 1
                settle(ErrorClass.RATE_LIMIT if (seed * 40 + i) % 9 == 0 else None)

    threads = [threading.Thread(target=work, args=(seed,), daemon=True) for seed in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    described = limit.describe()
    assert 1 <= described["minimum"] < 6 and described["minimum"] <= described["final"] <= 6
    assert most[0] <= described["max_in_flight"] <= 6 and limit.in_flight == 0


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveLimit(0)


# -- answers are read as they arrive --------------------------------------------------------------------


class GatedModel:
    """A model whose row i answers only once gate i is opened; records which rows were asked."""

    name = "gated"

    def __init__(self, n: int) -> None:
        self.gates = [threading.Event() for _ in range(n)]
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def prepare(self, rows) -> None:
        pass

    def answer(self, row: Row) -> Answer:
        with self.lock:
            self.asked.append(row.index)
        assert self.gates[row.index].wait(10), f"row {row.index} was never released"
        return Answer(text=f"reply {row.index}")

    def describe(self) -> dict:
        return {"name": self.name}

    def close(self) -> None:
        pass


def gated_rows(n: int) -> list[Row]:
    return [Row(f"test-{i:04d}", i, "toolcall", f"prompt {i}", "") for i in range(n)]


def test_prepare_returns_at_once_and_a_row_waits_only_for_its_own_answer():
    inner, rows = GatedModel(6), gated_rows(6)
    model = ConcurrentModel(inner, AdaptiveLimit(3))
    model.prepare(rows)  # returns with every request queued, none answered
    inner.gates[0].set()
    assert model.answer(rows[0]).text == "reply 0"  # rows 1-5 are still unanswered
    assert not any(gate.is_set() for gate in inner.gates[1:])
    for gate in inner.gates[1:]:
        gate.set()
    assert [model.answer(row).text for row in rows[1:]] == [f"reply {i}" for i in range(1, 6)]
    model.close()
    assert sorted(inner.asked) == list(range(6))  # each row asked exactly once


def test_close_drops_the_requests_not_yet_sent():
    inner, rows = GatedModel(8), gated_rows(8)
    model = ConcurrentModel(inner, AdaptiveLimit(2))
    model.prepare(rows)
    inner.gates[0].set()
    assert model.answer(rows[0]).text == "reply 0"  # the run stops here, as after a failure with -x
    closer = threading.Thread(target=model.close)
    closer.start()
    inner.gates[1].set()  # the requests in flight when the run stopped (row 1, and row 2 if a thread took it) finish
    inner.gates[2].set()
    closer.join(10)
    assert not closer.is_alive()
    assert set(inner.asked) in ({0, 1}, {0, 1, 2}) and len(inner.asked) == len(set(inner.asked))  # rows 3-7 never sent
