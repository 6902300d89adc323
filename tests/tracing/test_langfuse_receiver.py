"""The local Langfuse-compatible receiver, spoken to over real HTTP: auth, OTLP decoding, scores, failure modes, the CLI."""

from __future__ import annotations

import base64
import gzip
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from langfuse import Langfuse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace import TracerProvider

from slm_swap.tracing.receiver.server import SCORES_PATH, TRACES_PATH, LangfuseReceiver

REPO = Path(__file__).resolve().parents[2]
KEYS = ("pk-lf-recv", "sk-lf-recv")
TRACE_ID = bytes(range(16))
ROOT_ID = bytes(range(8))
CHILD_ID = bytes(range(8, 16))


def basic(public: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()}


AUTH = basic(*KEYS)


@pytest.fixture(scope="module")
def shared() -> Iterator[LangfuseReceiver]:
    with LangfuseReceiver([KEYS]) as server:
        yield server


@pytest.fixture
def receiver(shared: LangfuseReceiver) -> LangfuseReceiver:
    shared.clear()
    return shared


def export_request() -> ExportTraceServiceRequest:
    """A root span and one child with Langfuse attributes of several OTLP value kinds."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="test")))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "langfuse-sdk"
    root = scope_spans.spans.add(
        trace_id=TRACE_ID, span_id=ROOT_ID, name="eval:structured:replay", start_time_unix_nano=10, end_time_unix_nano=50
    )
    root.attributes.append(KeyValue(key="langfuse.trace.name", value=AnyValue(string_value="eval:structured:replay")))
    child = scope_spans.spans.add(
        trace_id=TRACE_ID, span_id=CHILD_ID, parent_span_id=ROOT_ID, name="test-0000", start_time_unix_nano=20, end_time_unix_nano=30
    )
    child.attributes.extend(
        [
            KeyValue(key="langfuse.observation.type", value=AnyValue(string_value="generation")),
            KeyValue(key="langfuse.observation.input", value=AnyValue(string_value='[{"role": "user"}]')),
            KeyValue(key="count", value=AnyValue(int_value=3)),
            KeyValue(key="ratio", value=AnyValue(double_value=0.5)),
            KeyValue(key="flag", value=AnyValue(bool_value=True)),
        ]
    )
    child.attributes.add(key="tags").value.array_value.values.add(string_value="a")
    return request


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as exporters write it: camelCase fields and hex (not base64) ids."""
    document = json_format.MessageToDict(request)
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def post(receiver: LangfuseReceiver, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(receiver.url + path, content=body, headers={**AUTH, **headers}, timeout=5)


def test_health_answers_without_keys(receiver: LangfuseReceiver) -> None:
    response = httpx.get(receiver.url + "/api/public/health", timeout=5)
    assert (response.status_code, response.json()["status"]) == (200, "OK")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (AUTH, 200),  # the accepted pair
        (basic(KEYS[0], "sk-wrong"), 401),  # right public key, wrong secret
        (basic("pk-other", KEYS[1]), 401),  # unknown public key
        ({}, 401),  # no credentials at all
        ({"Authorization": "Basic not-base64!"}, 401),  # garbage credentials
    ],
)
def test_projects_checks_basic_auth(receiver: LangfuseReceiver, headers: dict[str, str], status: int) -> None:
    response = httpx.get(receiver.url + "/api/public/projects", headers=headers, timeout=5)
    assert response.status_code == status
    if status == 200:
        assert response.json()["data"][0]["id"] == receiver.project_id


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("application/x-protobuf", lambda r: r.SerializeToString()),  # plain protobuf
        ("application/x-protobuf", lambda r: gzip.compress(r.SerializeToString())),  # gzip, as the SDK sends it
        ("application/json", otlp_json),  # OTLP/JSON with hex ids
    ],
)
def test_otlp_bodies_decode_to_the_same_spans(receiver: LangfuseReceiver, content_type: str, encode) -> None:
    body = encode(export_request())
    headers = {"Content-Type": content_type}
    if body[:2] == b"\x1f\x8b":
        headers["Content-Encoding"] = "gzip"
    assert post(receiver, TRACES_PATH, body, headers).status_code == 200
    root, child = receiver.spans()
    assert (root.trace_id, root.span_id, root.parent_span_id) == (TRACE_ID.hex(), ROOT_ID.hex(), None)
    assert (child.span_id, child.parent_span_id, child.name) == (CHILD_ID.hex(), ROOT_ID.hex(), "test-0000")
    assert (child.start_time_ns, child.end_time_ns, child.scope_name) == (20, 30, "langfuse-sdk")
    assert child.attributes == {
        "langfuse.observation.type": "generation",
        "langfuse.observation.input": '[{"role": "user"}]',
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "tags": ["a"],
    }
    assert child.json_attribute("langfuse.observation.input") == [{"role": "user"}]
    assert root.resource["service.name"] == "test"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json", {"Content-Type": "application/json"}),  # broken OTLP/JSON
        (b"plain bytes", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}),  # claims gzip, is not
        (b"<xml/>", {"Content-Type": "text/xml"}),  # not an OTLP content type
        (
            b"x\x9c\x03\x00\x00\x00\x00\x01",
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "deflate"},
        ),  # Langfuse reads gzip only
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}',
            {"Content-Type": "application/json"},
        ),  # ids not hex
    ],
)
def test_unreadable_trace_uploads_get_400_and_store_nothing(receiver: LangfuseReceiver, body: bytes, headers: dict[str, str]) -> None:
    assert post(receiver, TRACES_PATH, body, headers).status_code == 400
    assert receiver.spans() == []


