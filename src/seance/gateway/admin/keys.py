"""/key/generate, update, regenerate, delete, info, list, block, unblock, health."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import Admin, Who, body, budget_values, check, columns, page, render, require, stamps
from seance.gateway.errors import BadRequest, Forbidden, GatewayError
from seance.gateway.pipeline.cache import CONTROLS
from seance.gateway.store import durations, model_budgets, tables
from seance.gateway.store.keys import hash_key, key_name, new_key
from seance.litellm_config.suggest import closest

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

K = tables.keys
# LiteLLM's fields that live in a key's metadata there and in columns here
EDITABLE = frozenset(c.name for c in K.c) - {"token", "key_name", "spend", "created_at", "created_by", "last_active"}


def routes(admin: Admin) -> list[Route]:
    async def generate(request: Request, who: Who) -> Any:
        data = admin.key_policy.fill(check(await body(request)))
        admin.key_policy.bound(data)
        require(who, write=True)
        async with admin.engine.begin() as db:
            if not who.admin:
                data["user_id"] = who.user_id  # an internal user's keys are theirs
                if data.get("team_id"):
                    await _member_or_admin(db, who, data["team_id"])
            key = data.get("key") or new_key()
            if not key.startswith("sk-") or len(key) < 8:
                raise BadRequest("key: a custom key must start with 'sk-' and be at least 8 characters", param="key")
            token = hash_key(key)
            values = await _values(db, data, who, new=True)
            values.update(token=token, key_name=key_name(key), spend=float(data.get("spend") or 0.0))
            if await _one(db, token):
                raise BadRequest("key: this key exists already", param="key")
            await db.execute(sa.insert(K).values(**values))
            row = await _one(db, token)
        return _issued(row, key)

    async def update(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["key"])
        admin.key_policy.bound(data)
        require(who, write=True)
        async with admin.engine.begin() as db:
            row = await _visible(db, who, data["key"])
            if not who.admin:
                data.pop("user_id", None)
                data.pop("max_budget", None) if row["max_budget"] is not None else None
            values = await _values(db, data, who, new=False)
            if "spend" in data and data["spend"] is not None:
                values["spend"] = float(data["spend"])
            await db.execute(sa.update(K).where(K.c.token == row["token"]).values(**values))
            changed = await _one(db, row["token"])
        admin.changed()
        return {**(render(changed) or {}), "key": data["key"]}

    async def regenerate(request: Request, who: Who) -> Any:
        data = check(await body(request))
        given = request.path_params.get("key") or data.get("key")
        if not given:
            raise BadRequest("key is required (in the body, or /key/{key}/regenerate)", param="key")
        require(who, write=True)
        async with admin.engine.begin() as db:
            row = await _visible(db, who, given)
            key = data.get("new_key") or new_key()
            if not key.startswith("sk-"):
                raise BadRequest("new_key must start with 'sk-'", param="new_key")
            data.pop("key", None)
            values = await _values(db, data, who, new=False)
            values.update(token=hash_key(key), key_name=key_name(key))
            await db.execute(sa.update(K).where(K.c.token == row["token"]).values(**values))
            changed = await _one(db, values["token"])
        admin.changed()
        return _issued(changed, key)

    async def delete(request: Request, who: Who) -> Any:
        data = check(await body(request))
        require(who, write=True)
        given = list(data.get("keys") or [])
        aliases = list(data.get("key_aliases") or [])
        if not given and not aliases:
            raise BadRequest("keys (or key_aliases) is required: the keys to delete", param="keys")
        async with admin.engine.begin() as db:
            tokens = [(await _visible(db, who, str(k)))["token"] for k in given]
            for alias in aliases:
                found = (await db.execute(sa.select(K.c.token).where(K.c.key_alias == str(alias)))).scalar()
                if found is None:
                    raise GatewayError(f"no key has the alias {alias}", status=404, param="key_aliases")
                tokens.append((await _visible(db, who, found))["token"])
            await db.execute(sa.delete(K).where(K.c.token.in_(tokens)))
        admin.changed()
        return {"deleted_keys": given + aliases}

    async def info(request: Request, who: Who) -> Any:
        given = request.query_params.get("key")
        async with admin.engine.connect() as db:
            if given is None:
                if who.key_hash is None:
                    raise BadRequest("key is required: /key/info?key=sk-...", param="key")
                row = await _visible(db, who, who.key_hash)
            else:
                row = await _visible(db, who, given)
            per_model = await model_budgets.usage(db, "key_model", row["token"], row["model_max_budget"],
                                                  admin.store.spend.unwritten_for)  # fmt: skip
        info = render(row) or {}
        info["spend"] = _spend_now(admin, info)
        info["model_max_budget_usage"] = per_model
        return {"key": given or who.key_hash, "info": info}

    async def list_keys(request: Request, who: Who) -> Any:
        number, size = page(request)
        query = request.query_params
        where = []
        for name in ("user_id", "team_id", "key_alias", "organization_id"):
            if query.get(name):
                where.append(K.c[name] == query[name])
        if not who.reads_all:
            where.append(sa.or_(K.c.user_id == who.user_id, K.c.token == who.key_hash) if who.user_id
                         else K.c.token == who.key_hash)  # fmt: skip
        async with admin.engine.connect() as db:
            total = (await db.execute(sa.select(sa.func.count()).select_from(K).where(*where))).scalar_one()
            rows = (
                await db.execute(
                    sa.select(K)
                    .where(*where)
                    .order_by(K.c.created_at, K.c.token)
                    .offset((number - 1) * size)
                    .limit(size)
                )
            ).mappings()
            full = query.get("return_full_object", "false").lower() == "true"
            keys = [render(dict(r)) if full else r["token"] for r in rows]
        return {"keys": keys, "total_count": total, "current_page": number, "total_pages": -(-total // size)}

    def blocking(blocked: bool) -> Any:
        async def handler(request: Request, who: Who) -> Any:
            data = check(await body(request), required=["key"])
            require(who, write=True, admin=True)
            async with admin.engine.begin() as db:
                row = await _visible(db, who, data["key"])
                await db.execute(
                    sa.update(K).where(K.c.token == row["token"]).values(blocked=blocked, **stamps(who, new=False))
                )
                changed = await _one(db, row["token"])
            admin.changed()
            return render(changed)

        return handler

    async def health(request: Request, who: Who) -> Any:
        return {"key": "healthy", "logging_callbacks": None}

    return [
        admin.route("/key/generate", generate, ["POST"]),
        admin.route("/key/update", update, ["POST"]),
        admin.route("/key/regenerate", regenerate, ["POST"]),
        admin.route("/key/{key}/regenerate", regenerate, ["POST"]),
        admin.route("/key/delete", delete, ["POST"]),
        admin.route("/key/info", info, ["GET"]),
        admin.route("/key/list", list_keys, ["GET"]),
        admin.route("/key/block", blocking(True), ["POST"]),
        admin.route("/key/unblock", blocking(False), ["POST"]),
        admin.route("/key/health", health, ["POST", "GET"]),
    ]


def _issued(row: dict[str, Any] | None, key: str) -> dict[str, Any]:
    """/key/generate's answer: the key itself (shown this once), and its settings."""
    out = render(row) or {}
    out.update(key=key, token_id=out.get("token"))
    return out


