"""The response cache: LiteLLM's `litellm_settings.cache: true` with its `cache_params`.

    before  the request's key: a 256-bit BLAKE2b of its canonical JSON — the endpoint, the caller's
            team (so tenants never read each other's answers) and every body field that changes
            the answer (the model group, messages / prompt / input, tools, sampling parameters),
            not `user`, `stream`, `stream_options`, `metadata` or LiteLLM's gateway fields. Sent
            back as `x-litellm-cache-key`. A hit answers here (replayed as a stream when the request
            streams); a miss that may be stored asks the relay to capture what the client is sent.
    after   a complete 200 answer is stored under `<namespace>:<key>` with its TTL: the bytes the
            client was sent, as they are (a stream's, assembled into one answer).

Model groups in one of `router_settings.caching_groups` share their answers: their requests are
keyed with the group's names in place of the model, so a request to one may be answered with what
another's provider said (the answer's own `model` field is the one it was stored with).

A request that repeats one which was a hit lately, byte for byte and from the same caller, skips
the canonical JSON and the hash: its key is remembered by its bytes (`_repeated`, bounded; a hit
costs ~10k instructions less, bench/instructions.py).

Per request (LiteLLM's names): the body's `cache` object — `no-cache` (do not look up), `no-store`
(do not store), `ttl`, `s-maxage` (accept only an entry at most this old), `namespace` — and the
`Cache-Control: no-cache | no-store | s-maxage=N` request header.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from hashlib import blake2b as _blake2b
from typing import Any

import orjson

from seance.gateway.config import ConfigError, Settings
from seance.gateway.context import Caller, RequestContext
from seance.gateway.errors import BadRequest, Forbidden
from seance.gateway.formats.openai import include_usage
from seance.gateway.pipeline import Answer, Hook
from seance.gateway.pipeline.cache_answers import Entry, assemble, replay
from seance.gateway.pipeline.cache_stores import Clock, LocalStore, RedisStore, Store
from seance.gateway.shared_state import find_redis
from seance.litellm_config.suggest import closest, typo_of

DEFAULT_TTL = 600.0  # LiteLLM's in-memory default; Redis entries get it too (see docs/gateway.md)
DEFAULT_NAMESPACE = "seance.cache"
DEFAULT_MAX_BYTES = 64 * 2**20
# LiteLLM's call types (cache_params.supported_call_types) → the routes that serve them
CALL_TYPES = {
    "completion": "chat", "acompletion": "chat", "text_completion": "completion", "atext_completion": "completion",
    "embedding": "embedding", "aembedding": "embedding", "anthropic_messages": "messages",
}  # fmt: skip
# call types LiteLLM knows whose endpoints Seance does not serve: nothing to cache, nothing to warn of
OTHER_CALL_TYPES = frozenset({
    "transcription", "atranscription", "speech", "aspeech", "rerank", "arerank", "responses", "aresponses",
    "image_generation", "aimage_generation", "moderation", "amoderation", "pass_through_endpoint",
})  # fmt: skip
# LiteLLM's cache types (LiteLLMCacheType): those Seance does not serve turn the cache off with a
# warning, so that a LiteLLM config still loads; any other name is a mistake
LITELLM_TYPES = ("local", "redis", "redis-semantic", "valkey-semantic", "s3", "disk", "qdrant-semantic",
                 "azure-blob", "gcs")  # fmt: skip
KNOWN_PARAMS = frozenset({
    "type", "host", "port", "password", "db", "url", "namespace", "ttl", "default_in_memory_ttl",
    "default_in_redis_ttl", "supported_call_types", "mode", "max_size_bytes", "ssl", "username",
})  # fmt: skip
# body fields that do not change the answer (its `model` is the model group: ctx.model is read from it)
NOT_KEYED = frozenset({"user", "stream", "stream_options", "metadata"})
# a mocked answer is not the model's: never served to, or stored from, a request
MOCKS = frozenset({"mock_response", "mock_testing_fallbacks", "mock_testing_rate_limit_error"})
CONTROLS = ("no-cache", "no-store", "ttl", "s-maxage", "namespace", "use-cache")
SSE = b"text/event-stream; charset=utf-8"
# bound once: each is read on every lookup
_dumps, SORT_KEYS = orjson.dumps, orjson.OPT_SORT_KEYS
HIT_HEADERS = [(b"cache-control", b"no-cache"), (b"x-litellm-response-cost", b"0.0")]


@dataclass(frozen=True)
class CacheConfig:
    type: str  # "local" or "redis"
    ttl: float = DEFAULT_TTL
    namespace: str = DEFAULT_NAMESPACE
    endpoints: frozenset[str] = frozenset(CALL_TYPES.values())
    max_bytes: int = DEFAULT_MAX_BYTES
    default_off: bool = False  # LiteLLM's mode: default_off — only requests with cache.use-cache


def read_config(settings: Settings) -> tuple[CacheConfig | None, list[str]]:
    """The cache the settings ask for (None: off), and the warnings of what is not acted on."""
    litellm = settings.file.litellm_settings
    if not litellm.cache:
        return None, []
    params: Mapping[str, Any] = litellm.cache_params
    where = f"{settings.source}: litellm_settings.cache_params"
    warnings = [
        f"{where}.{name} is not supported by Seance; ignored{_hint(typo_of(name, KNOWN_PARAMS))}"
        for name in params
        if name not in KNOWN_PARAMS
    ]
    kind = params.get("type")
    if kind is None:  # LiteLLM's proxy defaults to Redis; without one configured, this process
        kind = "redis" if find_redis(settings) is not None else "local"
    elif kind not in LITELLM_TYPES:
        raise ConfigError(
            f"{where}.type: {kind!r} is not a cache type (LiteLLM's: {', '.join(LITELLM_TYPES)}; Seance "
            f"serves local and redis){_hint(closest(str(kind), LITELLM_TYPES))}"
        )
    elif kind not in ("local", "redis"):
        warnings.append(f"{where}.type {kind!r} is not supported by Seance (local, redis); the cache is off")
        return None, warnings
    elif kind == "redis" and find_redis(settings) is None:
        many = [name for name in ("redis_startup_nodes", "sentinel_nodes") if params.get(name)]
        many += [name for name in ("REDIS_CLUSTER_NODES", "REDIS_SENTINEL_NODES") if settings.env.get(name)]
        why = ""
        if many:
            why = f"; {' and '.join(many)} (a Redis Cluster or Sentinel) is not supported: Seance needs one "
            why += "standalone Redis or Valkey"
        raise ConfigError(f"{where}.type is redis, but no Redis is configured (host, url, or REDIS_URL){why}")
    ttl = params.get("ttl") or params.get(f"default_in_{'redis' if kind == 'redis' else 'memory'}_ttl") or DEFAULT_TTL
    if not _positive(ttl):
        raise ConfigError(f"{where}.ttl: must be a positive number of seconds, not {ttl!r}")
    namespace = params.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str):
        raise ConfigError(f"{where}.namespace: must be a string, not {namespace!r}")
    max_bytes = params.get("max_size_bytes", DEFAULT_MAX_BYTES)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        raise ConfigError(f"{where}.max_size_bytes: must be a positive number of bytes, not {max_bytes!r}")
    endpoints = frozenset(CALL_TYPES.values())
    types = params.get("supported_call_types")
    if types is not None:
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ConfigError(f"{where}.supported_call_types: must be a list of call types such as acompletion")
        endpoints = frozenset(CALL_TYPES[t] for t in types if t in CALL_TYPES)
        warnings += [
            f"{where}.supported_call_types: {t!r} is not a call type Seance caches; ignored"
            + _hint(closest(t, [*CALL_TYPES, *OTHER_CALL_TYPES]))
            for t in types
            if t not in CALL_TYPES and t not in OTHER_CALL_TYPES
        ]
    mode = params.get("mode")
    if mode not in (None, "default_on", "default_off"):
        raise ConfigError(f"{where}.mode: must be default_on or default_off, not {mode!r}")
    return CacheConfig(kind, float(ttl), namespace, endpoints, max_bytes, mode == "default_off"), warnings


def _hint(near: str | None) -> str:
    return f"; did you mean '{near}'?" if near else ""


def build(settings: Settings) -> Cache | None:
    """The cache hook for the settings (None when caching is off); logs what it ignores."""
    from seance.gateway.config import announce

    config, warnings = read_config(settings)
    announce(settings, warnings)
    if config is None:
        return None
    redis = find_redis(settings) if config.type == "redis" else None
    store: Store = RedisStore(redis) if redis is not None else LocalStore(config.max_bytes)
    return Cache(config, store)


@dataclass(frozen=True, slots=True)
class Controls:
    lookup: bool = True
    store: bool = True
    ttl: float | None = None
    max_age: float | None = None
    namespace: str | None = None
    opted_in: bool = False  # cache.use-cache, for mode: default_off


DEFAULT_CONTROLS = Controls()


class _Capture(list[bytes]):
    """ctx.capture on a miss that may be stored: the bytes the client is sent, and where they go.
    Made empty, then its two fields set (an __init__ calling list's doubled what it cost)."""

    __slots__ = ("key", "ttl")
    key: str
    ttl: float


class Cache(Hook):
    name = "cache"
    needs_usage = True  # a stored stream keeps its usage, for the hits that replay it

    def __init__(self, config: CacheConfig, store: Store, clock: Clock = time.time) -> None:
        self.config = config
        self.store = store
        self.clock = clock  # wall clock: the age of an entry (s-maxage) is compared across replicas
        self._prefix = config.namespace + ":"
        self._endpoints = config.endpoints
        self._default_off = config.default_off
        self._ttl = config.ttl
        # the in-process store is looked up directly: no coroutine to make and await
        self._local = store if isinstance(store, LocalStore) else None
        self._remote = store if isinstance(store, RedisStore) else None
        self.start = self._start if self._remote is not None else None
        self.before_now = self._before_local if self._local is not None else None
        self._find: Callable[[str], Entry | None] = self._local.find if self._local is not None else _nothing
        # model group → the names of its caching group, keyed in place of the model (`share`)
        self._shared: Mapping[str | None, list[str]] = {}
        # the bodies of recent hits (ctx.body_bytes) → (caller, endpoint, key digest)
        self._repeated: dict[bytes, tuple[Caller | None, str, str]] = {}
        self._repeated_bytes = 0

    def share(self, shared: Mapping[str | None, list[str]]) -> None:
        """router_settings.caching_groups as `caching_groups` reads them (each config load)."""
        self._shared = shared
        self._repeated, self._repeated_bytes = {}, 0  # keyed with the old groups

    def _start(self, ctx: RequestContext, body: dict[str, Any] | None) -> None:
        """The shared store's lookup, sent before any hook's `before` waits (Pipeline.before): it
        then shares its round trip with the rate limits' instead of following it. Its reply is
        awaited in `before`."""
        found, remote = self._key(ctx, body), self._remote
        if found is not None and remote is not None:  # (start is set only for the shared store)
            key, controls = found
            asked = remote.ask(key) if controls.lookup else None
            ctx.cache_lookup = (key, controls, asked)
            if type(asked) is Entry:
                ctx.answer_known = True  # (the limits hook then counts no deployment)

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        remote = self._remote
        if remote is None:  # the pipeline calls `before_now` instead; this is for callers that await
            return self._before_local(ctx, body)
        started = ctx.cache_lookup
        if started is None:
            return None  # `start` found nothing to look up or store
        ctx.cache_lookup = None
        key, controls, asked = started
        assert body is not None
        if controls.lookup:
            ctx.cache_checked = True  # a miss unless a hit follows (the metrics count both)
            # (a copy kept in this process is the entry itself: no coroutine to await)
            entry = asked if type(asked) is Entry else await remote.get(key, asked)
            if entry is not None and (answer := self._hit(ctx, entry, body, controls)) is not None:
                self._repeat(ctx, key[-DIGEST_LENGTH:])
                return answer
        if controls.store:
            capture = ctx.capture = _Capture()
            capture.key, capture.ttl = key, controls.ttl or self._ttl
        return None

    def _before_local(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        """`before` with the in-process store, which never waits: the pipeline's `before_now`.

        A request without cache controls (no gateway fields, no option headers: most) is keyed,
        looked up and marked for storing here, in one frame; the others go the general way
        (`_key`, its controls). The _key call, its tuple and the controls' checks cost ~1,400
        instructions a miss and ~1,000 a hit (callgrind, the hook alone over 3,000 requests)."""
        endpoint = ctx.route.name
        if ctx.gateway_fields or ctx.header_options or self._default_off or body is None:
            return self._before_controlled(ctx, body)
        if endpoint not in self._endpoints:
            return None  # (as _key)
        remembered = self._remembered(ctx, endpoint)
        digest = remembered or key_of(endpoint, ctx.caller, body, self._shared.get(ctx.model) if self._shared else None)
        ctx.response_headers.append((b"x-litellm-cache-key", digest.encode()))
        key = self._prefix + digest
        ctx.cache_checked = True  # a miss unless a hit follows (the metrics count both)
        entry = self._find(key)
        if entry is not None:
            if remembered is None:
                self._repeat(ctx, digest)
            # a repeated non-streamed request: the answer an earlier hit made, without _hit's call
            made: dict[Any, Answer] | None = entry.made
            if made is not None and not ctx.stream and (answer := made.get(None)) is not None:
                ctx.cache_hit = True
                ctx.usage = entry.usage
                return answer
            if (answer := self._hit(ctx, entry, body, DEFAULT_CONTROLS)) is not None:
                return answer
        capture = ctx.capture = _Capture()  # the relay keeps what the client is sent, for `after`
        capture.key, capture.ttl = key, self._ttl
        return None

    def _before_controlled(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        """`_before_local` for a request that may carry its own controls."""
        found = self._key(ctx, body)
        if found is None:
            return None
        key, controls = found
        assert body is not None
        if controls.lookup:
            ctx.cache_checked = True  # a miss unless a hit follows (the metrics count both)
            entry = self._find(key)
            if entry is not None and (answer := self._hit(ctx, entry, body, controls)) is not None:
                self._repeat(ctx, key[-DIGEST_LENGTH:])
                return answer
        if controls.store:  # the relay keeps what the client is sent, for `after` to store
            capture = ctx.capture = _Capture()
            capture.key, capture.ttl = key, controls.ttl or self._ttl
        return None

    def _key(self, ctx: RequestContext, body: dict[str, Any] | None) -> tuple[str, Controls] | None:
        """The request's key in the store and its controls (the header is added); None when it is
        neither looked up nor stored."""
        endpoint = ctx.route.name
        if body is None or endpoint not in self._endpoints:
            return None
        fields = ctx.gateway_fields
        if fields or ctx.header_options:
            if fields and not fields.keys().isdisjoint(MOCKS):
                return None
            controls = _controls(ctx)
        else:  # (most requests: none of the checks of controls made)
            controls = DEFAULT_CONTROLS
        if self._default_off and not controls.opted_in:
            return None
        digest = self._remembered(ctx, endpoint) or key_of(
            endpoint, ctx.caller, body, self._shared.get(ctx.model) if self._shared else None
        )
        ctx.response_headers.append((b"x-litellm-cache-key", digest.encode()))
        return (self._prefix + digest if controls.namespace is None else f"{controls.namespace}:{digest}"), controls

    def _remembered(self, ctx: RequestContext, endpoint: str) -> str | None:
        """The key digest `_repeat` remembered for this request's bytes, caller and endpoint, if any."""
        known = self._repeated.get(ctx.body_bytes)  # (b"" is never in it)
        return known[2] if known is not None and known[0] is ctx.caller and known[1] == endpoint else None

    def _repeat(self, ctx: RequestContext, digest: str) -> None:
        """A hit: its body's bytes remembered with its key's digest, so that the same request from
        the same caller is keyed without the canonical JSON and the hash next time (the body is a
        function of the bytes, the groups are the hook's own). Bounded: bodies up to
        REPEATED_MAX_BYTES, and all forgotten at once past REPEATED_BYTES in all."""
        raw = ctx.body_bytes
        if not raw or len(raw) > REPEATED_MAX_BYTES or self._remembered(ctx, ctx.route.name) is not None:
            return
        if self._repeated_bytes + len(raw) > REPEATED_BYTES:
            self._repeated, self._repeated_bytes = {}, 0
        self._repeated[raw] = (ctx.caller, ctx.route.name, digest)
        self._repeated_bytes += len(raw)

    def _hit(self, ctx: RequestContext, entry: Entry, body: dict[str, Any], controls: Controls) -> Answer | None:
        if controls.max_age is not None and self.clock() - entry.stored_at > controls.max_age:
            return None
        # what the request is sent: the stored bytes, or a stream with or without the usage chunk
        # (an Anthropic stream's events always hold its usage: one replay, under True)
        kind = (True if ctx.route.name == "messages" else include_usage(body)) if ctx.stream else None
        made = entry.made
        answer = made.get(kind) if made is not None else None
        if answer is None:
            if kind is None:
                answer = Answer(entry.body, headers=HIT_HEADERS)
            else:
                events = replay(ctx.route.name, entry.body, kind)
                if events is None:
                    return None
                answer = Answer(events, content_type=SSE, headers=HIT_HEADERS)
            # the entry lives on in this process (the local store, or the Redis store's memory of
            # what it read): so does its answer
            if made is None:
                made = entry.made = {}
            made[kind] = answer
        ctx.cache_hit = True
        ctx.usage = entry.usage
        return answer

    async def after(self, ctx: RequestContext) -> None:
        self.after_now(ctx)

    def after_now(self, ctx: RequestContext) -> None:
        """Storing never waits (either store): a plain stage, no coroutine."""
        # (the shared store's only: a context's unset field is a slow read)
        if self._remote is not None and ctx.cache_lookup is not None:  # sent, then refused: drop the reply
            _drop(ctx.cache_lookup[2])
            ctx.cache_lookup = None
        capture = ctx.capture
        if not isinstance(capture, _Capture) or ctx.status != 200 or ctx.error is not None or not capture:
            return
        if ctx.stream:
            body = assemble(ctx.route.name, capture, ctx.usage)
            if body is None:
                return  # cut short, or not OpenAI's chunks
        else:
            body = b"".join(capture)  # one part, given back as it is: no copy
        self.store.put(capture.key, Entry(self.clock(), ctx.usage, body), capture.ttl)  # too large: not kept


DIGEST_LENGTH = 64  # key_of's hex digits: the end of every key in the store
# what the hook remembers of the bodies of recent hits (`_repeat`)
REPEATED_MAX_BYTES = 16 * 1024
REPEATED_BYTES = 4 * 2**20


def _nothing(key: str) -> None:
    return None


def _drop(asked: Awaitable[Any] | None) -> None:
    """A lookup's reply nobody will await: its failure, if it fails, is not reported as unretrieved."""
    if isinstance(asked, asyncio.Future):
        asked.add_done_callback(lambda future: future.cancelled() or future.exception())
    elif asyncio.iscoroutine(asked):
        asked.close()


def key_of(endpoint: str, caller: Caller | None, body: Mapping[str, Any], group: list[str] | None = None) -> str:
    """The hex digest of what makes this request's answer: the same for every request whose answer
    would be the same, whatever the order of its JSON keys. (BLAKE2b: half of SHA-256's cost here.)
    `group`: the names of the caching group of the request's model, keyed in its place (a list: no
    model name a request sends can be the same)."""
    if group is not None or not NOT_KEYED.isdisjoint(body):
        body = {name: value for name, value in body.items() if name not in NOT_KEYED}
        if group is not None:
            body["model"] = group
    material = _dumps((endpoint, caller.team_id if caller is not None else None, body), option=SORT_KEYS)
    return _blake2b(material, digest_size=32).hexdigest()


def caching_groups(settings: Settings, served: Collection[str]) -> tuple[dict[str | None, list[str]], list[str]]:
    """router_settings.caching_groups as the hook keys them: each model group in one → that group's
    names, sorted; and a warning for each name that is not a model group `served` (a model added
    later through /model/new may take it), with the served name it is most likely a slip for."""
    shared: dict[str | None, list[str]] = {}
    warnings = []
    for number, group in enumerate(settings.file.router_settings.caching_groups):
        names = sorted(set(group))
        for name in group:
            shared[name] = names
            if name not in served:
                near = closest(name, served)
                hint = f"; did you mean '{near}'?" if near else ""
                warnings.append(
                    f"{settings.source}: router_settings.caching_groups[{number}]: '{name}' is not a model group{hint}"
                )
    return shared, warnings


def _controls(ctx: RequestContext) -> Controls:
    """The request's own cache controls: the body's `cache` object, then Cache-Control."""
    raw = ctx.gateway_fields.get("cache")
    header = ctx.header_options.get("cache-control")
    if raw is None and header is None:
        return DEFAULT_CONTROLS
    values: dict[str, Any] = {}
    allowed = ctx.caller.cache_controls if ctx.caller is not None else None
    if header is not None:
        for directive in header.lower().split(","):
            name, _, value = directive.strip().partition("=")
            if name in ("no-cache", "no-store"):
                values[name] = True
            elif name in ("s-maxage", "max-age") and value.strip().isdigit():
                values["s-maxage"] = int(value.strip())
        if allowed is not None:  # a key's header directives beyond its allowed_cache_controls: not acted on
            values = {name: value for name, value in values.items() if name in allowed}
    if raw is not None:
        if not isinstance(raw, dict):
            raise BadRequest('cache must be an object, such as {"no-cache": true}', param="cache")
        for name, value in raw.items():
            if name not in CONTROLS:
                known = ", ".join(CONTROLS)
                raise BadRequest(f"cache.{name} is not a cache control; known: {known}", param="cache")
            values[name] = value
    if allowed is not None and not allowed.issuperset(values):
        # the body's cache object, as LiteLLM checks it (HTTP intermediaries add Cache-Control
        # headers of their own: a key's are ignored where not allowed, above, not refused)
        name = next(name for name in values if name not in allowed)
        raise Forbidden(
            f"this key may not set the cache control '{name}' (its allowed_cache_controls: "
            f"{', '.join(sorted(allowed))}); an admin can change them with /key/update",
            code="cache_control_not_allowed",
        )
    for name in ("no-cache", "no-store", "use-cache"):
        if not isinstance(values.get(name, False), bool):
            raise BadRequest(f"cache.{name} must be true or false", param="cache")
    ttl, max_age, namespace = values.get("ttl"), values.get("s-maxage"), values.get("namespace")
    if ttl is not None and not _positive(ttl):
        raise BadRequest("cache.ttl must be a positive number of seconds", param="cache")
    if max_age is not None and not (_positive(max_age) or (type(max_age) is int and max_age == 0)):
        raise BadRequest("cache.s-maxage must be a number of seconds, 0 or more", param="cache")
    if namespace is not None and (not isinstance(namespace, str) or not 0 < len(namespace) <= 256):
        raise BadRequest("cache.namespace must be a string of 1 to 256 characters", param="cache")
    return Controls(
        lookup=not values.get("no-cache", False),
        store=not values.get("no-store", False),
        ttl=None if ttl is None else float(ttl),
        max_age=None if max_age is None else float(max_age),
        namespace=namespace,
        opted_in=bool(values.get("use-cache", False)),
    )


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