def test_trace_upload_with_wrong_key_is_401(receiver: LangfuseReceiver) -> None:
    response = httpx.post(
        receiver.url + TRACES_PATH,
        content=export_request().SerializeToString(),
        headers={**basic(KEYS[0], "nope"), "Content-Type": "application/x-protobuf"},
        timeout=5,
    )
    assert response.status_code == 401
    assert receiver.spans() == []


def test_scores_accepted_and_rejected_like_langfuse(receiver: LangfuseReceiver) -> None:
    good = {"id": "s1", "traceId": "t" * 32, "observationId": "o" * 16, "name": "exact_match", "value": 1.0, "dataType": "BOOLEAN"}
    assert post(receiver, SCORES_PATH, json.dumps([good]).encode(), {"Content-Type": "application/json"}).status_code == 202
    bad = [{**good, "id": "s2", "value": 2.0}, {"id": "s3", "name": "orphan", "value": 1.0}]
    response = post(receiver, SCORES_PATH, json.dumps([good, *bad]).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 207
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 2)
    assert [s["id"] for s in receiver.scores()] == ["s1", "s1"]
    assert post(receiver, SCORES_PATH, json.dumps(good).encode(), {"Content-Type": "application/json"}).status_code == 400


def test_failure_mode_hits_ingestion_only_and_clear_ends_it(receiver: LangfuseReceiver) -> None:
    receiver.fail_ingestion(500)
    body = export_request().SerializeToString()
    assert post(receiver, TRACES_PATH, body, {"Content-Type": "application/x-protobuf"}).status_code == 500
    assert post(receiver, SCORES_PATH, b"[]", {"Content-Type": "application/json"}).status_code == 500
    assert httpx.get(receiver.url + "/api/public/projects", headers=AUTH, timeout=5).status_code == 200
    receiver.fail_ingestion(503, traces=False)
    assert post(receiver, TRACES_PATH, body, {"Content-Type": "application/x-protobuf"}).status_code == 200
    receiver.clear()
    assert post(receiver, SCORES_PATH, b"[]", {"Content-Type": "application/json"}).status_code == 202
    assert len(receiver.spans()) == 0


def test_unknown_route_is_404(receiver: LangfuseReceiver) -> None:
    assert httpx.get(receiver.url + "/api/public/traces", headers=AUTH, timeout=5).status_code == 404


def test_request_log_keeps_no_credentials(receiver: LangfuseReceiver) -> None:
    post(receiver, TRACES_PATH, export_request().SerializeToString(), {"Content-Type": "application/x-protobuf"})
    (request,) = receiver.requests()
    assert (request.path, request.status, request.public_key) == (TRACES_PATH, 200, KEYS[0])
    assert KEYS[1] not in repr(request) and AUTH["Authorization"] not in repr(request)