def _spend_now(admin: Admin, info: dict[str, Any]) -> float:
    """The stored spend plus what this process has not written yet."""
    scope = f"key:{info.get('token')}"
    return float(info.get("spend") or 0.0) + admin.store.spend.unwritten_for(scope)


async def _one(db: AsyncConnection, token: str) -> dict[str, Any] | None:
    row = (await db.execute(sa.select(K).where(K.c.token == token))).mappings().first()
    return None if row is None else dict(row)


async def _visible(db: AsyncConnection, who: Who, given: str) -> dict[str, Any]:
    """The key `given` (the key or its hash), if the caller may see it: 404 / 403 otherwise."""
    row = await _one(db, hash_key(given))
    if row is None:
        raise GatewayError("no such key (give the key, sk-..., or its hash as /key/list shows it)", status=404,
                           param="key", code="key_not_found")  # fmt: skip
    if who.reads_all or row["token"] == who.key_hash or (who.user_id and row["user_id"] == who.user_id):
        return row
    if row["team_id"] and await _team_admin(db, who, row["team_id"]):
        return row
    raise Forbidden("this key is not yours: an internal user sees and changes only their own keys", param="key")


async def _team_admin(db: AsyncConnection, who: Who, team_id: str) -> bool:
    members = (
        await db.execute(sa.select(tables.teams.c.members_with_roles).where(tables.teams.c.team_id == team_id))
    ).scalar()
    return any(m.get("user_id") == who.user_id and m.get("role") == "admin" for m in members or [] if who.user_id)


