"""Where traces go, read from the OTEL_* variables as OpenTelemetry's SDKs and LiteLLM name them."""

from __future__ import annotations

import pytest

from seance.gateway.config import ConfigError
from seance.gateway.trace_export import TraceExport, read, traces_url


def test_the_traces_url_wins_then_the_standard_base_then_litellms() -> None:
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318", "OTEL_ENDPOINT": "http://litellm:4318"}
    assert read(both) == (TraceExport("http://otel:4318/v1/traces"), [])
    assert read({"OTEL_ENDPOINT": "https://api.traceloop.com/"})[0] == TraceExport(
        "https://api.traceloop.com/v1/traces"
    )
    exact = {**both, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://in.example/custom"}
    assert read(exact)[0] == TraceExport("https://in.example/custom")
    assert read({"OTEL_TRACES_ENDPOINT": "https://in.example/t"})[0] == TraceExport("https://in.example/t")
    assert read({}) == (None, [])


def test_a_base_url_gets_the_traces_path_once() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"
    assert (
        traces_url("https://cloud.langfuse.com/api/public/otel")
        == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    )
    assert (
        traces_url("https://ingest.us0.signalfx.com/v2/trace/otlp") == "https://ingest.us0.signalfx.com/v2/trace/otlp"
    )


def test_headers_service_and_environment() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_HEADERS": "ignored=1",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20abc, x-team = t1 ,",
        "OTEL_SERVICE_NAME": "gw", "OTEL_ENVIRONMENT_NAME": "prod",
    }  # fmt: skip
    export, warnings = read(env)
    assert export is not None and warnings == []
    assert dict(export.headers) == {"Authorization": "Bearer abc", "x-team": "t1"}
    assert (export.service_name, export.environment) == ("gw", "prod")
    assert "abc" not in repr(export)  # (headers are credentials)
    litellms = {"OTEL_ENDPOINT": "http://c", "OTEL_HEADERS": "k=v"}
    assert read(litellms)[0] == TraceExport("http://c/v1/traces", {"k": "v"})


def test_a_header_that_is_not_name_value_stops_the_start_without_showing_it() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_HEADERS: header 2 is not name=value") as refused:
        read({"OTEL_ENDPOINT": "http://c", "OTEL_HEADERS": "a=1,sk-live-secret"})
    assert "sk-live-secret" not in str(refused.value)


def test_what_is_not_sent_as_asked_is_warned_of() -> None:
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}
    export, warnings = read({**base, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert export is not None and len(warnings) == 1 and "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in warnings[0]
    assert "4318" in warnings[0]
    assert "OTEL_EXPORTER=otlp_grpc" in read({**base, "OTEL_EXPORTER": "otlp_grpc"})[1][0]
    assert "http/protobuf" in read({**base, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"})[1][0]
    assert "did you mean otlp_http?" in read({**base, "OTEL_EXPORTER": "otlp_htp"})[1][0]
    assert read({**base, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER": "otlp_http"})[1] == []


def test_console_prints_the_spans_without_a_collector() -> None:
    assert read({"OTEL_EXPORTER": "console", "OTEL_SERVICE_NAME": "gw"}) == (TraceExport(None, {}, "gw"), [])
