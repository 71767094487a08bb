"""What this gateway serves, per caller: GET /v1/models and /v1/models/{id} in OpenAI's list shape;
LiteLLM's /model/info, /v1/model/info, /v2/model/info and /model_group/info (prices, context
windows, supported parameters, modes, providers). A caller limited to some model groups
(`Caller.models`) sees only those. Off the hot path: built from the deployment table on demand."""

from __future__ import annotations

import builtins
import fnmatch
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from seance.gateway.context import Caller
from seance.gateway.errors import BadRequest, ModelNotFound
from seance.gateway.routing.deployments import Deployment, Deployments, Wildcard
from seance.gateway.store.sealing import is_secret

# LiteLLM's special model names on a key: every model of the gateway
ALL_MODELS = frozenset({"*", "all-proxy-models"})
SUPPORTS = (
    "supports_parallel_function_calling", "supports_vision", "supports_web_search", "supports_url_context",
    "supports_reasoning", "supports_function_calling",
)  # fmt: skip
V2_PAGE = 50  # /v2/model/info's default page size (LiteLLM's), at most V2_MAX
V2_MAX = 100


class ModelsFront:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments
        self.started = int(time.time())

    # -- OpenAI's /v1/models --

    def list(self, caller: Caller | None = None) -> dict[str, Any]:
        names = self.deployments.listed_names()
        allowed = _allowed(caller)
        if allowed is not None:
            names = [name for name in names if allowed(name)]
        return {"object": "list", "data": [self._model(name) for name in names]}

    def get(self, name: str, caller: Caller | None = None) -> dict[str, Any]:
        allowed = _allowed(caller)
        if allowed is not None and not allowed(name):
            raise ModelNotFound(f"model '{name}' is not available to this key", param="model")
        self.deployments.lookup(name)  # ModelNotFound (404) when it is not served
        return self._model(name)

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.started, "owned_by": "seance"}

    # -- LiteLLM's model info --

    def model_info(self, caller: Caller | None, query: bytes) -> dict[str, Any]:
        """/model/info and /v1/model/info: every deployment, `?litellm_model_id=` one of them."""
        params = _query(query)
        wanted = params.get("litellm_model_id")
        items = [i for i in self._items(caller) if wanted is None or i["model_info"]["id"] == wanted]
        return {"data": items}

    def model_info_v2(self, caller: Caller | None, query: bytes) -> dict[str, Any]:
        """/v2/model/info: the same items, filtered (`model`, `modelId`, `search`) and paged."""
        params = _query(query)
        page = _positive(params, "page", 1, None)
        size = _positive(params, "size", V2_PAGE, V2_MAX)
        items = self._items(caller)
        if (model := params.get("model")) is not None:
            items = [i for i in items if i["model_name"] == model]
        if (model_id := params.get("modelId")) is not None:
            items = [i for i in items if i["model_info"]["id"] == model_id]
        if (search := params.get("search")) is not None:
            items = [i for i in items if search.lower() in i["model_name"].lower()]
        total = len(items)
        return {
            "data": items[(page - 1) * size : page * size],
            "total_count": total,
            "current_page": page,
            "size": size,
            "total_pages": max(math.ceil(total / size), 1),
        }

    def model_group_info(self, caller: Caller | None, query: bytes) -> dict[str, Any]:
        """/model_group/info: one entry per model group (`?model_group=` one of them)."""
        wanted = _query(query).get("model_group")
        allowed = _allowed(caller)
        groups: builtins.list[dict[str, Any]] = []
        for name, group in self.deployments.groups.items():
            if (wanted is None or name == wanted) and (allowed is None or allowed(name)):
                groups.append(_group_info(name, group))
        for wildcard in self.deployments.wildcards:
            name = wildcard.name
            if (wanted is None or name == wanted) and (allowed is None or allowed(name)):
                groups.append(_group_info(name, [], _provider_of(wildcard)))
        return {"data": groups}

    def _items(self, caller: Caller | None) -> builtins.list[dict[str, Any]]:
        allowed = _allowed(caller)
        items = [
            _deployment_item(d)
            for group in self.deployments.groups.values()
            for d in group
            if allowed is None or allowed(d.model_name)
        ]
        items += [_wildcard_item(w) for w in self.deployments.wildcards if allowed is None or allowed(w.name)]
        return items


def _allowed(caller: Caller | None) -> Callable[[str], bool] | None:
    """None when the caller may see everything; else a test of a model name."""
    models = caller.models if caller is not None else None
    if models is None or not models.isdisjoint(ALL_MODELS):
        return None
    patterns = [m for m in models if "*" in m]

    def allowed(name: str) -> bool:
        return name in models or any(fnmatch.fnmatchcase(name, p) for p in patterns)

    return allowed


