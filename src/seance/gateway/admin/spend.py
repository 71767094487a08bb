"""/spend/logs, /spend/tags, /global/spend/logs, /global/spend/report: read from the spend log
(what this process has not written yet shows on the next read, within a second)."""

from __future__ import annotations

import calendar
import time
from typing import Any

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import Admin, Who, render, require
from seance.gateway.errors import BadRequest
from seance.gateway.store import tables
from seance.gateway.store.keys import hash_key

S = tables.spend_logs
MAX_ROWS = 10_000


def routes(admin: Admin) -> list[Route]:
    async def logs(request: Request, who: Who) -> Any:
        query = request.query_params
        where = _window(request)
        if query.get("api_key"):
            where.append(S.c.api_key == hash_key(query["api_key"]))
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
            where.append(S.c.api_key == hash_key(request.query_params["api_key"]))
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

    return [
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
