"""End users (/customer/* and /end_user/*), /organization/*, /budget/*. Budgets are rows of their
own that end users, organizations (and keys, teams) point to by budget_id; a `max_budget` given to
/customer/new or /organization/new makes one, as LiteLLM does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import Admin, Who, body, budget_values, check, columns, new_id, render, require, stamps
from seance.gateway.errors import BadRequest, GatewayError
from seance.gateway.store import tables

E = tables.end_users
O = tables.organizations  # noqa: E741
B = tables.budgets
ORG_ROLES = ("org_admin", "internal_user", "internal_user_viewer")  # LiteLLM's roles inside an organization
BUDGET_FIELDS = ("max_budget", "soft_budget", "budget_duration", "tpm_limit", "rpm_limit", "max_parallel_requests",
                 "model_max_budget")  # fmt: skip


def routes(admin: Admin) -> list[Route]:
    out: list[Route] = []
    for prefix in ("/customer", "/end_user"):
        out += _end_user_routes(admin, prefix)
    return out + _organization_routes(admin) + _budget_routes(admin)


async def _budget(db: Any, budget_id: str | None) -> dict[str, Any] | None:
    if not budget_id:
        return None
    row = (await db.execute(sa.select(B).where(B.c.budget_id == budget_id))).mappings().first()
    return None if row is None else dict(row)


async def _attach_budget(db: Any, data: dict[str, Any], who: Who, current: str | None) -> str | None:
    """The budget_id to store: the one given, or one made/updated from the budget fields given."""
    if data.get("budget_id"):
        if await _budget(db, data["budget_id"]) is None:
            raise BadRequest(
                f"budget_id: no budget {data['budget_id']} (create it with /budget/new)", param="budget_id"
            )
        return str(data["budget_id"])
    given = {k: data[k] for k in BUDGET_FIELDS if k in data}
    if not given:
        return current
    values = {**given, **budget_values(given), **stamps(who, new=current is None)}
    if values.get("model_max_budget") is None:
        values["model_max_budget"] = {}
    if current is None:
        current = new_id()
        await db.execute(sa.insert(B).values(budget_id=current, **values))
    else:
        await db.execute(sa.update(B).where(B.c.budget_id == current).values(**values))
    return current


async def _with_budget(db: Any, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = render(row) or {}
    out["litellm_budget_table"] = render(await _budget(db, row.get("budget_id")))
    return out


async def _update_budgeted(
    admin: Admin,
    who: Who,
    data: dict[str, Any],
    table: sa.Table,
    key: str,
    fields: tuple[str, ...],
    one: Callable[[Any, str], Awaitable[dict[str, Any]]],
) -> Any:
    """/customer/update and /organization/update: the fields given, and the budget (a new one
    from max_budget & co., or budget_id), in one transaction; the row as it is after."""
    async with admin.engine.begin() as db:
        row = await one(db, data[key])
        budget_id = await _attach_budget(db, data, who, row["budget_id"])
        values = columns(table, {name: data[name] for name in fields if name in data})
        await db.execute(sa.update(table).where(table.c[key] == row[key])
                         .values(budget_id=budget_id, **values, **stamps(who, new=False)))  # fmt: skip
        answer = await _with_budget(db, await one(db, row[key]))
    admin.changed()
    return answer


def _end_user_routes(admin: Admin, prefix: str) -> list[Route]:
    async def one(db: Any, user_id: str) -> dict[str, Any]:
        row = (await db.execute(sa.select(E).where(E.c.user_id == user_id))).mappings().first()
        if row is None:
            raise GatewayError(f"no end user {user_id}", status=404, param="user_id", code="end_user_not_found")
        return dict(row)

    async def new(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["user_id"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            if (await db.execute(sa.select(E.c.user_id).where(E.c.user_id == data["user_id"]))).scalar():
                raise BadRequest(f"user_id: end user {data['user_id']} exists already", param="user_id")
            budget_id = await _attach_budget(db, data, who, None)
            values = columns(E, {k: data[k] for k in ("alias", "allowed_model_region", "default_model", "metadata")
                                 if k in data})  # fmt: skip
            await db.execute(sa.insert(E).values(user_id=data["user_id"], spend=0.0, blocked=bool(data.get("blocked")),
                                                 budget_id=budget_id, **{"metadata": {}, **values},
                                                 **stamps(who, new=True)))  # fmt: skip
            answer = await _with_budget(db, await one(db, data["user_id"]))
        admin.changed()
        return answer

    async def update(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["user_id"])
        require(who, write=True, admin=True)
        fields = ("alias", "allowed_model_region", "default_model", "blocked")
        return await _update_budgeted(admin, who, data, E, "user_id", fields, one)

    async def delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["user_ids"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            await db.execute(sa.delete(E).where(E.c.user_id.in_(data["user_ids"])))
        admin.changed()
        return {"deleted_customers": data["user_ids"]}

    async def info(request: Request, who: Who) -> Any:
        require(who, admin=True)
        user_id = request.query_params.get("end_user_id") or request.query_params.get("user_id")
        if not user_id:
            raise BadRequest("end_user_id is required", param="end_user_id")
        async with admin.engine.connect() as db:
            answer = await _with_budget(db, await one(db, user_id)) or {}
        answer["spend"] = float(answer["spend"]) + admin.store.spend.unwritten_for(f"end_user:{user_id}")
        return answer

    async def list_all(request: Request, who: Who) -> Any:
        require(who, admin=True)
        async with admin.engine.connect() as db:
            rows = [dict(r) for r in (await db.execute(sa.select(E).order_by(E.c.user_id))).mappings()]
            return [await _with_budget(db, r) for r in rows]

    def blocking(blocked: bool) -> Any:
        async def handler(request: Request, who: Who) -> Any:
            data = check(await body(request), required=["user_ids"])
            require(who, write=True, admin=True)
            async with admin.engine.begin() as db:
                for user_id in data["user_ids"]:
                    found = (await db.execute(sa.select(E.c.user_id).where(E.c.user_id == user_id))).scalar()
                    if found is None:  # LiteLLM blocks end users it has not seen yet too
                        await db.execute(sa.insert(E).values(user_id=user_id, spend=0.0, blocked=blocked, metadata={},
                                                             **stamps(who, new=True)))  # fmt: skip
                    else:
                        await db.execute(sa.update(E).where(E.c.user_id == user_id).values(blocked=blocked))
            admin.changed()
            return {"blocked_users" if blocked else "unblocked_users": data["user_ids"]}

        return handler

    return [
        admin.route(f"{prefix}/new", new, ["POST"]),
        admin.route(f"{prefix}/update", update, ["POST"]),
        admin.route(f"{prefix}/delete", delete, ["POST", "DELETE"]),
        admin.route(f"{prefix}/info", info, ["GET"]),
        admin.route(f"{prefix}/list", list_all, ["GET"]),
        admin.route(f"{prefix}/block", blocking(True), ["POST"]),
        admin.route(f"{prefix}/unblock", blocking(False), ["POST"]),
    ]


def _organization_routes(admin: Admin) -> list[Route]:
    async def one(db: Any, org_id: str) -> dict[str, Any]:
        row = (await db.execute(sa.select(O).where(O.c.organization_id == org_id))).mappings().first()
        if row is None:
            raise GatewayError(f"no organization {org_id}", status=404, param="organization_id",
                               code="organization_not_found")  # fmt: skip
        return dict(row)

    async def new(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["organization_alias"])
        require(who, write=True, admin=True)
        org_id = data.get("organization_id") or new_id()
        async with admin.engine.begin() as db:
            budget_id = await _attach_budget(db, data, who, None)
            await db.execute(sa.insert(O).values(
                organization_id=org_id, organization_alias=data["organization_alias"], budget_id=budget_id,
                metadata=data.get("metadata") or {}, models=data.get("models") or [], members=[], spend=0.0,
                model_spend={}, **stamps(who, new=True),
            ))  # fmt: skip
            return await _with_budget(db, await one(db, org_id))

    async def update(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["organization_id"])
        require(who, write=True, admin=True)
        fields = ("organization_alias", "metadata", "models")
        return await _update_budgeted(admin, who, data, O, "organization_id", fields, one)

    async def delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["organization_ids"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            gone = [await _with_budget(db, await one(db, str(i))) for i in data["organization_ids"]]
            await db.execute(sa.delete(O).where(O.c.organization_id.in_(data["organization_ids"])))
        admin.changed()
        return gone

    async def info(request: Request, who: Who) -> Any:
        require(who, admin=True)
        org_id = request.query_params.get("organization_id")
        if not org_id:
            raise BadRequest("organization_id is required", param="organization_id")
        async with admin.engine.connect() as db:
            answer = await _with_budget(db, await one(db, org_id)) or {}
            teams = (
                await db.execute(sa.select(tables.teams).where(tables.teams.c.organization_id == org_id))
            ).mappings()
            answer["teams"] = [render(dict(t)) for t in teams]
        return answer

    async def list_all(request: Request, who: Who) -> Any:
        require(who, admin=True)
        async with admin.engine.connect() as db:
            rows = [dict(r) for r in (await db.execute(sa.select(O).order_by(O.c.created_at))).mappings()]
            return [await _with_budget(db, r) for r in rows]

    async def member_add(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["organization_id", "member"])
        require(who, write=True, admin=True)
        given = data["member"] if isinstance(data["member"], list) else [data["member"]]
        if any(not isinstance(m, dict) or not (m.get("user_id") or m.get("user_email")) for m in given):
            raise BadRequest("member: each member is an object with user_id or user_email, and role", param="member")
        async with admin.engine.begin() as db:
            row = await one(db, data["organization_id"])
            added = [{"user_id": m.get("user_id") or m.get("user_email"), "user_email": m.get("user_email"),
                      "user_role": m.get("role", "internal_user")} for m in given]  # fmt: skip
            ids = {m["user_id"] for m in added}
            members = [m for m in row["members"] if m["user_id"] not in ids] + added
            await db.execute(sa.update(O).where(O.c.organization_id == row["organization_id"]).values(members=members))
            await db.execute(sa.update(tables.users).where(tables.users.c.user_id.in_(ids))
                             .values(organization_id=row["organization_id"]))  # fmt: skip
        return {"organization_id": row["organization_id"], "updated_users": added,
                "updated_organization_memberships": added}  # fmt: skip

    async def member_delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["organization_id"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            row = await one(db, data["organization_id"])
            email = data.get("user_email")
            kept = [m for m in row["members"]
                    if m["user_id"] != data.get("user_id") and (not email or m.get("user_email") != email)]  # fmt: skip
            await db.execute(sa.update(O).where(O.c.organization_id == row["organization_id"]).values(members=kept))
        return {"organization_id": row["organization_id"], "members": kept}

    async def member_update(request: Request, who: Who) -> Any:
        """A member's role in the organization (LiteLLM's org_admin, internal_user, …): the answer is
        their membership. A budget of their own inside it is not kept here: a 400 says so."""
        data = check(await body(request), required=["organization_id"])
        require(who, write=True, admin=True)
        if not (data.get("user_id") or data.get("user_email")):
            raise BadRequest("user_id or user_email is required", param="user_id")
        if data.get("max_budget_in_organization") is not None:
            raise BadRequest(
                "max_budget_in_organization is not supported: give the organization a budget (/organization/update "
                "max_budget), or each member one in their team (max_budget_in_team)",
                param="max_budget_in_organization",
            )
        role = data.get("role")
        if role not in ORG_ROLES:
            raise BadRequest(f"role must be one of {', '.join(ORG_ROLES)}", param="role")
        async with admin.engine.begin() as db:
            row = await one(db, data["organization_id"])
            members = [dict(m) for m in row["members"]]
            found = next((m for m in members if (data.get("user_id") and m["user_id"] == data["user_id"])
                          or (data.get("user_email") and m.get("user_email") == data["user_email"])), None)  # fmt: skip
            if found is None:
                named = data.get("user_id") or data.get("user_email")
                raise GatewayError(f"{named} is not a member of organization {row['organization_id']}", status=404,
                                   param="user_id", code="member_not_found")  # fmt: skip
            found["user_role"] = role
            changed = stamps(who, new=False)
            await db.execute(sa.update(O).where(O.c.organization_id == row["organization_id"])
                             .values(members=members, **changed))  # fmt: skip
        return {"organization_id": row["organization_id"], "user_id": found["user_id"], "user_role": role,
                "user_email": found.get("user_email"), "updated_at": changed["updated_at"]}  # fmt: skip

    return [
        admin.route("/organization/new", new, ["POST"]),
        admin.route("/organization/update", update, ["PATCH", "POST"]),
        admin.route("/organization/delete", delete, ["DELETE", "POST"]),
        admin.route("/organization/info", info, ["GET"]),
        admin.route("/organization/list", list_all, ["GET"]),
        admin.route("/organization/member_add", member_add, ["POST"]),
        admin.route("/organization/member_delete", member_delete, ["DELETE", "POST"]),
        admin.route("/organization/member_update", member_update, ["PATCH", "POST"]),
    ]


def _budget_routes(admin: Admin) -> list[Route]:
    async def new(request: Request, who: Who) -> Any:
        data = check(await body(request))
        require(who, write=True, admin=True)
        budget_id = data.get("budget_id") or new_id()
        values = {k: data[k] for k in BUDGET_FIELDS if k in data}
        async with admin.engine.begin() as db:
            if await _budget(db, budget_id) is not None:
                raise BadRequest(f"budget_id: budget {budget_id} exists already", param="budget_id")
            await db.execute(sa.insert(B).values(budget_id=budget_id, **{"model_max_budget": {}, **values},
                                                 **budget_values(values), **stamps(who, new=True)))  # fmt: skip
            return render(await _budget(db, budget_id))

    async def update(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["budget_id"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            if await _budget(db, data["budget_id"]) is None:
                raise GatewayError(f"no budget {data['budget_id']}", status=404, param="budget_id")
            await _attach_budget(db, {k: v for k, v in data.items() if k != "budget_id"}, who, data["budget_id"])
            answer = render(await _budget(db, data["budget_id"]))
        admin.changed()
        return answer

    async def info(request: Request, who: Who) -> Any:
        require(who, admin=True)
        data = check(await body(request), required=["budgets"])
        async with admin.engine.connect() as db:
            rows = (await db.execute(sa.select(B).where(B.c.budget_id.in_(data["budgets"])))).mappings()
            return [render(dict(r)) for r in rows]

    async def list_all(request: Request, who: Who) -> Any:
        require(who, admin=True)
        async with admin.engine.connect() as db:
            return [render(dict(r)) for r in (await db.execute(sa.select(B).order_by(B.c.created_at))).mappings()]

    async def delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["id"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            row = await _budget(db, str(data["id"]))
            if row is None:
                raise GatewayError(f"no budget {data['id']}", status=404, param="id")
            await db.execute(sa.delete(B).where(B.c.budget_id == row["budget_id"]))
        admin.changed()
        return render(row)

    return [
        admin.route("/budget/new", new, ["POST"]),
        admin.route("/budget/update", update, ["POST"]),
        admin.route("/budget/info", info, ["POST"]),
        admin.route("/budget/list", list_all, ["GET"]),
        admin.route("/budget/delete", delete, ["POST"]),
    ]
