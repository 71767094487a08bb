"""What the gateway says it serves, per caller: /v1/models (wildcards and no-config mode list the
catalogue's concrete models), and LiteLLM's /model/info, /v2/model/info and /model_group/info in
its shapes (its ModelGroupInfo fields; data items of model_name, litellm_params, model_info)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.gateway.asgi_client import KEY, deployment, make_app, request

from seance.gateway.app import Gateway
from seance.gateway.config import load_settings
from seance.gateway.context import Caller, RequestContext
from seance.gateway.pipeline import Hook
from seance.gateway.pipeline.auth import Auth
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse, MockTransport

# the fields of LiteLLM's ModelGroupInfo (litellm/types/router.py)
MODEL_GROUP_FIELDS = {
    "model_group", "providers", "max_input_tokens", "max_output_tokens", "input_cost_per_token",
    "output_cost_per_token", "input_cost_per_pixel", "mode", "tpm", "rpm", "itpm", "otpm",
    "supports_parallel_function_calling", "supports_vision", "supports_web_search", "supports_url_context",
    "supports_reasoning", "supports_function_calling", "supported_reasoning_efforts", "supported_openai_params",
    "configurable_clientside_auth_params",
}  # fmt: skip
CONFIG = {
    "model_list": [
        deployment("gpt", "openai/gpt-4o", model_info={"id": "gpt-east", "input_cost_per_token": 1e-6}, rpm=10),
        deployment("gpt", "openai/gpt-4o-mini", api_base="http://user:hunter2@up.test", rpm=5),
        deployment("claude", "anthropic/claude-haiku-4-5", extra_headers={"x-proxy-auth": "sk-in-a-header"}),
        deployment("embed", "openai/text-embedding-3-small", model_info={"mode": "embedding"}),
        {"model_name": "mistral/*", "litellm_params": {"model": "mistral/*", "api_key": "sk-m"}},
    ]
}


class Limited(Hook):
    """Stands in for a virtual key limited to some model groups (the auth hook fills Caller.models)."""

    def __init__(self, models: frozenset[str] | None) -> None:
        self.models = models

    async def on_request(self, ctx: RequestContext) -> None:
        ctx.caller = Caller("virtual_key", key_hash="ab" * 32, role="internal_user", models=self.models)


def never(_: UpstreamRequest) -> MockResponse:
    raise AssertionError("the model endpoints never call a provider")


def app_for(tmp_path: Path, models: frozenset[str] | None = None) -> Gateway:
    hooks = [] if models is None else [Limited(models)]
    app, _ = make_app(tmp_path, CONFIG, never, hooks)
    return app


def get(app: Gateway, path: str) -> Any:
    answer = request(app, "GET", path)
    assert answer.status == 200, answer.body
    return answer.json()


def test_model_info_lists_each_deployment_in_litellms_shape(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    data = get(app, "/model/info")["data"]
    assert get(app, "/v1/model/info")["data"] == data
    assert [d["model_name"] for d in data] == ["gpt", "gpt", "claude", "embed", "mistral/*"]
    for item in data:
        assert set(item) == {"model_name", "litellm_params", "model_info"}
        assert "api_key" not in item["litellm_params"] and "sk-up" not in str(item)
        assert "sk-in-a-header" not in str(item) and "sk-m" not in str(item)
        assert item["model_info"]["db_model"] is False and item["model_info"]["id"]
    east, mini, claude, embed, _ = (d["model_info"] for d in data)
    assert east["id"] == "gpt-east"  # model_info.id is the deployment's id, as in LiteLLM
    assert east["input_cost_per_token"] == 1e-6  # model_info wins over the catalogue
    assert east["output_cost_per_token"] == 1e-5 and east["max_input_tokens"] == 128000  # the catalogue's
    assert east["litellm_provider"] == "openai" and east["mode"] == "chat" and east["supports_vision"] is True
    assert {"tools", "temperature", "response_format"} <= set(east["supported_openai_params"])
    assert data[1]["litellm_params"]["api_base"] == "http://up.test" and "hunter2" not in str(data)
    assert claude["cache_creation_input_token_cost"] > 0 and claude["litellm_provider"] == "anthropic"
    assert embed["mode"] == "embedding"
    assert mini["id"] != east["id"]
    one = get(app, f"/model/info?litellm_model_id={mini['id']}")["data"]
    assert [d["model_info"]["id"] for d in one] == [mini["id"]]


def test_model_info_v2_filters_and_pages(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    everything = get(app, "/v2/model/info")
    assert (everything["total_count"], everything["current_page"], everything["size"], everything["total_pages"]) == (
        5, 1, 50, 1,
    )  # fmt: skip
    page = get(app, "/v2/model/info?size=2&page=2")
    assert [d["model_name"] for d in page["data"]] == ["claude", "embed"] and page["total_pages"] == 3
    assert [d["model_name"] for d in get(app, "/v2/model/info?model=gpt")["data"]] == ["gpt", "gpt"]
    assert [d["model_name"] for d in get(app, "/v2/model/info?search=CLA")["data"]] == ["claude"]
    assert [d["model_info"]["id"] for d in get(app, "/v2/model/info?modelId=gpt-east")["data"]] == ["gpt-east"]
    for bad in ("page=0", "size=500", "size=two"):
        answer = request(app, "GET", f"/v2/model/info?{bad}")
        assert answer.status == 400
        assert bad.split("=")[0] in answer.json()["error"]["message"]


def test_model_group_info_has_litellms_fields(tmp_path: Path) -> None:
    app = app_for(tmp_path)
    groups = {g["model_group"]: g for g in get(app, "/model_group/info")["data"]}
    assert list(groups) == ["gpt", "claude", "embed", "mistral/*"]
    for group in groups.values():
        assert set(group) == MODEL_GROUP_FIELDS
    gpt = groups["gpt"]
    assert gpt["providers"] == ["openai"] and gpt["rpm"] == 15 and gpt["mode"] == "chat"
    assert gpt["max_input_tokens"] == 128000 and gpt["supports_function_calling"] is True
    assert gpt["input_cost_per_token"] == 1e-6  # the dearer of its deployments
    assert groups["claude"]["supports_reasoning"] is True and "thinking" in groups["claude"]["supported_openai_params"]
    assert groups["embed"]["mode"] == "embedding"
    assert groups["mistral/*"]["providers"] == ["mistral"]
    assert [g["model_group"] for g in get(app, "/model_group/info?model_group=claude")["data"]] == ["claude"]


def test_a_caller_limited_to_some_models_sees_only_those(tmp_path: Path) -> None:
    app = app_for(tmp_path, frozenset({"claude", "mistral/*"}))
    models = [m["id"] for m in get(app, "/v1/models")["data"]]
    assert models[0] == "claude" and "gpt" not in models and "embed" not in models
    assert "mistral/mistral-small-latest" in models  # the wildcard the key may use, listed concretely
    assert [d["model_name"] for d in get(app, "/model/info")["data"]] == ["claude", "mistral/*"]
    assert [d["model_name"] for d in get(app, "/v2/model/info")["data"]] == ["claude", "mistral/*"]
    assert [g["model_group"] for g in get(app, "/model_group/info")["data"]] == ["claude", "mistral/*"]
    assert request(app, "GET", "/v1/models/claude").status == 200
    refused = request(app, "GET", "/v1/models/gpt")
    assert refused.status == 404 and "not available to this key" in refused.json()["error"]["message"]


@pytest.mark.parametrize("models", [None, frozenset({"all-proxy-models"})])
def test_a_caller_with_every_model_sees_every_model(tmp_path: Path, models: frozenset[str] | None) -> None:
    app = app_for(tmp_path, models)
    assert [d["model_name"] for d in get(app, "/model/info")["data"]][:4] == ["gpt", "gpt", "claude", "embed"]


def test_a_provider_wildcard_lists_the_catalogues_models_of_that_provider(tmp_path: Path) -> None:
    config = {"model_list": [
        {"model_name": "mine-*", "litellm_params": {"model": "anthropic/*", "api_key": "sk-a"}},
        {"model_name": "vllm/*", "litellm_params": {"model": "hosted_vllm/*", "api_base": "http://vllm.test"}},
    ]}  # fmt: skip
    app, _ = make_app(tmp_path, config, never)
    ids = [m["id"] for m in get(app, "/v1/models")["data"]]
    assert "mine-claude-haiku-4-5" in ids and all(i.startswith("mine-claude") for i in ids[:-1])
    assert ids[-1] == "vllm/*"  # the catalogue knows no model of a self-hosted server


def test_no_config_mode_lists_the_models_of_every_provider_with_a_key() -> None:
    env = {"LITELLM_MASTER_KEY": KEY, "OPENAI_API_KEY": "sk-o", "GEMINI_API_KEY": "g", "COHERE_API_KEY": "c"}
    app = Gateway(load_settings(None, env, announce=False), [Auth(KEY, False)], MockTransport(never))
    listed = [m["id"] for m in get(app, "/v1/models")["data"]]
    ids = set(listed)
    assert len(ids) == len(listed)
    assert {"openai/gpt-4o", "openai/text-embedding-3-small", "gemini/gemini-2.5-flash"} <= ids
    assert {"cohere/command-a-03-2025", "openai/gpt-3.5-turbo-instruct"} <= ids
    # each model once, under the first provider that serves it: not again under another prefix
    assert not any(i.startswith(("cohere_chat/", "text-completion-openai/")) for i in ids)
    assert not any(i.startswith(("anthropic/", "mistral/")) for i in ids)  # no key for them
    assert not any(i.endswith("/*") for i in ids)
    assert request(app, "GET", "/v1/models/gemini/gemini-2.5-flash").status == 200
