"""What every management endpoint shares: who is asking, reading and checking bodies, rendering rows
as LiteLLM does (times in ISO 8601), and errors in OpenAI's envelope."""

from __future__ import annotations

import hmac
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seance.gateway.admin import key_policy
from seance.gateway.context import presented_key
from seance.gateway.errors import BadRequest, Forbidden, GatewayError, Unauthorized
from seance.gateway.formats.body import json_object
from seance.gateway.store import durations, model_budgets
from seance.gateway.store.database import refused_value
from seance.gateway.store.durations import iso
from seance.litellm_config.suggest import typo_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from seance.gateway.config import Settings
    from seance.gateway.routing.deployments import Deployments
    from seance.gateway.store import Store

ADMIN_ROLES = frozenset({"proxy_admin"})
READ_ALL_ROLES = frozenset({"proxy_admin", "proxy_admin_viewer"})
ROLES = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer", "team", "customer")
TIME_COLUMNS = frozenset({"created_at", "updated_at", "expires", "budget_reset_at", "last_active", "start_time",
                          "end_time"})  # fmt: skip


@dataclass(frozen=True)
class Who:
    role: str
    user_id: str | None = None
    key_hash: str | None = None
    team_id: str | None = None

    @property
    def admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def reads_all(self) -> bool:
        return self.role in READ_ALL_ROLES

    @property
    def writes(self) -> bool:
        return self.role in ("proxy_admin", "internal_user")

    @property
    def name(self) -> str:
        return "admin" if self.user_id is None and self.key_hash is None else (self.user_id or self.key_hash or "")


class Admin:
    def __init__(self, settings: Settings, store: Store | None, deployments: Deployments) -> None:
        self.settings = settings
        self._store = store
        self.deployments = deployments
        self.master_key = settings.master_key.encode() if settings.master_key else None
        self.key_policy = key_policy.read(settings)  # /key/generate's defaults and upper bounds

    @property
    def store(self) -> Store:
        assert self._store is not None  # (without a database only the cache's endpoints are served)
        return self._store

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine()

    async def who(self, request: Request) -> Who:
        """The caller, from the same headers as the API (Bearer, x-api-key, api-key)."""
        headers = request.headers
        raw = headers.get("authorization") or headers.get("x-api-key") or headers.get("api-key") or ""
        presented = presented_key(raw.encode("latin-1"))
        if self.master_key is None:
            return Who("proxy_admin")  # --allow-no-auth: everything is open, as the API is
        if not presented:
            raise Unauthorized("missing API key: send the master key or a virtual key as 'Authorization: Bearer <key>'")
        if hmac.compare_digest(presented, self.master_key):
            return Who("proxy_admin")
        if self._store is None:
            raise Unauthorized("invalid API key: without the gateway's database only the master key is known")
        caller = (await self.store.keys.verified(presented)).caller
        assert caller is not None  # verified: a known key
        return Who(caller.role, caller.user_id, caller.key_hash, caller.team_id)

    def route(
        self, path: str, handler: Callable[[Request, Who], Awaitable[Any]], methods: Iterable[str], status: int = 200
    ) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                who = await self.who(request)
                answer = await handler(request, who)
            except GatewayError as exc:
                return error_response(exc)
            except sa.exc.DBAPIError as exc:
                if not refused_value(exc):
                    raise
                # (the fields `check` knows are bounded there, by name; this is for the others)
                message = "a value in the request is too long or too large for the gateway's database"
                return error_response(BadRequest(message, code="value_too_large"))
            if isinstance(answer, Response):
                return answer
            return Response(orjson.dumps(answer, default=_default), status, media_type="application/json")

        return Route(path, endpoint, methods=list(methods))

    def changed(self) -> None:
        """Something a request may depend on changed here: this process reads it again at once
        (other replicas within the key cache's TTL)."""
        if self._store is not None:
            self._store.forget()


def error_response(exc: GatewayError) -> Response:
    return Response(exc.body(), exc.status, media_type="application/json", headers=dict(exc.headers))


def require(who: Who, *, write: bool = False, admin: bool = False) -> None:
    if admin and not (who.admin or (not write and who.reads_all)):
        verb = "change" if write else "read"
        raise Forbidden(f"only a proxy admin may {verb} this (the caller's role is {who.role})", code="not_allowed")
    if write and not who.writes:
        raise Forbidden(f"the role {who.role} may not make changes", code="not_allowed")


async def body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return json_object(raw) if raw.strip() else {}


# field -> the types it accepts, for every body the management API reads
_TYPES: dict[str, tuple[type, ...]] = {}
for _names, _types in (
    ("max_budget soft_budget spend max_budget_in_team", (int, float)),
    ("tpm_limit rpm_limit max_parallel_requests", (int,)),
    ("duration budget_duration key_alias user_id team_id organization_id budget_id user_email user_alias "
     "team_alias organization_alias user_role alias default_model allowed_model_region key role "
     "new_key new_master_key", (str,)),
    ("models tags teams user_ids team_ids keys key_aliases organization_ids budgets allowed_cache_controls",
     (list,)),
    ("metadata permissions aliases config model_max_budget model_rpm_limit model_tpm_limit", (dict,)),
    ("blocked auto_create_key send_invite_email", (bool,)),
):  # fmt: skip
    for _name in _names.split():
        _TYPES[_name] = _types