def test_dump_dir_holds_one_file_per_trace(tmp_path: Path) -> None:
    with LangfuseReceiver([KEYS], dump_dir=tmp_path) as server:
        httpx.post(
            server.url + TRACES_PATH,
            content=export_request().SerializeToString(),
            headers={**AUTH, "Content-Type": "application/x-protobuf"},
            timeout=5,
        )
        score = {"id": "s1", "traceId": TRACE_ID.hex(), "name": "exact_match_rate", "value": 0.5}
        httpx.post(server.url + SCORES_PATH, json=[score], headers=AUTH, timeout=5)
    trace = json.loads((tmp_path / f"trace-{TRACE_ID.hex()}.json").read_text())
    assert trace["name"] == "eval:structured:replay"
    assert [s["name"] for s in trace["spans"]] == ["eval:structured:replay", "test-0000"]
    assert trace["scores"] == [score]
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["traces"] == [
        {"trace_id": TRACE_ID.hex(), "name": "eval:structured:replay", "spans": 2, "scores": 1, "file": f"trace-{TRACE_ID.hex()}.json"}
    ]


def test_cli_runs_until_terminated_and_leaves_json(tmp_path: Path) -> None:
    dump = tmp_path / "langfuse-local"
    command = [
        sys.executable,
        "-m",
        "slm_swap.tracing.receiver.server",
        "--port",
        "0",
        "--dump-dir",
        str(dump),
        "--public-key",
        KEYS[0],
        "--secret-key",
        KEYS[1],
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = line.split("listening on ")[1].split(";")[0]
        assert json.loads((dump / "receiver.json").read_text())["url"] == url
        response = httpx.post(
            url + TRACES_PATH,
            content=gzip.compress(export_request().SerializeToString()),
            headers={**AUTH, "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            timeout=5,
        )
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads((dump / "index.json").read_text())["traces"][0]["spans"] == 2


def test_delay_mode_holds_uploads_until_cleared(receiver: LangfuseReceiver) -> None:
    receiver.delay_ingestion(30)
    started = time.monotonic()
    with httpx.Client(timeout=0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.post(receiver.url + SCORES_PATH, json=[], headers=AUTH)
    receiver.clear()
    assert time.monotonic() - started < 5
    assert httpx.post(receiver.url + SCORES_PATH, json=[], headers=AUTH, timeout=20).status_code == 202


def test_sdk_with_its_own_defaults_is_understood(receiver: LangfuseReceiver) -> None:
    """The SDK's default exporter (its headers, gzip protobuf) and score upload, without slm_swap in between."""
    receiver.accept_key("pk-lf-sdk-direct", "sk-lf-sdk-direct")
    provider = TracerProvider(shutdown_on_exit=False)
    client = Langfuse(public_key="pk-lf-sdk-direct", secret_key="sk-lf-sdk-direct", base_url=receiver.url, tracer_provider=provider)
    try:
        assert client.auth_check()
        root = client.start_observation(name="direct", input={"q": 1})
        generation = root.start_observation(name="row", as_type="generation", model="m")
        generation.end()
        root.end()
        client.create_score(name="ok", value=1.0, trace_id=root.trace_id, observation_id=generation.id, data_type="BOOLEAN")
        client.flush()
    finally:
        client.shutdown()
        provider.shutdown()
    spans = {s.name: s for s in receiver.spans(root.trace_id)}
    assert spans["row"].parent_span_id == spans["direct"].span_id
    assert spans["direct"].json_attribute("langfuse.observation.input") == {"q": 1}
    assert [(s["name"], s["observationId"]) for s in receiver.scores()] == [("ok", generation.id)]
    upload = next(r for r in receiver.requests() if r.path == TRACES_PATH)
    assert (upload.content_type, upload.content_encoding, upload.public_key) == ("application/x-protobuf", "gzip", "pk-lf-sdk-direct")


def test_chunked_upload_is_read(receiver: LangfuseReceiver) -> None:
    """OpenTelemetry JS (Mastra's Langfuse exporter) streams its body in chunks, with no Content-Length."""
    body = export_request().SerializeToString()

    def chunks() -> Iterator[bytes]:
        yield body[:10]
        yield body[10:]

    headers = {**AUTH, "Content-Type": "application/x-protobuf"}
    response = httpx.post(receiver.url + TRACES_PATH, content=chunks(), headers=headers, timeout=5)
    assert response.status_code == 200
    assert len(receiver.spans()) == 2


def test_upload_without_length_is_411(receiver: LangfuseReceiver) -> None:
    host, port = receiver.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"POST {SCORES_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {AUTH['Authorization']}\r\n\r\n[]".encode())
        status_line = conn.makefile("rb").readline()
    assert status_line.split()[1] == b"411"
