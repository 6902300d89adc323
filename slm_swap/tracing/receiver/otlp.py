"""Decoding OTLP trace export requests (protobuf or JSON, optionally gzip) into plain span records.

Used by the local Langfuse-compatible receiver. OTLP/JSON differs from the
protobuf JSON mapping in one place that matters: trace and span ids are hex
strings, not base64, so they are converted before `json_format` parses them.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass, field, fields
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

ID_KEYS = ("traceId", "spanId", "parentSpanId")


class OtlpDecodeError(ValueError):
    """The body is not a readable OTLP trace export request; the message says why."""


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived: ids in lowercase hex, attributes as plain Python values."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_ns: int
    end_time_ns: int
    attributes: dict[str, Any]
    scope_name: str
    resource: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0
    status_message: str = ""

    @property
    def observation_type(self) -> str | None:
        return self.attributes.get("langfuse.observation.type")

    def json_attribute(self, key: str) -> Any:
        """Langfuse stores input, output, usage and metadata values as JSON text; this parses one."""
        raw = self.attributes.get(key)
        return None if raw is None else json.loads(raw)

    def to_json(self) -> dict[str, Any]:
        """The fields as a dict, shallow: asdict's deep copy cost more than the rest of the dump (values are plain JSON)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def decompress(body: bytes, content_encoding: str) -> bytes:
    """Langfuse decodes gzip only (the SDK says so in span_processor.py), so nothing else is accepted."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise OtlpDecodeError(f"unsupported Content-Encoding {content_encoding!r}")
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise OtlpDecodeError(f"body is not valid gzip ({exc})") from exc


def parse_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            document = json.loads(body)
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, request)
        except (ValueError, json_format.ParseError) as exc:
            raise OtlpDecodeError(f"not an OTLP/JSON trace request ({exc})") from exc
        return request
    if kind in ("application/x-protobuf", "application/protobuf"):
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpDecodeError(f"not an OTLP protobuf trace request ({exc})") from exc
        return request
    raise OtlpDecodeError(f"unsupported Content-Type {content_type!r}")


def decode_spans(body: bytes, content_type: str, content_encoding: str = "") -> list[ReceivedSpan]:
    request = parse_request(decompress(body, content_encoding), content_type)
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise OtlpDecodeError(f"span {span.name!r} has an invalid trace or span id")
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        start_time_ns=span.start_time_unix_nano,
                        end_time_ns=span.end_time_unix_nano,
                        attributes=attributes_to_dict(span.attributes),
                        scope_name=scope_spans.scope.name,
                        resource=resource,
                        status_code=span.status.code,
                        status_message=span.status.message,
                    )
                )
    return spans


def attributes_to_dict(attributes: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in attributes if isinstance(kv, KeyValue)}


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _hex_ids_to_base64(node: Any) -> None:
    """Rewrite OTLP/JSON's hex ids in place into the base64 that the protobuf JSON mapping expects."""
    if isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ID_KEYS and isinstance(value, str):
            try:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError as exc:
                raise OtlpDecodeError(f"{key} {value!r} is not hex") from exc
        else:
            _hex_ids_to_base64(value)
