"""/team/new, update, delete, info, list, member_add, member_delete, member_update, block, unblock,
model/add, model/delete.

A member's spend inside a team and their `max_budget_in_team` live in seance_team_memberships (LiteLLM's
LiteLLM_TeamMembership), one row per entry of the team's members_with_roles, changed with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin import base
from seance.gateway.admin.base import Admin, Who, body, budget_values, check, columns, new_id, render, require, stamps
from seance.gateway.errors import BadRequest, Forbidden, GatewayError
from seance.gateway.store import tables
from seance.gateway.store.keys import member_scope

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = tables.teams
U = tables.users
M = tables.team_memberships
EDITABLE = frozenset(c.name for c in T.c) - {"team_id", "spend", "created_at", "created_by", "model_spend", "members",
                                             "admins", "members_with_roles"}  # fmt: skip
MEMBER_ROLES = ("admin", "user")


def routes(admin: Admin) -> list[Route]:
    async def new(request: Request, who: Who) -> Any:
        data = check(await body(request))
        require(who, write=True, admin=True)
        team_id = data.get("team_id") or new_id()
        members = [_member(m, "members_with_roles") for m in data.get("members_with_roles") or []]
        async with admin.engine.begin() as db:
            if await _one(db, team_id) is not None:
                raise BadRequest(f"team_id: team {team_id} exists already", param="team_id")
            values = _values(data, who, new=True)
            values.update(team_id=team_id, **_membership(members), spend=0.0)
            await db.execute(sa.insert(T).values(**values))
            for member in members:
                await _join(db, member, team_id, who)
            await _enrol(db, team_id, [m["user_id"] for m in members], who)
            return render(await _one(db, team_id))

    async def update(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["team_id"])
        async with admin.engine.begin() as db:
            await _manager(db, who, data["team_id"])
            await db.execute(sa.update(T).where(T.c.team_id == data["team_id"]).values(**_values(data, who, new=False)))
            team = render(await _one(db, data["team_id"]))
        admin.changed()
        return {"team_id": data["team_id"], "data": team}

    async def delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["team_ids"])
        require(who, write=True, admin=True)
        async with admin.engine.begin() as db:
            for team_id in data["team_ids"]:
                await _existing(db, str(team_id))
            await db.execute(sa.delete(tables.keys).where(tables.keys.c.team_id.in_(data["team_ids"])))
            await db.execute(sa.delete(M).where(M.c.team_id.in_(data["team_ids"])))
            await db.execute(sa.delete(T).where(T.c.team_id.in_(data["team_ids"])))
        admin.changed()
        return {"deleted_teams": data["team_ids"]}

    async def info(request: Request, who: Who) -> Any:
        team_id = request.query_params.get("team_id")
        if not team_id:
            raise BadRequest("team_id is required: /team/info?team_id=...", param="team_id")
        async with admin.engine.connect() as db:
            team = await _existing(db, team_id)
            if not who.reads_all and not _is_member(team, who):
                raise Forbidden(f"the caller is not a member of team {team_id}", param="team_id")
            keys = (await db.execute(sa.select(tables.keys).where(tables.keys.c.team_id == team_id))).mappings()
            rows = (await db.execute(sa.select(M).where(M.c.team_id == team_id).order_by(M.c.created_at))).mappings()
            memberships = [_membership_info(dict(row), admin.store.spend.unwritten_for) for row in rows]
            team_info = render(team) or {}
            team_info["spend"] = float(team["spend"]) + admin.store.spend.unwritten_for(f"team:{team_id}")
            return {"team_id": team_id, "team_info": team_info, "keys": [render(dict(k)) for k in keys],
                    "team_memberships": memberships}  # fmt: skip

    async def list_teams(request: Request, who: Who) -> Any:
        user_id = request.query_params.get("user_id")
        async with admin.engine.connect() as db:
            rows = [dict(r) for r in (await db.execute(sa.select(T).order_by(T.c.created_at))).mappings()]
        if user_id:
            rows = [r for r in rows if any(m.get("user_id") == user_id for m in r["members_with_roles"])]
        if not who.reads_all:
            rows = [r for r in rows if _is_member(r, who)]
        return [render(r) for r in rows]

    async def member_add(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["team_id", "member"])
        given = data["member"] if isinstance(data["member"], list) else [data["member"]]
        members = [_member(m, "member") for m in given]
        async with admin.engine.begin() as db:
            team = await _manager(db, who, data["team_id"])
            current = [m for m in team["members_with_roles"] if m.get("user_id") not in {n["user_id"] for n in members}]
            await db.execute(sa.update(T).where(T.c.team_id == team["team_id"])
                             .values(**_membership(current + members), **stamps(who, new=False)))  # fmt: skip
            users = [await _join(db, m, team["team_id"], who) for m in members]
            added = [m["user_id"] for m in members]
            await _enrol(db, team["team_id"], added, who, data)
            rows = await db.execute(sa.select(M).where(M.c.team_id == team["team_id"], M.c.user_id.in_(added)))
            memberships = [_membership_info(dict(row), admin.store.spend.unwritten_for) for row in rows.mappings()]
            changed = await _one(db, team["team_id"])
        admin.changed()
        return {**(render(changed) or {}), "updated_users": [render(u) for u in users],
                "updated_team_memberships": memberships}  # fmt: skip

    async def member_delete(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["team_id"])
        if not data.get("user_id") and not data.get("user_email"):
            raise BadRequest("user_id or user_email is required: the member to remove", param="user_id")
        async with admin.engine.begin() as db:
            team = await _manager(db, who, data["team_id"])
            gone = [m for m in team["members_with_roles"]
                    if (data.get("user_id") and m.get("user_id") == data["user_id"])
                    or (data.get("user_email") and m.get("user_email") == data["user_email"])]  # fmt: skip
            if not gone:
                raise GatewayError(f"team {data['team_id']} has no such member", status=404, param="user_id")
            kept = [m for m in team["members_with_roles"] if m not in gone]
            await db.execute(sa.update(T).where(T.c.team_id == team["team_id"]).values(**_membership(kept)))
            for member in gone:
                await _leave(db, member.get("user_id"), team["team_id"])
            await db.execute(sa.delete(M).where(M.c.team_id == team["team_id"],
                                                M.c.user_id.in_([m.get("user_id") for m in gone])))  # fmt: skip
            changed = await _one(db, team["team_id"])
        admin.changed()
        return render(changed)

    async def member_update(request: Request, who: Who) -> Any:
        data = check(await body(request), required=["team_id"])
        if data.get("role") is not None and data["role"] not in MEMBER_ROLES:
            raise BadRequest("role must be admin or user", param="role")
        async with admin.engine.begin() as db:
            team = await _manager(db, who, data["team_id"])
            members = team["members_with_roles"]
            found = next((m for m in members if (data.get("user_id") and m.get("user_id") == data["user_id"]) or
                          (data.get("user_email") and m.get("user_email") == data["user_email"])), None)  # fmt: skip
            if found is None:
                raise GatewayError(f"team {data['team_id']} has no such member", status=404, param="user_id")
            # the budget lives in the membership row (a copy left here by an earlier version goes)
            updated = {k: v for k, v in found.items() if k != "max_budget_in_team"}
            if data.get("role"):
                updated["role"] = data["role"]
            members = [updated if m is found else m for m in members]
            await db.execute(sa.update(T).where(T.c.team_id == team["team_id"]).values(**_membership(members)))
            await _enrol(db, team["team_id"], [updated["user_id"]], who, data)
            mine = (M.c.team_id == team["team_id"], M.c.user_id == updated["user_id"])
            budget = (await db.execute(sa.select(M.c.max_budget).where(*mine))).scalar()
        admin.changed()
        return {"team_id": data["team_id"], "user_id": updated.get("user_id"), "user_email": updated.get("user_email"),
                "role": updated.get("role"), "max_budget_in_team": budget}  # fmt: skip

    def blocking(blocked: bool) -> Any:
        async def handler(request: Request, who: Who) -> Any:
            data = check(await body(request), required=["team_id"])
            require(who, write=True, admin=True)
            async with admin.engine.begin() as db:
                await _existing(db, data["team_id"])
                await db.execute(sa.update(T).where(T.c.team_id == data["team_id"]).values(blocked=blocked))
                team = await _one(db, data["team_id"])
            admin.changed()
            return render(team)

        return handler

    def models_changed(add: bool) -> Any:
        """/team/model/add and /team/model/delete: names added to or taken from the team's models,
        by a proxy admin or the team's admin. A team with no models may use every model; adding to
        it keeps that (LiteLLM writes all-proxy-models first), and taking from it changes nothing."""

        async def handler(request: Request, who: Who) -> Any:
            data = check(await body(request), required=["team_id", "models"])
            named = data["models"]
            if not named or not all(isinstance(model, str) and model for model in named):
                raise BadRequest('models must be a list of model names, such as ["gpt-4o"]', param="models")
            async with admin.engine.begin() as db:
                team = await _manager(db, who, data["team_id"])
                models = list(team["models"] or [])
                if add:
                    models = models or ["all-proxy-models"]
                    models += [model for model in dict.fromkeys(named) if model not in models]
                else:
                    models = [model for model in models if model not in named]
                changed = {"models": models, **stamps(who, new=False)}
                await db.execute(sa.update(T).where(T.c.team_id == data["team_id"]).values(**changed))
                updated = await _one(db, data["team_id"])
            admin.changed()
            return render(updated)

        return handler

    return [
        admin.route("/team/new", new, ["POST"]),
        admin.route("/team/update", update, ["POST"]),
        admin.route("/team/delete", delete, ["POST", "DELETE"]),
        admin.route("/team/info", info, ["GET"]),
        admin.route("/team/list", list_teams, ["GET"]),
        admin.route("/team/member_add", member_add, ["POST"]),
        admin.route("/team/member_delete", member_delete, ["POST"]),
        admin.route("/team/member_update", member_update, ["POST"]),
        admin.route("/team/block", blocking(True), ["POST"]),
        admin.route("/team/unblock", blocking(False), ["POST"]),
        admin.route("/team/model/add", models_changed(True), ["POST"]),
        admin.route("/team/model/delete", models_changed(False), ["POST"]),
    ]


def _values(data: dict[str, Any], who: Who, *, new: bool) -> dict[str, Any]:
    values = columns(T, {k: v for k, v in data.items() if k in EDITABLE})
    for name, empty in (("models", []), ("metadata", {}), ("model_max_budget", {})):
        if values.get(name, 0) is None or (new and name not in values):
            values[name] = empty
    if new:
        values.setdefault("blocked", False)
        values.setdefault("model_spend", {})
    values.update(stamps(who, new=new))
    values.update(budget_values(data))
    return values


def _member(given: Any, field: str) -> dict[str, Any]:
    if not isinstance(given, dict) or not (given.get("user_id") or given.get("user_email")):
        raise BadRequest(f"{field}: each member is an object with user_id or user_email, and role", param=field)
    role = given.get("role", "user")
    if role not in MEMBER_ROLES:
        raise BadRequest(f"{field}: role must be admin or user, not {role!r}", param=field)
    for name, longest in (("user_id", base.LONGEST_TEXT), ("user_email", base.LONGEST["user_email"])):
        value = given.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > longest):
            raise BadRequest(f"{field}: a member's {name} is a string of at most {longest} characters", param=field)
    return {"user_id": given.get("user_id") or given.get("user_email"), "user_email": given.get("user_email"),
            "role": role}  # fmt: skip


def _membership(members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "members_with_roles": members,
        "members": [m["user_id"] for m in members],
        "admins": [m["user_id"] for m in members if m.get("role") == "admin"],
    }


def _is_member(team: dict[str, Any], who: Who) -> bool:
    return who.team_id == team["team_id"] or any(
        who.user_id and m.get("user_id") == who.user_id for m in team["members_with_roles"]
    )


async def _one(db: AsyncConnection, team_id: str) -> dict[str, Any] | None:
    row = (await db.execute(sa.select(T).where(T.c.team_id == team_id))).mappings().first()
    return None if row is None else dict(row)


async def _existing(db: AsyncConnection, team_id: str) -> dict[str, Any]:
    team = await _one(db, team_id)
    if team is None:
        raise GatewayError(f"no team {team_id}", status=404, param="team_id", code="team_not_found")
    return team


async def _manager(db: AsyncConnection, who: Who, team_id: str) -> dict[str, Any]:
    """The team, if the caller may change it: a proxy admin or one of the team's admins."""
    team = await _existing(db, team_id)
    if who.admin or (who.writes and any(who.user_id and m.get("user_id") == who.user_id and m.get("role") == "admin"
                                        for m in team["members_with_roles"])):  # fmt: skip
        return team
    raise Forbidden(f"only a proxy admin or an admin of team {team_id} may change it", param="team_id")


