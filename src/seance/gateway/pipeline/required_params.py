"""Required request fields: LiteLLM's `general_settings.enforce_user_param` (every LLM request names
its end user in `user`) and `enforced_params` (body fields, or a field of one: `metadata.generation_name`).

A request without one is refused with a 400 that names the field and the setting, before the
limits count it, the cache looks it up or a provider sees it. Every caller is held to it, the
master key too: the setting is there so that no traffic escapes attribution, and the gateway cannot
tell an admin's test from an application. Fields are looked for in the body as the client sent it
(LiteLLM's gateway fields, such as `metadata` and `tags`, included)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seance.gateway.context import RequestContext
from seance.gateway.errors import BadRequest
from seance.gateway.pipeline import Answer, Hook

_MISSING = object()


class RequiredParams(Hook):
    name = "required params"

    def __init__(self, required: Sequence[tuple[str, str]]) -> None:
        """`required`: (a field's name, or two joined by a dot; the setting that asks for it)."""
        self.required = tuple((name.split(".", 1), name, setting) for name, setting in required)
        self.before_now = self._check

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        return self._check(ctx, body)

    def _check(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        if body is None:
            return None  # GET routes: no body to hold to anything
        fields = ctx.gateway_fields
        for path, name, setting in self.required:
            value = body.get(path[0], _MISSING)
            if value is _MISSING:
                value = fields.get(path[0], _MISSING)
            if value is _MISSING or (len(path) == 2 and not (isinstance(value, dict) and path[1] in value)):
                raise BadRequest(f"{name} is required by this gateway ({setting}): add it to the request", param=name)
        return None


def required_of(enforce_user_param: bool, enforced_params: Sequence[str]) -> list[tuple[str, str]]:
    """The general settings' required fields, each with the setting that asks for it."""
    required = [("user", "general_settings.enforce_user_param")] if enforce_user_param else []
    named = {name for name, _ in required}
    for name in enforced_params:
        if name not in named:
            named.add(name)
            required.append((name, "general_settings.enforced_params"))
    return required
