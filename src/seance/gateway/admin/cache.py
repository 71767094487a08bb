"""LiteLLM's cache endpoints, for the response cache (pipeline/cache.py), in its paths and answers:

    GET  /cache/ping         is the cache there and working (Redis: PING, then a SET)
    POST /cache/delete       {"keys": [...]}: the entries of these `x-litellm-cache-key` values
                             (or of these Redis keys, `<namespace>:<key>`)
    POST /cache/flushall     every entry of the cache's namespace
    GET  /cache/redis/info   the Redis server's INFO and clients

Where Seance differs, and why:
- /cache/flushall empties the cache's namespace (`cache_params.namespace`, and any other a body
  names as `{"namespace": ...}`) by SCAN and UNLINK. LiteLLM sends FLUSHALL, which also empties
  what shares the server: here the rate limits' counters and the router's cooldowns.
- The in-process cache (type local) can be pinged, deleted from and flushed with one worker. With
  `--workers N` each worker keeps its own entries and a request reaches one of them, so delete and
  flushall are refused, saying so, rather than emptying one worker's cache. LiteLLM refuses both
  for its in-memory cache whatever the workers.

Pinging and INFO need an admin or an admin viewer; deleting and flushing, an admin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import Admin, Who, body, require
from seance.gateway.errors import BadRequest, GatewayError
from seance.gateway.pipeline.cache_stores import RedisStore

if TYPE_CHECKING:
    from seance.gateway.pipeline.cache import Cache


def routes(admin: Admin, cache: Cache | None, workers: Callable[[], int]) -> list[Route]:
    async def ping(request: Request, who: Who) -> Any:
        require(who, admin=True)
        found = _cache(cache)
        params = _params(found)
        try:
            checked = await found.store.ping()
        except Exception as exc:  # (the store's errors are many: each means "unhealthy")
            raise _unhealthy(found, exc) from None
        answer: dict[str, Any] = {"status": "healthy", "cache_type": found.config.type, **checked}
        answer["litellm_cache_params"] = orjson.dumps(params).decode()
        if found.config.type == "redis":
            answer["health_check_cache_params"] = params
        return answer

    async def delete(request: Request, who: Who) -> Any:
        require(who, write=True, admin=True)
        found = _shared_or_single(_cache(cache), workers(), "delete from")
        keys = (await body(request)).get("keys")
        if not isinstance(keys, list) or not keys or not all(isinstance(key, str) and key for key in keys):
            raise BadRequest('keys must be a list of cache keys (x-litellm-cache-key), such as {"keys": ["…"]}',
                             param="keys")  # fmt: skip
        prefix = found.config.namespace + ":"  # (a key given with it, as Redis lists it, is taken as it is)
        named = [key if key.startswith(prefix) else prefix + key for key in keys]
        deleted = await _guarded(found, found.store.delete(named))
        return {"status": "success", "deleted": deleted}

    async def flushall(request: Request, who: Who) -> Any:
        require(who, write=True, admin=True)
        found = _shared_or_single(_cache(cache), workers(), "flush")
        named = (await body(request)).get("namespace")
        namespace = found.config.namespace if named is None else named
        if not isinstance(namespace, str) or not 0 < len(namespace) <= 256:
            raise BadRequest("namespace must be a string of 1 to 256 characters", param="namespace")
        return {"status": "success", "deleted": await _guarded(found, found.store.flush(namespace + ":"))}

    async def redis_info(request: Request, who: Who) -> Any:
        require(who, admin=True)
        found = _cache(cache)
        if not isinstance(found.store, RedisStore):
            raise BadRequest(f"Cache type {found.config.type} does not support redis info", code="not_redis")
        try:
            return await found.store.info()
        except Exception as exc:
            raise _unhealthy(found, exc) from None

    return [
        admin.route("/cache/ping", ping, ["GET"]),
        admin.route("/cache/delete", delete, ["POST"]),
        admin.route("/cache/flushall", flushall, ["POST"]),
        admin.route("/cache/redis/info", redis_info, ["GET"]),
    ]


class Unavailable(GatewayError):
    def __init__(self, message: str) -> None:
        super().__init__(message, status=503, code="cache_unavailable")


def _cache(cache: Cache | None) -> Cache:
    if cache is None:
        raise Unavailable("Cache not initialized: set litellm_settings.cache: true (and cache_params) to turn it on")
    return cache


def _shared_or_single(cache: Cache, workers: int, verb: str) -> Cache:
    if cache.config.type == "local" and workers > 1:
        raise BadRequest(
            f"cannot {verb} the in-process cache (cache_params.type local) of {workers} workers: each keeps its "
            "own entries and this request reaches one of them; use cache_params.type redis to share one cache",
            code="per_worker_cache",
        )
    return cache


async def _guarded(cache: Cache, work: Awaitable[int]) -> int:
    try:
        return await work
    except Exception as exc:  # (the store's errors are many: each means "unhealthy")
        raise _unhealthy(cache, exc) from None


def _unhealthy(cache: Cache, exc: Exception) -> Unavailable:
    # the exception's class only: its text may hold the server's address with its password
    return Unavailable(f"Service Unhealthy: the {cache.config.type} cache did not answer ({type(exc).__name__})")


def _params(cache: Cache) -> dict[str, Any]:
    """How the cache is set up, as /cache/ping shows it: never the password."""
    config = cache.config
    params: dict[str, Any] = {"type": config.type, "namespace": config.namespace, "ttl": config.ttl,
                              "supported_call_types": sorted(config.endpoints)}  # fmt: skip
    if isinstance(cache.store, RedisStore):
        params["redis"] = cache.store.redis.where
    else:
        params["max_size_bytes"] = config.max_bytes
    return params
