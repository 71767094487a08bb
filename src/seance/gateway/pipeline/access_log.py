"""The access log: one line per request, after its last byte — method, path, status, model,
deployment, duration, request id (never a key or a body). Off by default: it is left out of the
hook list, so it costs nothing then."""

from __future__ import annotations

from typing import Any

from seance.gateway.context import RequestContext
from seance.gateway.logs import AccessWriter
from seance.gateway.pipeline import Hook


class AccessLog(Hook):
    name = "access_log"

    def __init__(self, writer: AccessWriter) -> None:
        self.writer = writer

    async def after(self, ctx: RequestContext) -> None:
        self.after_now(ctx)

    def after_now(self, ctx: RequestContext) -> None:
        duration = ctx.duration or 0.0
        deployment = ctx.deployment.id if ctx.deployment is not None else None
        message = (
            f"{ctx.method} {ctx.path} {ctx.status} model={ctx.model or '-'} deployment={deployment or '-'} "
            f"{duration * 1000:.1f}ms id={ctx.id}"
        )
        # the fields are the JSON format's only: a plain line is its message (making them anyway
        # cost a plain line 8.6k of its 31k instructions: bench/instructions.py --access-log)
        self.writer.write(message, _fields(ctx, duration, deployment) if self.writer.json else None)


def _fields(ctx: RequestContext, duration: float, deployment: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": ctx.id,
        "method": ctx.method,
        "path": ctx.path,
        "status": ctx.status,
        "model": ctx.model,
        "deployment": deployment,
        "duration_ms": round(duration * 1000, 3),
        "stream": ctx.stream,
        "retries": ctx.retries,
        "fallbacks": ctx.fallbacks,
    }
    if ctx.usage is not None:
        fields["prompt_tokens"] = ctx.usage.prompt_tokens
        fields["completion_tokens"] = ctx.usage.completion_tokens
    if ctx.cost is not None:
        fields["cost"] = ctx.cost
    if ctx.client_first_byte is not None and ctx.stream:
        fields["ttft_ms"] = round((ctx.client_first_byte - ctx.received) * 1000, 3)
    return fields
