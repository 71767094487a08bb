"""/model/new, /model/update, PATCH /model/{model_id}/update, /model/delete: deployments added at
run time, stored in the database (LiteLLM's LiteLLM_ProxyModelTable) and served beside those of
config.yaml by every worker and replica (model_sync.py). Proxy admins only; /model/info, which
reads them, is the API's own route.

A body is checked as a config.yaml entry is (unknown keys with "did you mean", `os.environ/`
references, types, the provider) before anything is written. Credentials are sealed in the
database (store/sealing.py) and never shown: an answer lists an `os.environ/NAME` reference as
written and leaves a literal credential out. Models of config.yaml are changed in config.yaml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from starlette.requests import Request
from starlette.routing import Route

from seance.gateway.admin.base import LONGEST_TEXT, Admin, Who, body, new_id, render, require, stamps
from seance.gateway.errors import BadRequest, GatewayError
from seance.gateway.store import models as stored
from seance.gateway.store import tables
from seance.gateway.store.sealing import Sealer, SealError, is_reference, is_secret

if TYPE_CHECKING:
    from seance.gateway.config import ModelEntry

M = tables.proxy_models


class Live(Protocol):
    """What serves the stored models (model_sync.ModelSync, above this layer)."""

    sealer: Sealer

    def check(self, model_id: str, raw: dict[str, Any]) -> ModelEntry:
        """BadRequest naming the key when `raw` cannot be served."""

    async def changed(self) -> None:
        """The table was written: serve what it holds now."""


def routes(admin: Admin, live: Live) -> list[Route]:
    async def new(request: Request, who: Who) -> Any:
        require(who, write=True, admin=True)
        data = _entry(await body(request))
        model_id = str(data["model_info"].get("id") or new_id())
        if await stored.read_one(admin.store.engine, model_id) is not None or admin.deployments.in_config(model_id):
            raise BadRequest(f"model_info.id: a model with id {model_id} exists already", param="model_info.id")
        live.check(model_id, data)
        values = {"model_name": data["model_name"], "litellm_params": _sealed(live, data["litellm_params"]),
                  "model_info": _info(model_id, data["model_info"]), **stamps(who, new=True)}  # fmt: skip
        try:
            async with admin.engine.begin() as db:
                await db.execute(sa.insert(M).values(model_id=model_id, **values))
        except sa.exc.IntegrityError:  # the same id, added at the same moment elsewhere
            raise BadRequest(
                f"model_info.id: a model with id {model_id} exists already", param="model_info.id"
            ) from None
        await live.changed()
        return _shown({"model_id": model_id, **values})

    async def update(request: Request, who: Who) -> Any:
        """LiteLLM's older form: the id in model_info.id."""
        require(who, write=True, admin=True)
        data = await body(request)
        info = data.get("model_info")
        model_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise BadRequest("model_info.id is required: the id of the model to update", param="model_info.id")
        return await _update(model_id, data, who)

    async def patch(request: Request, who: Who) -> Any:
        require(who, write=True, admin=True)
        return await _update(request.path_params["model_id"], await body(request), who)

    async def _update(model_id: str, data: dict[str, Any], who: Who) -> Any:
        """Only what the body gives changes: model_name, and each key of litellm_params and of
        model_info (a null leaves a key as it is, as LiteLLM does)."""
        row = await _stored_row(model_id)
        given = _partial(data)
        try:
            current = live.sealer.open(row["litellm_params"])
        except SealError as exc:
            raise BadRequest(f"{exc}: delete the model and add it again", param="litellm_params") from None
        merged = {
            "model_name": given.get("model_name") or row["model_name"],
            "litellm_params": {**current, **given.get("litellm_params", {})},
            "model_info": {**row["model_info"], **given.get("model_info", {})},
        }
        live.check(model_id, merged)
        values = {"model_name": merged["model_name"], "litellm_params": _sealed(live, merged["litellm_params"]),
                  "model_info": _info(model_id, merged["model_info"]), **stamps(who, new=False)}  # fmt: skip
        async with admin.engine.begin() as db:
            await db.execute(sa.update(M).where(M.c.model_id == model_id).values(**values))
        await live.changed()
        return _shown({**row, **values})

    async def delete(request: Request, who: Who) -> Any:
        require(who, write=True, admin=True)
        model_id = (await body(request)).get("id")
        if not isinstance(model_id, str) or not model_id:
            raise BadRequest("id is required: the model_info.id of the model to delete", param="id")
        await _stored_row(model_id)
        async with admin.engine.begin() as db:
            await db.execute(sa.delete(M).where(M.c.model_id == model_id))
        await live.changed()
        return {"message": f"Model: {model_id} deleted successfully"}

    async def _stored_row(model_id: str) -> dict[str, Any]:
        row = await stored.read_one(admin.store.engine, model_id)
        if row is not None:
            return row
        if admin.deployments.in_config(model_id):
            raise BadRequest(
                f"model {model_id} is in the config file, not in the database: change it there "
                "(models added through /model/new are changed here)",
                param="id", code="config_model",
            )  # fmt: skip
        raise GatewayError(f"no model with id {model_id} in the database", status=404, param="id",
                           code="model_not_found")  # fmt: skip

    return [
        admin.route("/model/new", new, ["POST"]),
        admin.route("/model/update", update, ["POST"]),
        admin.route("/model/{model_id:path}/update", patch, ["PATCH"]),
        admin.route("/model/delete", delete, ["POST"]),
    ]


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    """A /model/new body's three fields, of their types (what they hold is checked by `Live.check`)."""
    name = data.get("model_name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("model_name is required: the name clients ask for", param="model_name")
    _short(name)
    params = data.get("litellm_params")
    if not isinstance(params, dict):
        raise BadRequest("litellm_params is required: an object with at least `model`", param="litellm_params")
    info = data.get("model_info")
    if info is not None and not isinstance(info, dict):
        raise BadRequest("model_info must be an object", param="model_info")
    return {"model_name": name, "litellm_params": params, "model_info": info or {}}


def _partial(data: dict[str, Any]) -> dict[str, Any]:
    """An update body's fields: each optional; nulls inside litellm_params and model_info dropped."""
    out: dict[str, Any] = {}
    name = data.get("model_name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("model_name must be a non-empty string", param="model_name")
        out["model_name"] = _short(name)
    for field in ("litellm_params", "model_info"):
        value = data.get(field)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise BadRequest(f"{field} must be an object", param=field)
        out[field] = {k: v for k, v in value.items() if v is not None and k != "id"}
    return out


def _sealed(live: Live, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return live.sealer.seal(params)
    except SealError as exc:
        raise BadRequest(str(exc), param="litellm_params") from None


def _info(model_id: str, info: dict[str, Any]) -> dict[str, Any]:
    """model_info as stored: with its id; `db_model` is said when it is served, not stored."""
    return {**{k: v for k, v in info.items() if k != "db_model"}, "id": model_id}


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A row as LiteLLM answers it (LiteLLM_ProxyModelTable), without a credential."""
    params = {k: v for k, v in row["litellm_params"].items() if not is_secret(k) or is_reference(v)}
    if isinstance(params.get("api_base"), str):
        params["api_base"] = _without_userinfo(params["api_base"])
    out = render({**row, "litellm_params": params, "model_info": {**row["model_info"], "db_model": True}})
    assert out is not None
    return out


def _without_userinfo(url: str) -> str:
    """An api_base without the user and password it may carry."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if "@" in parts.netloc else url


def _short(name: str) -> str:
    if len(name) > LONGEST_TEXT:
        raise BadRequest(f"model_name is {len(name)} characters long; at most {LONGEST_TEXT}", param="model_name")
    return name
