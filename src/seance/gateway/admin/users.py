"""/user/new, update, delete, info, list."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import (
    Admin,
    Who,
    body,
    budget_values,
    check,
    columns,
    new_id,
    page,
    render,
    require,
    stamps,
)
from seance.gateway.errors import BadRequest, Forbidden, GatewayError
from seance.gateway.store import model_budgets, tables
from seance.gateway.store.keys import hash_key, key_name, new_key

U = tables.users
EDITABLE = frozenset(c.name for c in U.c) - {"user_id", "spend", "created_at", "created_by", "model_spend"}


def routes(admin: Admin) -> list[Route]:
    async def new(request: Request, who: Who) -> Any:
        data = check(await body(request))
        require(who, write=True, admin=True)
        user_id = data.get("user_id") or new_id()
        async with admin.engine.begin() as db:
            if (await db.execute(sa.select(U.c.user_id).where(U.c.user_id == user_id))).scalar() is not None:
                raise BadRequest(f"user_id: user {user_id} exists already", param="user_id")
            values = _values(data, who, new=True)
            values.update(user_id=user_id, spend=0.0)
            values.setdefault("user_role", "internal_user")
            await db.execute(sa.insert(U).values(**values))
            user = render(await _one(db, user_id)) or {}
            answer: dict[str, Any] = {**user, "key": None}
            if data.get("auto_create_key", True):  # LiteLLM gives a new user a key unless told not to
                key = new_key()
                now = stamps(who, new=True)
                await db.execute(sa.insert(tables.keys).values(
                    token=hash_key(key), key_name=key_name(key), key_alias=data.get("key_alias"), spend=0.0,
                    models=data.get("models") or [], user_id=user_id, metadata={}, tags=[], aliases={}, config={},
                    permissions={}, model_rpm_limit={}, model_tpm_limit={}, model_spend={}, model_max_budget={}, **now,
                ))  # fmt: skip
                answer.update(key=key, token=hash_key(key), key_alias=data.get("key_alias"))
        return answer

    async def update(request: Request, who: Who) -> Any:
        data = check(await body(request))
        user_id = await _target(admin, data)
        if not who.admin:
            raise Forbidden("only a proxy admin may change users", code="not_allowed")
        async with admin.engine.begin() as db:
            await db.execute(sa.update(U).where(U.c.user_id == user_id).values(**_values(data, who, new=False)))
            user = await _one(db, user_id)
        admin.changed()
        return render(user)

    async def delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["user_ids"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            for user_id in data["user_ids"]:
                if await _one(db, str(user_id)) is None:
                    raise GatewayError(f"no user {user_id}", status=404, param="user_ids", code="user_not_found")
            await db.execute(sa.delete(tables.keys).where(tables.keys.c.user_id.in_(data["user_ids"])))
            await db.execute(sa.delete(U).where(U.c.user_id.in_(data["user_ids"])))
        admin.changed()
        return {"deleted_users": data["user_ids"]}

    async def info(request: Request, who: Who) -> Any:
        user_id = request.query_params.get("user_id") or who.user_id
        if not user_id:
            raise BadRequest("user_id is required: /user/info?user_id=...", param="user_id")
        if not who.reads_all and user_id != who.user_id:
            raise Forbidden("an internal user sees only their own user", param="user_id")
        async with admin.engine.connect() as db:
            user = await _one(db, user_id)
            if user is None:
                raise GatewayError(f"no user {user_id}", status=404, param="user_id", code="user_not_found")
            keys = (await db.execute(sa.select(tables.keys).where(tables.keys.c.user_id == user_id))).mappings()
            teams = (
                await db.execute(sa.select(tables.teams).where(tables.teams.c.team_id.in_(user["teams"])))
            ).mappings()
            user_info = render(user) or {}
            user_info["spend"] = float(user["spend"]) + admin.store.spend.unwritten_for(f"user:{user_id}")
            user_info["model_max_budget_usage"] = await model_budgets.usage(
                db, "user_model", user_id, user["model_max_budget"], admin.store.spend.unwritten_for
            )
            return {"user_id": user_id, "user_info": user_info, "keys": [render(dict(k)) for k in keys],
                    "teams": [render(dict(t)) for t in teams]}  # fmt: skip

    async def list_users(request: Request, who: Who) -> Any:
        require(who, admin=True)
        number, size = page(request, "page_size", 25)
        where = []
        if request.query_params.get("role"):
            where.append(U.c.user_role == request.query_params["role"])
        if request.query_params.get("user_ids"):
            where.append(U.c.user_id.in_(request.query_params["user_ids"].split(",")))
        async with admin.engine.connect() as db:
            total = (await db.execute(sa.select(sa.func.count()).select_from(U).where(*where))).scalar_one()
            rows = (await db.execute(sa.select(U).where(*where).order_by(U.c.created_at, U.c.user_id)
                                     .offset((number - 1) * size).limit(size))).mappings()  # fmt: skip
            users = [render(dict(r)) for r in rows]
        return {"users": users, "total": total, "page": number, "page_size": size, "total_pages": -(-total // size)}

    return [
        admin.route("/user/new", new, ["POST"]),
        admin.route("/user/update", update, ["POST"]),
        admin.route("/user/delete", delete, ["POST", "DELETE"]),
        admin.route("/user/info", info, ["GET"]),
        admin.route("/user/list", list_users, ["GET"]),
    ]


def _values(data: dict[str, Any], who: Who, *, new: bool) -> dict[str, Any]:
    values = columns(U, {k: v for k, v in data.items() if k in EDITABLE})
    for name, empty in (("models", []), ("teams", []), ("metadata", {}), ("model_max_budget", {})):
        if values.get(name, 0) is None or (new and name not in values):
            values[name] = empty
    if new:
        values.setdefault("model_spend", {})
    values.update(stamps(who, new=new))
    values.update(budget_values(data))
    return values


async def _one(db: Any, user_id: str) -> dict[str, Any] | None:
    row = (await db.execute(sa.select(U).where(U.c.user_id == user_id))).mappings().first()
    return None if row is None else dict(row)


async def _target(admin: Admin, data: dict[str, Any]) -> str:
    """/user/update names its user by user_id or user_email."""
    async with admin.engine.connect() as db:
        if data.get("user_id"):
            if await _one(db, data["user_id"]) is None:
                raise GatewayError(f"no user {data['user_id']}", status=404, param="user_id", code="user_not_found")
            return str(data["user_id"])
        if data.get("user_email"):
            found = (await db.execute(sa.select(U.c.user_id).where(U.c.user_email == data["user_email"]))).scalar()
            if found is None:
                raise GatewayError(f"no user with email {data['user_email']}", status=404, param="user_email")
            return str(found)
    raise BadRequest("user_id or user_email is required", param="user_id")
