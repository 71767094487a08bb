"""/spend/logs, /spend/tags, /global/spend/logs, /global/spend/report, /global/spend/keys,
/global/spend/models: read from the spend log (what this process has not written yet shows on the
next read, within a second)."""

from __future__ import annotations

import calendar
import hmac
import time
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import Admin, Who, render, require
from seance.gateway.context import MASTER_KEY_ALIAS
from seance.gateway.errors import BadRequest
from seance.gateway.store import tables
from seance.gateway.store.keys import hash_key

S = tables.spend_logs
K = tables.keys
MAX_ROWS = 10_000
TOP_DAYS = 30  # what /global/spend/keys and /global/spend/models add up, as LiteLLM's views do


def routes(admin: Admin) -> list[Route]:
    async def logs(request: Request, who: Who) -> Any:
        query = request.query_params
        where = _window(request)
        if query.get("api_key"):
            where.append(S.c.api_key == _logged_as(admin, query["api_key"]))
        if query.get("user_id"):
            where.append(S.c.user == query["user_id"])
        if query.get("team_id"):
            where.append(S.c.team_id == query["team_id"])
        if query.get("request_id"):
            where.append(S.c.request_id == query["request_id"])
        if not who.reads_all:
            where.append(sa.or_(S.c.user == who.user_id, S.c.api_key == who.key_hash) if who.user_id
                         else S.c.api_key == who.key_hash)  # fmt: skip
        async with admin.engine.connect() as db:
            rows = (await db.execute(sa.select(S).where(*where).order_by(S.c.start_time).limit(MAX_ROWS))).mappings()
            return [_row(dict(r)) for r in rows]

    async def tags(request: Request, who: Who) -> Any:
        require(who, admin=True)
        totals: dict[str, list[float]] = {}
        async with admin.engine.connect() as db:
            rows = await db.execute(sa.select(S.c.request_tags, S.c.spend).where(*_window(request)))
            for tag_list, spend in rows:
                for tag in tag_list or []:
                    entry = totals.setdefault(str(tag), [0, 0.0])
                    entry[0] += 1
                    entry[1] += spend
        return [{"individual_request_tag": tag, "log_count": int(n), "total_spend": spent}
                for tag, (n, spent) in sorted(totals.items(), key=lambda item: -item[1][1])]  # fmt: skip

    async def global_logs(request: Request, who: Who) -> Any:
        require(who, admin=True)
        where = _window(request)
        if request.query_params.get("api_key"):
            where.append(S.c.api_key == _logged_as(admin, request.query_params["api_key"]))
        days: dict[str, float] = {}
        async with admin.engine.connect() as db:
            for start, spend in await db.execute(sa.select(S.c.start_time, S.c.spend).where(*where)):
                day = time.strftime("%Y-%m-%d", time.gmtime(start))
                days[day] = days.get(day, 0.0) + spend
        return [{"date": day, "spend": spent} for day, spent in sorted(days.items())]

    async def report(request: Request, who: Who) -> Any:
        require(who, admin=True)
        group_by = request.query_params.get("group_by", "team")
        column = {"team": S.c.team_id, "customer": S.c.end_user, "api_key": S.c.api_key}.get(group_by)
        if column is None:
            raise BadRequest("group_by must be team, customer or api_key", param="group_by")
        name = {"team": "teams", "customer": "customers", "api_key": "api_keys"}[group_by]
        label = {"team": "team_name", "customer": "customer", "api_key": "api_key"}[group_by]
        days: dict[str, dict[str, dict[str, Any]]] = {}
        async with admin.engine.connect() as db:
            rows = await db.execute(sa.select(S.c.start_time, column, S.c.model_group, S.c.spend, S.c.total_tokens)
                                    .where(*_window(request)))  # fmt: skip
            for start, who_spent, model, spend, tokens in rows:
                day = time.strftime("%Y-%m-%d", time.gmtime(start))
                group = days.setdefault(day, {}).setdefault(str(who_spent), {"total_spend": 0.0, "models": {}})
                group["total_spend"] += spend
                per_model = group["models"].setdefault(model, {"model": model, "spend": 0.0, "total_tokens": 0})
                per_model["spend"] += spend
                per_model["total_tokens"] += tokens
        return [
            {"group_by_day": day, name: [{label: key, "total_spend": g["total_spend"],
                                          "metadata": list(g["models"].values())} for key, g in groups.items()]}
            for day, groups in sorted(days.items())
        ]  # fmt: skip

    async def top_keys(request: Request, who: Who) -> Any:
        """The keys that spent most in the last 30 days (LiteLLM's Last30dKeysBySpend view); ties in a
        fixed order, so that ?limit=N is the start of the whole list."""
        require(who, admin=True)
        total = sa.func.sum(S.c.spend).label("total_spend")
        query = (sa.select(S.c.api_key, sa.func.max(S.c.key_alias).label("key_alias"), total)
                 .where(S.c.start_time >= time.time() - TOP_DAYS * 86400).group_by(S.c.api_key)
                 .order_by(total.desc(), S.c.api_key).limit(_limit(request)))  # fmt: skip
        async with admin.engine.connect() as db:
            spent = (await db.execute(query)).all()
            names = dict((await db.execute(sa.select(K.c.token, K.c.key_name).where(
                K.c.token.in_([row.api_key for row in spent])))).all())  # fmt: skip
        return [{"api_key": row.api_key, "key_alias": row.key_alias, "key_name": names.get(row.api_key),
                 "total_spend": float(row.total_spend or 0.0)} for row in spent]  # fmt: skip

    async def top_models(request: Request, who: Who) -> Any:
        """The models that cost most in the last 30 days, by the name asked for (LiteLLM's
        Last30dModelsBySpend view)."""
        require(who, admin=True)
        total = sa.func.sum(S.c.spend).label("total_spend")
        query = (sa.select(S.c.model, total)
                 .where(S.c.start_time >= time.time() - TOP_DAYS * 86400, S.c.model.is_not(None), S.c.model != "")
                 .group_by(S.c.model).order_by(total.desc(), S.c.model).limit(_limit(request)))  # fmt: skip
        async with admin.engine.connect() as db:
            return [{"model": model, "total_spend": float(spent or 0.0)} for model, spent in await db.execute(query)]

    return [
        admin.route("/global/spend/keys", top_keys, ["GET"]),
        admin.route("/global/spend/models", top_models, ["GET"]),
        admin.route("/spend/logs", logs, ["GET"]),
        admin.route("/spend/tags", tags, ["GET"]),
        admin.route("/global/spend/logs", global_logs, ["GET"]),
        admin.route("/global/spend/report", report, ["GET"]),
    ]


