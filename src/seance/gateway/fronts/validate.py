"""The request body: one orjson parse, and the few checks that let us answer 400 instead of
forwarding nonsense. Deep validation is the provider's job; its 4xx comes back to the client."""

from __future__ import annotations

from typing import Any

from seance.gateway.errors import BadRequest
from seance.gateway.formats.body import json_object

# endpoint -> (field that must be present, what it must be)
REQUIRED: dict[str, tuple[str, tuple[type, ...], str]] = {
    "chat": ("messages", (list,), "a non-empty array of messages"),
    "completion": ("prompt", (str, list), "a string or an array"),
    "embedding": ("input", (str, list), "a string or an array"),
    "messages": ("messages", (list,), "a non-empty array of messages"),
    "count_tokens": ("messages", (list,), "a non-empty array of messages"),
}


def parse(raw: bytes, endpoint: str) -> dict[str, Any]:
    body = json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        what = "is missing" if model is None else "must be a non-empty string"
        raise BadRequest(f"'model' {what}", param="model")
    name, kinds, description = REQUIRED[endpoint]
    value = body.get(name)
    if not isinstance(value, kinds) or (kinds == (list,) and not value):
        what = "is missing" if value is None else f"must be {description}"
        raise BadRequest(f"'{name}' {what}", param=name)
    if name == "messages" and isinstance(value, list):  # (a loop: all() over a generator cost ~1k more)
        for message in value:
            if not isinstance(message, dict):
                raise BadRequest("every item of 'messages' must be an object", param="messages")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", param="stream")
    return body
