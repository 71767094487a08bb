"""Where state shared by workers and replicas lives: one Redis/Valkey, found once for every feature
that uses it (rate limits, the response cache, router cooldowns), so the three never disagree on
which server they talk to.

Looked for in LiteLLM's places, first found wins:

    REDIS_URL                                      (what `seance synth` sets; rediss:// for TLS)
    REDIS_HOST / REDIS_PORT / REDIS_PASSWORD       (LiteLLM's environment variables, with
        REDIS_USERNAME, REDIS_SSL and REDIS_DB)
    router_settings.redis_url | redis_host/_port/_password/_db
    litellm_settings.cache_params (type: redis) url | host/port/password/db/username/ssl

Managed servers mostly want TLS and often an ACL user (Azure's port 6380, ElastiCache with
encryption in transit, Memorystore): REDIS_SSL / cache_params.ssl make the URL rediss://, so that
the gateway does not talk plain text to a TLS port (every call would fail and fall back to
in-process state, quietly splitting the limits between replicas).

None found: every feature keeps its state in-process (one worker's view).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from seance.litellm_config import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from seance.gateway.config import Settings

# A shared-state call sits on the request path: a server that does not answer within this long is
# treated as down (the feature falls back to in-process state) rather than holding the request.
SOCKET_TIMEOUT = 0.5


@dataclass(frozen=True)
class RedisSettings:
    url: str = field(repr=False)  # may hold a password: never logged, see `where`
    source: str  # where it was found, for messages

    @property
    def where(self) -> str:
        """The server without its credentials, for logs and errors."""
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path} (from {self.source})"

    def client(self, **options: Any) -> Redis:
        """A redis-py asyncio client (a pool; connects on first use), with short timeouts."""
        from redis.asyncio import Redis

        options.setdefault("socket_timeout", SOCKET_TIMEOUT)
        options.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
        return Redis.from_url(self.url, **options)


def find_redis(settings: Settings) -> RedisSettings | None:
    """The Redis the gateway's config and environment name, or None."""
    env = settings.env
    if env.get("REDIS_URL"):
        return RedisSettings(env["REDIS_URL"], "REDIS_URL")
    if env.get("REDIS_HOST"):
        tls = _true(env.get("REDIS_SSL"), "REDIS_SSL")
        db = _database(env.get("REDIS_DB"), "REDIS_DB")
        url = _url(
            env["REDIS_HOST"], env.get("REDIS_PORT"), env.get("REDIS_PASSWORD"), db, env.get("REDIS_USERNAME"), tls
        )
        return RedisSettings(url, "REDIS_HOST")
    router = settings.file.router_settings
    extra = router.model_extra or {}
    if extra.get("redis_url"):
        return RedisSettings(str(extra["redis_url"]), "router_settings.redis_url")
    if router.redis_host:
        url = _url(router.redis_host, router.redis_port, router.redis_password, router.redis_db)
        return RedisSettings(url, "router_settings")
    params: Mapping[str, Any] = settings.file.litellm_settings.cache_params
    if params.get("type") == "redis":
        if params.get("url"):
            return RedisSettings(str(params["url"]), "litellm_settings.cache_params.url")
        if params.get("host"):
            where = "litellm_settings.cache_params"
            tls = _true(params.get("ssl"), f"{where}.ssl")
            url = _url(params["host"], params.get("port"), params.get("password"), params.get("db"),
                       params.get("username"), tls)  # fmt: skip
            return RedisSettings(url, where)
    return None


def _url(host: Any, port: Any, password: Any, db: int | None = None, username: Any = None, tls: bool = False) -> str:
    user = quote(str(username), safe="") if username else ""
    auth = f"{user}:{quote(str(password), safe='')}@" if password else f"{user}@" if user else ""
    netloc = f"{auth}{host}:{int(port) if port else 6379}"
    return urlunsplit(("rediss" if tls else "redis", netloc, f"/{db or 0}", "", ""))


def _database(value: str | None, where: str) -> int | None:
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise ConfigError(f"{where}: a Redis database number (0, 1, …), not {value!r}")
    return int(value)


TRUE, FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


def _true(value: Any, where: str) -> bool:
    """A yes/no setting: a YAML boolean, or the text of an environment variable (LiteLLM's spellings)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ConfigError(f"{where}: true or false, not {value!r}")