# The fields whose misspelling would leave a key, team, user or budget without a limit it was given:
# a name that is a slip of one of them (`rpm_limt`) is refused rather than passed over. (Other
# unknown fields pass, as LiteLLM's admin clients send fields of its own.)
GUARDED = frozenset({
    "tpm_limit", "rpm_limit", "max_parallel_requests", "max_budget", "soft_budget", "budget_duration",
    "model_max_budget", "model_rpm_limit", "model_tpm_limit", "max_budget_in_team", "duration",
    "allowed_cache_controls",
})  # fmt: skip


def check(data: Mapping[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    """The body's known fields, each of its type (None allowed: "unset"); 400 naming the field."""
    for name in required:
        if data.get(name) in (None, ""):
            raise BadRequest(f"{name} is required", param=name)
    out: dict[str, Any] = {}
    for name, given in data.items():
        value: Any = given
        types = _TYPES.get(name)
        if types is None and (near := typo_of(name, GUARDED)) is not None:
            raise BadRequest(f"{name} is not a field; did you mean '{near}'? (nothing was changed)", param=name)
        if types is None or value is None:
            out[name] = value
            continue
        if (isinstance(given, bool) and bool not in types) or not isinstance(given, types):
            wanted = " or ".join("number" if t is float else _TYPE_NAMES.get(t, t.__name__) for t in types)
            raise BadRequest(f"{name} must be {wanted}, not {type(value).__name__}", param=name)
        if types == (int, float) and (value < 0 or math.isnan(value)):
            raise BadRequest(f"{name} must be 0 or more", param=name)
        if name in ("tpm_limit", "rpm_limit", "max_parallel_requests") and value < 0:
            raise BadRequest(f"{name} must be 0 or more", param=name)
        if name in LARGEST and value > LARGEST[name]:
            raise BadRequest(f"{name} must be at most {LARGEST[name]}", param=name)
        if isinstance(value, str) and len(value) > (longest := LONGEST.get(name, LONGEST_TEXT)):
            raise BadRequest(f"{name} is {len(value)} characters long; at most {longest}", param=name)
        if name in ("model_rpm_limit", "model_tpm_limit"):
            for model, limit in value.items():
                if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= BIGGEST_BIG:
                    raise BadRequest(f"{name}.{model} must be an integer, 0 or more, not {limit!r}", param=name)
        if name == "model_max_budget":
            for model, entry in value.items():
                if (wrong := model_budgets.problem(model, entry)) is not None:
                    raise BadRequest(wrong, param=name)
        if name in ("duration", "budget_duration"):
            try:
                durations.parse(value, name)
            except ValueError as exc:
                raise BadRequest(str(exc), param=name) from None
        if name == "user_role" and value not in ROLES:
            raise BadRequest(f"user_role must be one of {', '.join(ROLES)}", param=name)
        out[name] = value
    return out


_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "an object", bool: "true or false"}


def columns(table: sa.Table, data: Mapping[str, Any]) -> dict[str, Any]:
    """The body's fields that are columns of `table` (set to None allowed)."""
    return {k: v for k, v in data.items() if (k in table.c and k not in ("spend",)) or (k == "spend" and v is not None)}


# what `check` bounds: the columns' sizes (PostgreSQL refuses more; SQLite would keep it)
BIGGEST, BIGGEST_BIG = 2**31 - 1, 2**63 - 1  # an INTEGER column's, a BIGINT's (and Redis's counters')
LARGEST = {"max_parallel_requests": BIGGEST, "tpm_limit": BIGGEST_BIG, "rpm_limit": BIGGEST_BIG}
LONGEST_TEXT = 256  # the id and name columns' length
LONGEST = {"user_email": 320, "new_key": 1024, "new_master_key": 1024, "key": 1024}


def stamps(who: Who, *, new: bool) -> dict[str, Any]:
    now = time.time()
    values: dict[str, Any] = {"updated_at": now, "updated_by": who.name}
    if new:
        values.update(created_at=now, created_by=who.name)
    return values


def budget_values(data: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """budget_duration sets the first reset (and a changed one resets the schedule)."""
    if data.get("budget_duration"):
        return {"budget_reset_at": durations.after(data["budget_duration"], "budget_duration", now)}
    if "budget_duration" in data:
        return {"budget_reset_at": None}
    return {}


def render(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A row as LiteLLM answers it: times in ISO 8601."""
    if row is None:
        return None
    # str(k): SQLAlchemy's column names are a str subclass that orjson does not take as a key
    return {str(k): iso(v) if k in TIME_COLUMNS and v is not None else v for k, v in row.items()}


def new_id() -> str:
    return str(uuid.uuid4())


def page(request: Request, size_name: str = "size", default_size: int = 10) -> tuple[int, int]:
    try:
        number = int(request.query_params.get("page", "1"))
        size = int(request.query_params.get(size_name, str(default_size)))
    except ValueError:
        raise BadRequest(f"page and {size_name} must be integers", param="page") from None
    if number < 1 or not 1 <= size <= 1000:
        raise BadRequest(f"page must be 1 or more and {size_name} 1 to 1000", param="page")
    return number, size


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset | set | tuple):
        return list(value)
    raise TypeError(type(value).__name__)
