"""A request body as every JSON API of the gateway takes it (the model APIs and the management
API): one JSON object, parsed once, nested no deeper than the gateway can write back out."""

from __future__ import annotations

from typing import Any

import orjson

from seance.gateway.errors import BadRequest

# orjson reads up to 1,024 levels but writes at most 254, so a body nested deeper fails (500)
# wherever it is re-serialized (translation, default params). Refused up front instead, with room
# for the levels a translation adds. The check is one orjson.dumps of the body wrapped in the
# levels it may not use: about a fifth of the parse's cost (measured: 97 KB agent request, parse
# 0.94 ms, check 0.17 ms on a loaded 2-core machine; a Python walk was 1.5 ms), and none for
# bodies too short to nest that deep.
MAX_DEPTH = 200
_ORJSON_MAX_DEPTH = 254


def too_deep(body: Any) -> bool:
    wrapped = body
    for _ in range(_ORJSON_MAX_DEPTH - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def json_object(raw: bytes) -> dict[str, Any]:
    """The parsed object; a 400 that says why for anything else."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    # nesting needs an opening bracket per level: counting them (C speed) spares most bodies the probe
    if len(raw) > 2 * MAX_DEPTH and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and too_deep(body):
        raise BadRequest(f"the request body nests deeper than {MAX_DEPTH} levels")
    return body
