"""The hosted client against a local fault-injecting server: what it sends, how it retries, how it fails."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from fault_server import Fault, FaultServer

from slm_swap.backends.hosted import HostedModel, HostedSettingsError, hosted_settings_from_env
from slm_swap.backends.retry import CircuitOpen, RetryPolicy, parse_retry_after
from slm_swap.data.rows import Row
from slm_swap.prompts import build_messages

KEY = "canary-key-5f1c0d2a9e"
PROMPT = "Turn on the kitchen lights."
REPLY = '{"name":"lights_on","arguments":{"room":"kitchen"}}'


def make_row(prompt: str = PROMPT, index: int = 0) -> Row:
    return Row(f"test-{index:04d}", index, "structured", prompt, REPLY)


def make_model(server: FaultServer, **overrides) -> HostedModel:
    settings = dict(
        api_version="2024-02-15-preview", max_tokens=64, timeout_s=5.0, max_retries=3, row_budget_s=20.0, base_wait_s=0.01, max_wait_s=0.05
    )
    settings.update(overrides)
    return HostedModel(server.endpoint, KEY, **settings)


@pytest.fixture
def server_factory():
    servers = []

    def start(**kwargs) -> FaultServer:
        kwargs.setdefault("answers", {PROMPT: REPLY})
        kwargs.setdefault("max_seconds", 60)
        servers.append(FaultServer(**kwargs).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_request_carries_deployment_path_version_key_and_greedy_settings(server_factory):
    server = server_factory()
    answer = make_model(server).answer(make_row())
    (request,) = server.requests
    assert request.path == "/openai/deployments/test-deployment/chat/completions"
    assert request.query == {"api-version": ["2024-02-15-preview"]}
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["api-key"] == KEY
    # Azure rejects a request that carries both the api-key header and a bearer token.
    assert "authorization" not in headers
    assert request.body["temperature"] == 0
    assert request.body["max_tokens"] == 64
    assert request.body["messages"] == build_messages(PROMPT)
    assert "model" not in request.body
    assert (answer.text, answer.error, answer.error_class, answer.finish_reason) == (REPLY, None, None, "stop")
    assert answer.usage == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    assert answer.retries == {}


def test_api_version_left_out_when_unset_and_model_sent_when_given(server_factory):
    server = server_factory()
    make_model(server, api_version=None, model="/srv/checkpoint").answer(make_row())
    (request,) = server.requests
    assert request.query == {}
    assert request.body["model"] == "/srv/checkpoint"


def test_retry_after_seconds_is_waited_before_the_retry(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("rate_limit", retry_after_s=1)]})
    answer = make_model(server).answer(make_row())
    assert (answer.text, answer.retries) == (REPLY, {"rate_limit": 1})
    ((asked, gap),) = server.retry_gaps()
    assert asked == 1 and gap >= 1.0


def test_retry_after_ms_wins_over_backoff_and_is_waited(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("rate_limit", retry_after_ms=300)] * 2})
    answer = make_model(server, base_wait_s=0.0, max_wait_s=0.0).answer(make_row())
    assert (answer.text, answer.retries) == (REPLY, {"rate_limit": 2})
    gaps = server.retry_gaps()
    assert len(gaps) == 2 and all(gap >= 0.3 for _, gap in gaps)


def test_rate_limit_that_never_clears_ends_as_rate_limit_after_max_retries(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("rate_limit", retry_after_ms=10)] * 10})
    answer = make_model(server, max_retries=3).answer(make_row())
    assert (answer.text, answer.error_class, answer.retries) == (None, "rate_limit", {"rate_limit": 3})
    assert "HTTP 429" in answer.error and "after 3 retries" in answer.error
    assert len(server.requests) == 4


def test_server_errors_then_success_counts_the_retries(server_factory):
    server = server_factory(per_prompt={PROMPT: ["server_error", "server_error"]})
    answer = make_model(server).answer(make_row())
    assert (answer.text, answer.error_class, answer.retries) == (REPLY, None, {"server": 2})
    assert len(server.requests) == 3


def test_stall_past_the_timeout_is_retried_then_recorded_as_timeout(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("stall", stall_s=10)] * 3})
    started = time.monotonic()
    answer = make_model(server, timeout_s=0.5, max_retries=2).answer(make_row())
    elapsed = time.monotonic() - started
    assert (answer.text, answer.error_class, answer.retries) == (None, "timeout", {"timeout": 2})
    # Three attempts of 0.5 s plus two waits of at most 0.05 s, and slack for a busy CI machine.
    assert 1.5 <= elapsed < 4.0


def test_one_stall_then_a_reply(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("stall", stall_s=10)]})
    answer = make_model(server, timeout_s=0.5).answer(make_row())
    assert (answer.text, answer.retries) == (REPLY, {"timeout": 1})


@pytest.mark.parametrize("kind", ["malformed", "empty_choices"])
def test_unreadable_reply_is_bad_response_without_retry(server_factory, kind):
    server = server_factory(per_prompt={PROMPT: [kind]})
    answer = make_model(server).answer(make_row())
    assert (answer.text, answer.error_class, answer.retries) == (None, "bad_response", {})
    assert len(server.requests) == 1


def test_insufficient_quota_gets_exactly_one_attempt(server_factory):
    server = server_factory(per_prompt={PROMPT: ["quota"] * 5})
    answer = make_model(server).answer(make_row())
    assert (answer.text, answer.error_class, answer.retries) == (None, "quota", {})
    assert "exceeded your current quota" in answer.error
    assert len(server.requests) == 1


def test_content_filter_400_is_an_error_but_filtered_finish_keeps_its_text(server_factory):
    server = server_factory(per_prompt={PROMPT: ["content_filter_400", "content_filter_finish"]})
    model = make_model(server)
    rejected, filtered = model.answer(make_row()), model.answer(make_row())
    assert (rejected.text, rejected.error_class, rejected.retries) == (None, "content_filter", {})
    assert (filtered.text, filtered.error_class, filtered.finish_reason) == (REPLY, None, "content_filter")
    assert len(server.requests) == 2


def test_retry_after_600_fails_inside_the_row_budget(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("rate_limit", retry_after_s=600)]})
    started = time.monotonic()
    answer = make_model(server, row_budget_s=2.0).answer(make_row())
    assert time.monotonic() - started < 2.0
    assert (answer.text, answer.error_class, answer.retries) == (None, "rate_limit", {})
    assert "asked to wait 600s, beyond the row budget of 2s" in answer.error
    assert len(server.requests) == 1


def test_attempt_timeout_shrinks_to_what_is_left_of_the_row_budget(server_factory):
    server = server_factory(per_prompt={PROMPT: [Fault("stall", stall_s=10)] * 5})
    started = time.monotonic()
    answer = make_model(server, timeout_s=30.0, row_budget_s=1.0).answer(make_row())
    # Bounded by the 1 s budget (plus slack for a busy machine), not by the 30 s timeout.
    assert time.monotonic() - started < 3.0
    assert answer.error_class == "timeout"


def test_refused_connection_is_a_server_error_after_retries():
    with FaultServer(max_seconds=5) as server:
        endpoint = server.endpoint
    answer = HostedModel(endpoint, KEY, max_retries=2, base_wait_s=0.01, max_wait_s=0.02, timeout_s=2).answer(make_row())
    assert (answer.text, answer.error_class, answer.retries) == (None, "server", {"server": 2})


def test_circuit_opens_after_identical_failures_and_stops_calling(server_factory):
    prompts = [f"prompt {index}" for index in range(5)]
    server = server_factory(per_prompt={prompt: ["quota"] for prompt in prompts})
    model = make_model(server, circuit_threshold=3)
    answers = [model.answer(make_row(prompt, index)) for index, prompt in enumerate(prompts[:3])]
    assert [answer.error_class for answer in answers] == ["quota"] * 3
    with pytest.raises(CircuitOpen, match="last 3 rows all failed with error class 'quota'"):
        model.answer(make_row(prompts[3], 3))
    assert len(server.requests) == 3


def test_a_reply_or_another_error_class_resets_the_circuit(server_factory):
    faults = ["quota", "quota", None, "quota", "quota", "content_filter_400", "quota", "quota"]
    prompts = [f"prompt {index}" for index in range(len(faults))]
    server = server_factory(per_prompt={prompt: [fault] for prompt, fault in zip(prompts, faults)})
    model = make_model(server, circuit_threshold=3)
    classes = [model.answer(make_row(prompt, index)).error_class for index, prompt in enumerate(prompts)]
    assert classes == [None if fault is None else fault.removesuffix("_400") for fault in faults]


def test_key_never_appears_in_errors_or_description(server_factory):
    server = server_factory(per_prompt={PROMPT: ["unauthorized"]})
    model = make_model(server)
    answer = model.answer(make_row())
    assert answer.error_class == "client_error"
    assert "HTTP 401" in answer.error and "[redacted]" in answer.error
    assert KEY not in answer.error
    assert KEY not in repr(model.describe()) and KEY not in repr(answer)
    assert KEY not in repr(hosted_settings_from_env({"AZURE_ENDPOINT": server.endpoint, "AZURE_API_KEY": KEY}))


def test_description_drops_credentials_hidden_in_the_endpoint():
    model = HostedModel(f"https://user:{KEY}@example.invalid/openai/deployments/gpt-4o?sig={KEY}", KEY, api_version="2024-02-15-preview")
    description = model.describe()
    assert KEY not in repr(description)
    assert description["endpoint"] == "https://example.invalid/openai/deployments/gpt-4o"
    assert (description["deployment"], description["api_version"]) == ("gpt-4o", "2024-02-15-preview")


def test_concurrent_rows_with_random_429s_all_get_answers(server_factory):
    prompts = [f"row {index}" for index in range(24)]
    server = server_factory(
        answers={prompt: prompt.upper() for prompt in prompts},
        rates={"rate_limit": 0.3},
        retry_after_ms=20,
        max_faults_per_prompt=2,
        seed=7,
    )
    model = make_model(server, max_retries=3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda item: model.answer(make_row(item[1], item[0])), enumerate(prompts)))
    assert [answer.text for answer in answers] == [prompt.upper() for prompt in prompts]
    gaps = server.retry_gaps()
    assert gaps and all(gap >= asked for asked, gap in gaps)
    assert server.fault_counts()["rate_limit:ms=20"] == len(gaps)
    assert sum(answer.retries.get("rate_limit", 0) for answer in answers) == len(gaps)


# -- settings from the environment ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "AZURE_ENDPOINT"),
        ({"AZURE_API_KEY": KEY}, "AZURE_ENDPOINT"),
        ({"AZURE_ENDPOINT": "https://x.example/openai/deployments/d"}, "AZURE_API_KEY"),
        # An empty value is as good as none.
        ({"AZURE_ENDPOINT": "https://x.example/openai/deployments/d", "AZURE_API_KEY": "  "}, "AZURE_API_KEY"),
    ],
)
def test_missing_setting_is_named(environ, missing):
    with pytest.raises(HostedSettingsError, match=f"^{missing} is not set"):
        hosted_settings_from_env(environ)


def test_settings_from_env_with_optional_version():
    base = {"AZURE_ENDPOINT": "https://x.example/openai/deployments/d/", "AZURE_API_KEY": KEY}
    assert hosted_settings_from_env(base).api_version is None
    settings = hosted_settings_from_env({**base, "AZURE_API_VERSION": "2024-02-15-preview"})
    assert (settings.endpoint, settings.api_key, settings.api_version) == (
        "https://x.example/openai/deployments/d",
        KEY,
        "2024-02-15-preview",
    )


@pytest.mark.parametrize("endpoint", ["x.example/openai/deployments/d", "https://x.example/openai/deployments/d/chat/completions"])
def test_endpoint_that_would_build_a_wrong_url_is_refused(endpoint):
    with pytest.raises(HostedSettingsError, match="AZURE_ENDPOINT must"):
        hosted_settings_from_env({"AZURE_ENDPOINT": endpoint, "AZURE_API_KEY": KEY})


# -- retry policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the precise header wins
        ({"Retry-After": "3"}, 3.0),  # header names are case-insensitive
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "soon"}, None),  # neither seconds nor a date
        ({"retry-after": "-4"}, None),  # a negative wait is no wait
        ({"retry-after-ms": "nan", "retry-after": "2"}, 2.0),  # an unusable ms value falls back
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": header}, now=now.timestamp()) == 30.0


def test_next_wait_honours_the_server_floor_and_the_budget():
    policy = RetryPolicy(max_retries=3, row_budget_s=10, base_wait_s=0.5, max_wait_s=4)
    rng = random.Random(0)
    waits = [policy.next_wait(retry, None, 100, rng) for retry in range(3)]
    # Jittered exponential backoff: within [half, full] of 0.5, 1, 2.
    assert all(cap / 2 <= wait <= cap for wait, cap in zip(waits, [0.5, 1, 2]))
    assert 2.0 <= policy.next_wait(0, 2.0, 100, rng) <= 2.05
    assert policy.next_wait(0, 600, 9.5, rng) is None  # would overrun the row budget
    assert policy.next_wait(3, None, 100, rng) is None  # retries used up


# -- the fault server's own promises -------------------------------------------------------------


def test_fault_server_answers_503_past_its_request_limit(server_factory):
    server = server_factory(max_requests=2)
    model = make_model(server, max_retries=0)
    answers = [model.answer(make_row()) for _ in range(3)]
    assert [answer.error_class for answer in answers] == [None, None, "server"]
    assert server.fault_counts() == {"none": 2, "over_limit": 1}


def test_fault_server_stops_itself_after_max_seconds():
    server = FaultServer(max_seconds=0.3).start()
    endpoint = server.endpoint
    time.sleep(0.6)
    answer = HostedModel(endpoint, KEY, max_retries=0, timeout_s=2).answer(make_row())
    assert answer.error_class == "server" and "connection failed" in answer.error
    server.stop()


def test_random_faults_repeat_for_the_same_seed_whatever_the_order(server_factory):
    prompts = [f"row {index}" for index in range(30)]
    labels = []
    for order in (prompts, prompts[::-1]):
        server = server_factory(rates={"server_error": 0.3, "quota": 0.1}, seed=3)
        model = make_model(server, max_retries=0)
        for prompt in order:
            model.answer(make_row(prompt))
        labels.append({record.prompt: record.fault for record in server.requests})
    assert labels[0] == labels[1]
    assert {"server_error", "quota", None} == set(labels[0].values())