def _deployment_item(deployment: Deployment) -> dict[str, Any]:
    info = dict(deployment.info)
    info.setdefault("litellm_provider", deployment.target.provider)
    info.setdefault("mode", None)
    info.setdefault("max_input_tokens", None)
    info.setdefault("max_output_tokens", None)
    info.setdefault("max_tokens", info["max_output_tokens"])
    info.setdefault("input_cost_per_token", None)
    info.setdefault("output_cost_per_token", None)
    for name in SUPPORTS:
        info.setdefault(name, None)
    info.setdefault("supported_openai_params", sorted(deployment.adapter.supported_params()) or None)
    info["id"] = deployment.id
    info["db_model"] = deployment.model_info.get("db_model") is True  # added through /model/new
    info["key"] = f"{deployment.target.provider}/{deployment.target.model}"
    return {"model_name": deployment.model_name, "litellm_params": _public(_params_of(deployment)), "model_info": info}


def _params_of(deployment: Deployment) -> dict[str, Any]:
    if deployment.entry is None:
        return {"model": f"{deployment.target.provider}/{deployment.target.model}"}
    return deployment.entry.litellm_params.model_dump(exclude_none=True)


def _wildcard_item(wildcard: Wildcard) -> dict[str, Any]:
    params = wildcard.entry.litellm_params
    info: dict[str, Any] = {
        "litellm_provider": _provider_of(wildcard) or None,
        "mode": None,
        **wildcard.entry.model_info,
        "id": wildcard.id,
        "db_model": wildcard.entry.model_info.get("db_model") is True,
    }
    return {
        "model_name": wildcard.name,
        "litellm_params": _public(params.model_dump(exclude_none=True)),
        "model_info": info,
    }


def _group_info(name: str, group: Iterable[Deployment], provider: str | None = None) -> dict[str, Any]:
    deployments = list(group)
    infos = [d.info for d in deployments]
    rpm = [d.rpm for d in deployments if d.rpm is not None]
    tpm = [d.tpm for d in deployments if d.tpm is not None]
    params = sorted({p for d in deployments for p in d.adapter.supported_params()})
    providers = sorted({d.target.provider for d in deployments} | ({provider} if provider else set()))
    modes = [i["mode"] for i in infos if i.get("mode")]
    return {
        "model_group": name,
        "providers": providers,
        "max_input_tokens": _largest(infos, "max_input_tokens"),
        "max_output_tokens": _largest(infos, "max_output_tokens"),
        "input_cost_per_token": _largest(infos, "input_cost_per_token"),
        "output_cost_per_token": _largest(infos, "output_cost_per_token"),
        "input_cost_per_pixel": _largest(infos, "input_cost_per_pixel"),
        "mode": modes[0] if modes else "chat",
        "tpm": sum(tpm) if tpm else None,
        "rpm": sum(rpm) if rpm else None,
        "itpm": None,
        "otpm": None,
        **{flag: any(bool(i.get(flag)) for i in infos) for flag in SUPPORTS},
        "supported_reasoning_efforts": None,
        "supported_openai_params": params,
        "configurable_clientside_auth_params": None,
    }


def _largest(infos: Iterable[Mapping[str, Any]], name: str) -> float | None:
    values = [v for i in infos if isinstance(v := i.get(name), int | float) and not isinstance(v, bool)]
    return max(values) if values else None


def _provider_of(wildcard: Wildcard) -> str:
    prefix, slash, _ = wildcard.entry.litellm_params.model.partition("/")
    return prefix if slash else ""


def _public(params: Mapping[str, Any]) -> dict[str, Any]:
    """litellm_params without credentials; an api_base without its password."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_secret(name):  # credentials, and headers that may carry them
            continue
        if name == "api_base" and isinstance(value, str):
            value = _without_userinfo(value)
        out[name] = value
    return out


def _without_userinfo(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable)"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _query(query: bytes) -> dict[str, str]:
    if not query:
        return {}
    try:
        parsed = parse_qs(query.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise BadRequest("the query string is not UTF-8") from None
    return {name: values[-1] for name, values in parsed.items()}


def _positive(params: Mapping[str, str], name: str, default: int, largest: int | None) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1 or (largest is not None and int(text) > largest):
        bound = f"between 1 and {largest}" if largest is not None else "at least 1"
        raise BadRequest(f"query parameter '{name}' must be a whole number {bound}, not {text!r}", param=name)
    return int(text)
