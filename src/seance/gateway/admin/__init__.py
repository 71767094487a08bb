"""LiteLLM's management API — keys, teams, users, end users, organizations, budgets, spend, models — in its
paths, bodies and answers, over the store. Off the request path: a Starlette app that `app.py`
hands every request under these prefixes (`routes.ADMIN_PREFIXES`).

    base.py          who is asking (master key or a virtual key and its role), bodies, errors
    keys.py          /key/*
    teams.py         /team/*
    users.py         /user/*
    customers.py     /customer/* and /end_user/*, /organization/*, /budget/*
    spend.py         /spend/*, /global/spend/*
    models.py        /model/new, /model/update, /model/{id}/update, /model/delete (served by model_sync.py)
    cache.py         /cache/* (the response cache; with or without the database)

Roles (LiteLLM's): proxy_admin does everything; proxy_admin_viewer reads everything; internal_user
manages their own keys and reads what is theirs; internal_user_viewer only reads what is theirs. A
team's admins (members_with_roles role "admin") manage its members and keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from seance.gateway.admin.base import Admin, error_response
from seance.gateway.errors import GatewayError

if TYPE_CHECKING:
    from seance.gateway.admin.models import Live
    from seance.gateway.config import Settings
    from seance.gateway.pipeline.cache import Cache
    from seance.gateway.routing.deployments import Deployments
    from seance.gateway.store import Store


def build(
    settings: Settings,
    store: Store | None,
    deployments: Deployments,
    live: Live | None = None,
    cache: Cache | None = None,
    workers: Callable[[], int] = lambda: 1,
) -> Starlette:
    """`live`: what serves the models of /model/new (model_sync.ModelSync), with the store;
    `cache`: the response cache hook, if on; `workers`: how many worker processes serve."""
    from seance.gateway.admin import cache as cache_routes

    admin = Admin(settings, store, deployments)
    if store is None:  # the master key only: the cache's endpoints, and 501 for the rest
        routes = [*cache_routes.routes(admin, cache, workers),
                  Route("/{path:path}", _no_store, methods=["GET", "POST", "PATCH", "DELETE"])]  # fmt: skip
        return Starlette(routes=routes)
    from seance.gateway.admin import customers, keys, models, spend, teams, users

    routes = [*keys.routes(admin), *teams.routes(admin), *users.routes(admin), *customers.routes(admin),
              *spend.routes(admin), *(models.routes(admin, live) if live is not None else ()),
              *cache_routes.routes(admin, cache, workers)]  # fmt: skip
    return Starlette(routes=routes, exception_handlers={GatewayError: _gateway_error, 404: _not_found})


async def _no_store(request: Request) -> Response:
    return error_response(
        GatewayError("the management API needs the gateway's database, which is off", status=501, code="no_database")
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    text = "accepts other methods" if status == 405 else "is not a management endpoint of this gateway"
    return error_response(GatewayError(f"{request.method} {request.url.path} {text}", status=status))