async def _join(db: AsyncConnection, member: dict[str, Any], team_id: str, who: Who) -> dict[str, Any]:
    """The member's user row, made if missing (as LiteLLM does), with the team in its teams."""
    user_id = member["user_id"]
    row = (await db.execute(sa.select(U).where(U.c.user_id == user_id))).mappings().first()
    if row is None:
        await db.execute(sa.insert(U).values(user_id=user_id, user_email=member.get("user_email"),
                                             user_role="internal_user", teams=[team_id], spend=0.0, models=[],
                                             metadata={}, model_spend={}, model_max_budget={},
                                             **stamps(who, new=True)))  # fmt: skip
    elif team_id not in row["teams"]:
        await db.execute(sa.update(U).where(U.c.user_id == user_id).values(teams=[*row["teams"], team_id]))
    return dict((await db.execute(sa.select(U).where(U.c.user_id == user_id))).mappings().one())


async def _enrol(
    db: AsyncConnection, team_id: str, user_ids: list[str], who: Who, data: dict[str, Any] | None = None
) -> None:
    """Each member's membership row, made when missing (spend 0); `max_budget_in_team` in `data`
    sets their budget in the team (None: none, the team's alone), absent leaves it as it was."""
    values: dict[str, Any] = {}
    if data is not None and "max_budget_in_team" in data:
        budget = data["max_budget_in_team"]
        values["max_budget"] = None if budget is None else float(budget)
    for user_id in dict.fromkeys(user_ids):
        where = (M.c.team_id == team_id, M.c.user_id == user_id)
        if (await db.execute(sa.select(M.c.user_id).where(*where))).first() is None:
            row = {"team_id": team_id, "user_id": user_id, "spend": 0.0, "max_budget": None, **values}
            await db.execute(sa.insert(M).values(**row, **stamps(who, new=True)))
        elif values:
            await db.execute(sa.update(M).where(*where).values(**values, **stamps(who, new=False)))


def _membership_info(row: dict[str, Any], unwritten: Callable[[str], float]) -> dict[str, Any]:
    """LiteLLM's LiteLLM_TeamMembership: the member's spend in the team (with what is not written
    yet) and their budget there as a litellm_budget_table (None without one)."""
    spend = float(row["spend"]) + unwritten(member_scope(row["team_id"], row["user_id"]))
    budget = None if row["max_budget"] is None else {"max_budget": row["max_budget"]}
    return {"team_id": row["team_id"], "user_id": row["user_id"], "spend": spend, "budget_id": None,
            "litellm_budget_table": budget}  # fmt: skip


async def _leave(db: AsyncConnection, user_id: str | None, team_id: str) -> None:
    row = (await db.execute(sa.select(U.c.teams).where(U.c.user_id == user_id))).first()
    if row is not None:
        await db.execute(
            sa.update(U).where(U.c.user_id == user_id).values(teams=[t for t in row.teams if t != team_id])
        )
