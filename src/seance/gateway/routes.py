"""The gateway's routes: one table, each path with its method, front, and whether it needs a key.

The OpenAI paths are served with and without `/v1` (LiteLLM does both); `/v1/models/{id}` takes
ids with slashes ("openai/gpt-4o").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the endpoint: chat, completion, embedding, messages, count_tokens, models, model, …
    method: str
    front: str  # whose shapes it speaks, errors included: "openai" or "anthropic"
    auth: bool = True  # needs a key
    body: bool = False  # reads a JSON request body
    pipeline: bool = True  # runs the hooks (the probes do not: they must stay cheap)


CHAT = Route("chat", "POST", "openai", body=True)
COMPLETION = Route("completion", "POST", "openai", body=True)
EMBEDDING = Route("embedding", "POST", "openai", body=True)
MESSAGES = Route("messages", "POST", "anthropic", body=True)
COUNT_TOKENS = Route("count_tokens", "POST", "anthropic", body=True)
MODELS = Route("models", "GET", "openai")
MODEL = Route("model", "GET", "openai")
MODEL_INFO = Route("model_info", "GET", "openai")  # LiteLLM's, prices and context windows per deployment
MODEL_INFO_V2 = Route("model_info_v2", "GET", "openai")
MODEL_GROUP_INFO = Route("model_group_info", "GET", "openai")
HEALTH = Route("health", "GET", "openai")
ALIVE = Route("alive", "GET", "openai", auth=False, pipeline=False)
READY = Route("ready", "GET", "openai", auth=False, pipeline=False)
# Prometheus' scrapes: no hooks (they are not API requests); its own key check (fronts/metrics.py)
METRICS = Route("metrics", "GET", "openai", auth=False, pipeline=False)
# LiteLLM's management API (keys, teams, users, …): its own app (admin/), off the request path
ADMIN = Route("admin", "*", "openai", auth=False, pipeline=False)
NOT_FOUND = Route("not_found", "*", "openai", auth=False)

_OPENAI = {"/chat/completions": CHAT, "/completions": COMPLETION, "/embeddings": EMBEDDING, "/models": MODELS}

TABLE: dict[str, Route] = {
    **_OPENAI,
    **{"/v1" + path: route for path, route in _OPENAI.items()},
    "/messages": MESSAGES,
    "/v1/messages": MESSAGES,
    "/anthropic/v1/messages": MESSAGES,
    "/v1/messages/count_tokens": COUNT_TOKENS,
    "/anthropic/v1/messages/count_tokens": COUNT_TOKENS,
    "/health/liveliness": ALIVE,
    "/health/liveness": ALIVE,
    "/health/readiness": READY,
    "/health": HEALTH,
    "/model/info": MODEL_INFO,
    "/v1/model/info": MODEL_INFO,
    "/v2/model/info": MODEL_INFO_V2,
    "/model_group/info": MODEL_GROUP_INFO,
    "/metrics": METRICS,
}
MODEL_PREFIXES = ("/v1/models/", "/models/")
ADMIN_PREFIXES = (
    "/key/", "/team/", "/user/", "/customer/", "/end_user/", "/organization/", "/budget/", "/spend/",
    "/global/spend/", "/model/",  # /model/info is the API's own route (the table above)
    "/cache/",
)  # fmt: skip


def match(path: str) -> Route:
    """The route of a request path (trailing slashes ignored); NOT_FOUND when there is none."""
    route = TABLE.get(path)
    if route is not None:
        return route
    path = path.rstrip("/") or "/"
    route = TABLE.get(path)
    if route is not None:
        return route
    if path.startswith(MODEL_PREFIXES):
        return MODEL
    if path.startswith(ADMIN_PREFIXES):
        return ADMIN
    return NOT_FOUND


def model_id(path: str) -> str:
    """The id in /v1/models/{id}."""
    return path.rstrip("/").split("/models/", 1)[1]
