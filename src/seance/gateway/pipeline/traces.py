"""OpenTelemetry traces (LiteLLM's `callbacks: ["otel"]`; the optional extra `seance[otel]`): one
server span per API request with the GenAI semantic-convention attributes, and a client span
under it for each try of a provider (the failed ones from ctx.failed_attempts, then the last),
exported over OTLP/HTTP in batches by a background thread.

Spans are made after the last byte, from the context's timings, so tracing adds nothing to the
time a client waits. This module is imported only when traces are on.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from seance.gateway.context import RequestContext
from seance.gateway.pipeline import Hook
from seance.gateway.trace_export import TraceExport

# gen_ai.operation.name per endpoint (the semantic conventions' values)
OPERATIONS = {
    "chat": "chat", "messages": "chat", "completion": "text_completion", "embedding": "embeddings",
    "count_tokens": "count_tokens",
}  # fmt: skip


def exporter(export: TraceExport) -> SpanExporter:
    """OTLP/HTTP to the traces URL, with its headers; or stdout (OTEL_EXPORTER=console)."""
    if export.url is None:
        return ConsoleSpanExporter(service_name=export.service_name)
    return OTLPSpanExporter(endpoint=export.url, headers=dict(export.headers), timeout=10)


class Traces(Hook):
    name = "traces"
    needs_usage = True  # token counts of streams

    def __init__(
        self, exporter: SpanExporter, service_name: str = "seance", delay_ms: int = 2000, environment: str | None = None
    ) -> None:
        resource = {"service.name": service_name}
        if environment is not None:
            resource["deployment.environment"] = environment
        self.provider = TracerProvider(resource=Resource.create(resource))
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay_ms))
        self.tracer = self.provider.get_tracer("seance.gateway")

    async def after(self, ctx: RequestContext) -> None:
        if not ctx.route.body or ctx.ended is None:
            return  # not an LLM request
        epoch = ctx.started_at - ctx.received

        def wall(t: float) -> int:
            return int((epoch + t) * 1e9)

        operation = OPERATIONS.get(ctx.route.name, ctx.route.name)
        deployment = ctx.deployment
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "http.request.method": ctx.method,
            "http.route": ctx.path,
            "http.response.status_code": ctx.status,
            "seance.request_id": ctx.id,
            "seance.retries": ctx.retries,
            "seance.fallbacks": ctx.fallbacks,
        }
        if ctx.model is not None:
            attributes["gen_ai.request.model"] = ctx.model
        if deployment is not None:
            attributes["gen_ai.provider.name"] = deployment.target.provider
            attributes["gen_ai.system"] = deployment.target.provider  # the older spelling, still read
            attributes["gen_ai.response.model"] = deployment.target.model
            attributes["seance.deployment_id"] = deployment.id
        if ctx.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = ctx.usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = ctx.usage.completion_tokens
        if ctx.cost is not None:
            attributes["gen_ai.usage.cost"] = ctx.cost  # USD, from model_info prices (LiteLLM's spend)
        if ctx.cache_hit:
            attributes["seance.cache_hit"] = True
        name = f"{operation} {ctx.model}" if ctx.model else operation
        span = self.tracer.start_span(name, kind=SpanKind.SERVER, start_time=wall(ctx.received), attributes=attributes)
        if ctx.status >= 400:
            span.set_status(Status(StatusCode.ERROR, type(ctx.error).__name__ if ctx.error else str(ctx.status)))
        parent = trace.set_span_in_context(span)
        for attempt in ctx.failed_attempts:
            tried, status, sent, failed_at, _ = attempt
            child = self._attempt(tried, operation, sent or ctx.received, parent, wall)
            if status is not None:
                child.set_attribute("http.response.status_code", status)
            child.set_status(Status(StatusCode.ERROR, str(status or "no answer")))
            child.end(end_time=wall(failed_at))
        if deployment is not None and ctx.upstream_sent is not None and not ctx.cache_hit:
            child = self._attempt(deployment, operation, ctx.upstream_sent, parent, wall)
            if ctx.usage is not None:
                child.set_attribute("gen_ai.usage.input_tokens", ctx.usage.prompt_tokens)
                child.set_attribute("gen_ai.usage.output_tokens", ctx.usage.completion_tokens)
            child.end(end_time=wall(ctx.ended))
        span.end(end_time=wall(ctx.ended))

    def _attempt(self, deployment: Any, operation: str, start: float, parent: Any, wall: Any) -> Any:
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": deployment.target.provider,
            "gen_ai.system": deployment.target.provider,
            "gen_ai.request.model": deployment.target.model,
            "seance.deployment_id": deployment.id,
        }
        name = f"{operation} {deployment.target.model}"
        return self.tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, start_time=wall(start), attributes=attributes
        )

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.provider.force_flush(timeout_ms)
