"""OpenTelemetry traces received by an in-test OTLP/HTTP collector on 127.0.0.1: one trace per
request, the GenAI attributes on its server span, a client span for each try of a provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.fresh import packages_after
from tests.gateway.asgi_client import KEY, deployment, request
from tests.gateway.conftest import GatewayFactory
from tests.gateway.conftest import deployment as e2e_deployment
from tests.wire import ReplayUpstream, load

from seance.gateway.app import Gateway
from seance.gateway.config import load_settings
from seance.gateway.pipeline.auth import Auth
from seance.gateway.pipeline.traces import Traces, exporter
from seance.gateway.trace_export import TraceExport
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse, MockTransport

ANSWER = (
    b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}


class Collector:
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf bodies."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []  # each export's resource attributes
        self.headers: list[dict[str, str]] = []  # each export's request headers
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                assert self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf"
                export = ExportTraceServiceRequest.FromString(body)
                with collector.lock:
                    collector.headers.append({name.lower(): value for name, value in self.headers.items()})
                    for resource in export.resource_spans:
                        collector.resources.append(attributes(resource.resource))
                        for scope in resource.scope_spans:
                            collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait(self, count: int, seconds: float = 10) -> list[Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= count:
                    return list(self.spans)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.spans)} spans arrived, not {count}")


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
    found.thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def attributes(span: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        values[item.key] = getattr(item.value, kind)
    return values


def test_one_trace_per_request_with_a_span_per_try(tmp_path: Path, collector: Collector) -> None:
    def first_fails(call: UpstreamRequest) -> MockResponse:
        if "first" in call.url:
            return MockResponse(500, b'{"error":{"message":"down"}}')
        return MockResponse(200, ANSWER)

    prices = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
    config = {
        "model_list": [
            # picked first nearly always (weight), so that at least one request fails over
            deployment(
                "gpt", "openai/gpt-4o", api_base="http://first.test", weight=1000, model_info={"id": "one", **prices}
            ),
            deployment("gpt", "openai/gpt-4o", api_base="http://second.test", model_info={"id": "two", **prices}),
        ],
        "litellm_settings": {"callbacks": ["otel"]},
    }
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps(config))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    assert settings.traces == TraceExport(collector.url + "/v1/traces")
    traces = Traces(exporter(settings.traces), delay_ms=50)
    app = Gateway(settings, [Auth(KEY, False), traces], MockTransport(first_fails))
    for _ in range(4):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert traces.flush()
    spans = collector.wait(4)
    roots = [s for s in spans if not s.parent_span_id]
    assert len(roots) == 4 and len({s.trace_id for s in roots}) == 4  # one trace per request
    for root in roots:
        seen = attributes(root)
        assert root.name == "chat gpt" and root.kind == root.SPAN_KIND_SERVER
        assert seen["gen_ai.operation.name"] == "chat" and seen["gen_ai.request.model"] == "gpt"
        assert seen["gen_ai.provider.name"] == "openai" and seen["gen_ai.response.model"] == "gpt-4o"
        assert (seen["gen_ai.usage.input_tokens"], seen["gen_ai.usage.output_tokens"]) == (7, 3)
        assert seen["gen_ai.usage.cost"] == pytest.approx(7e-6 + 6e-6)
        assert seen["http.response.status_code"] == 200
        tries = [s for s in spans if s.trace_id == root.trace_id and s.parent_span_id == root.span_id]
        assert all(t.kind == t.SPAN_KIND_CLIENT and root.start_time_unix_nano <= t.start_time_unix_nano for t in tries)
        assert all(t.end_time_unix_nano <= root.end_time_unix_nano for t in tries)
        ids = [attributes(t)["seance.deployment_id"] for t in sorted(tries, key=lambda t: t.start_time_unix_nano)]
        assert ids in (["two"], ["one", "two"])  # "one" fails until it cools down
        if len(tries) == 2:
            failed = min(tries, key=lambda t: t.start_time_unix_nano)
            assert failed.status.code == failed.status.STATUS_CODE_ERROR
            assert attributes(failed)["http.response.status_code"] == 500
    assert any(len([s for s in spans if s.parent_span_id == r.span_id]) == 2 for r in roots)


def test_the_real_gateway_exports_to_otel_exporter_otlp_endpoint(gateway: GatewayFactory, collector: Collector) -> None:
    with ReplayUpstream() as upstream:
        upstream.add("/v1/chat/completions", load("openai/chat-nonstream.httprr.txt")[0])
        config = {
            "model_list": [e2e_deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")],
            "litellm_settings": {"callbacks": ["otel"]},
        }
        served = gateway(config, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
        with served.openai() as client:
            client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
        spans = collector.wait(2)
    (root,) = [s for s in spans if not s.parent_span_id]
    assert attributes(root)["gen_ai.request.model"] == "gpt"
    (attempt,) = [s for s in spans if s.parent_span_id == root.span_id]
    assert attributes(attempt)["gen_ai.request.model"] == "gpt-3.5-turbo"


def test_litellms_otel_variables_name_the_collector_its_headers_and_the_service(
    gateway: GatewayFactory, collector: Collector
) -> None:
    with ReplayUpstream() as upstream:
        upstream.add("/v1/chat/completions", load("openai/chat-nonstream.httprr.txt")[0])
        config = {
            "model_list": [e2e_deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")],
            "litellm_settings": {"callbacks": ["otel"]},
        }
        env = {
            "OTEL_EXPORTER": "otlp_http", "OTEL_ENDPOINT": collector.url,
            "OTEL_HEADERS": "Authorization=Bearer%20team-secret,x-scope=llm", "OTEL_SERVICE_NAME": "llm-gateway",
            "OTEL_ENVIRONMENT_NAME": "staging",
        }  # fmt: skip
        served = gateway(config, env)
        with served.openai() as client:
            client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
        collector.wait(2)
    with collector.lock:
        sent, resource = collector.headers[0], collector.resources[0]
    assert sent["authorization"] == "Bearer team-secret" and sent["x-scope"] == "llm"
    assert resource["service.name"] == "llm-gateway" and resource["deployment.environment"] == "staging"
    assert "team-secret" not in served.output()


def test_otel_without_an_endpoint_warns_and_sends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    config = {"model_list": [deployment("gpt", "openai/gpt-4o")], "litellm_settings": {"callbacks": ["otel"]}}
    path.write_bytes(orjson.dumps(config))
    settings = load_settings(path, {}, announce=False)
    assert settings.traces is None and not settings.ignored
    assert any("OTEL_EXPORTER_OTLP_ENDPOINT" in warning for warning in settings.warnings)


def test_nothing_of_otel_or_prometheus_is_imported_when_they_are_off() -> None:
    code = (
        "from seance.gateway.app import Gateway\n"
        "from seance.gateway.pipeline import hooks\n"
        "hooks.build(hooks.Features('sk-1'))\n"
    )
    assert not packages_after(code) & {"opentelemetry", "prometheus_client"}