async def _member_or_admin(db: AsyncConnection, who: Who, team_id: str) -> None:
    members = (
        await db.execute(sa.select(tables.teams.c.members_with_roles).where(tables.teams.c.team_id == team_id))
    ).scalar()
    if not any(m.get("user_id") == who.user_id for m in members or [] if who.user_id):
        raise Forbidden(f"team_id: the caller is not a member of team {team_id}", param="team_id")


async def _values(db: AsyncConnection, data: dict[str, Any], who: Who, *, new: bool) -> dict[str, Any]:
    values = columns(K, {k: v for k, v in data.items() if k in EDITABLE})
    values.update(stamps(who, new=new))
    values.update(budget_values(data))
    if data.get("duration"):
        values["expires"] = durations.after(data["duration"], "duration")
    elif "duration" in data and not new:
        values["expires"] = None
    for name in ("models", "tags", "allowed_cache_controls"):
        if name in values and values[name] is None:
            values[name] = []
        if any(not isinstance(m, str) for m in values.get(name) or []):
            raise BadRequest(f"{name} must be a list of strings", param=name)
    for control in values.get("allowed_cache_controls") or []:
        if control not in CONTROLS:
            near = closest(control, CONTROLS)
            hint = f"did you mean '{near}'?" if near else f"the controls are {', '.join(CONTROLS)}"
            raise BadRequest(f"allowed_cache_controls: '{control}' is not a cache control; {hint}",
                             param="allowed_cache_controls")  # fmt: skip
    for name in ("metadata", "permissions", "aliases", "config", "model_max_budget", "model_rpm_limit",
                 "model_tpm_limit"):  # fmt: skip
        if name in values and values[name] is None:
            values[name] = {}
    if new:
        for name in ("models", "tags", "allowed_cache_controls"):
            values.setdefault(name, [])
        for name in ("metadata", "permissions", "aliases", "config", "model_max_budget", "model_rpm_limit",
                     "model_tpm_limit", "model_spend"):  # fmt: skip
            values.setdefault(name, {})
    tags = (values.get("metadata") or {}).get("tags")
    if isinstance(tags, list) and "tags" not in data:
        values["tags"] = [str(t) for t in tags]  # LiteLLM's older spelling: metadata.tags
    if values.get("team_id"):
        exists = (
            await db.execute(sa.select(tables.teams.c.team_id).where(tables.teams.c.team_id == values["team_id"]))
        ).scalar()
        if exists is None:
            raise BadRequest(f"team_id: no team {values['team_id']} (create it with /team/new)", param="team_id")
    if values.get("key_alias"):
        clash = (await db.execute(sa.select(K.c.token).where(K.c.key_alias == values["key_alias"]))).scalar()
        if clash is not None and (new or clash != hash_key(str(data.get("key", "")))):
            raise BadRequest(f"key_alias: another key has the alias {values['key_alias']}", param="key_alias")
    values.pop("key", None)
    return values