def _row(row: dict[str, Any]) -> dict[str, Any]:
    """A spend-log row in LiteLLM's shape (startTime/endTime, as its SpendLogs table names them)."""
    out = render(row) or {}
    out["startTime"] = out.pop("start_time")
    out["endTime"] = out.pop("end_time")
    out["cache_hit"] = str(row["cache_hit"]).lower()
    return out


def _limit(request: Request) -> int:
    """?limit=N, the top N (all of them, up to MAX_ROWS, without one)."""
    given = request.query_params.get("limit")
    if given is None:
        return MAX_ROWS
    if not given.isdigit() or int(given) < 1:
        raise BadRequest(f"limit must be a whole number of 1 or more, not {given!r}", param="limit")
    return min(int(given), MAX_ROWS)


def _window(request: Request) -> list[Any]:
    """start_date / end_date (YYYY-MM-DD, end inclusive), as LiteLLM's spend endpoints take them."""
    where = []
    for name in ("start_date", "end_date"):
        value = request.query_params.get(name)
        if not value:
            continue
        try:
            day = calendar.timegm(time.strptime(value[:10], "%Y-%m-%d"))
        except ValueError:
            raise BadRequest(f"{name} must be a date, YYYY-MM-DD", param=name) from None
        where.append(S.c.start_time >= day if name == "start_date" else S.c.start_time < day + 86400)
    return where


def _logged_as(admin: Admin, key: str) -> str:
    """What the spend log names a key by: its hash; the master key (or its alias), by the alias."""
    master = admin.master_key
    if key == MASTER_KEY_ALIAS or (master is not None and hmac.compare_digest(key.encode(), master)):
        return MASTER_KEY_ALIAS
    return hash_key(key)
