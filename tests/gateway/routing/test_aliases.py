"""router_settings.model_group_alias: another name of a group, in LiteLLM's two forms; hidden
aliases are served but not listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.gateway.routing.test_router import CHAT, DOWN, OK, by_host

from seance.gateway.config import ConfigError
from seance.gateway.upstream.mock import MockResponse


def _config(aliases: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://a.test", model_info={"id": "gpt-a"}),
            deployment("backup", "openai/gpt-4o-mini", api_base="http://b.test"),
        ],
        "router_settings": {"model_group_alias": aliases, "num_retries": 0, "fallbacks": [{"gpt": ["backup"]}]},
    }


def test_an_alias_routes_to_its_group_and_falls_back_as_it_does(tmp_path: Path) -> None:
    config = _config({"gpt-4": "gpt", "secret": {"model": "gpt", "hidden": True}})
    answers = {"a.test": MockResponse(200, OK), "b.test": MockResponse(200, OK)}
    app, transport = make_app(tmp_path, config, by_host(answers))
    for alias in ("gpt-4", "secret"):
        result = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": alias})
        assert result.status == 200 and result.headers["x-litellm-model-id"] == "gpt-a"
        assert orjson.loads(transport.requests[-1].body or b"")["model"] == "gpt-4o"
    answers["a.test"] = DOWN
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt-4"})
    assert result.status == 200 and transport.requests[-1].url.startswith("http://b.test")


def test_hidden_aliases_are_not_listed(tmp_path: Path) -> None:
    config = _config({"gpt-4": "gpt", "secret": {"model": "gpt", "hidden": True}})
    app, _ = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    listed = [m["id"] for m in request(app, "GET", "/v1/models").json()["data"]]
    assert "gpt-4" in listed and "secret" not in listed and "gpt" in listed
    assert request(app, "GET", "/v1/models/secret").status == 200  # served all the same


@pytest.mark.parametrize(
    ("aliases", "message"),
    [({"gpt-4": "nope"}, "model_group_alias.gpt-4: model 'nope' is not in model_list"),
     ({"backup": "gpt"}, "'backup' is already a model_name"),
     ({"gpt-4": {"model": "gpt", "hiden": True}}, "router_settings.model_group_alias")],
)  # fmt: skip
def test_a_bad_alias_stops_the_start(tmp_path: Path, aliases: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_app(tmp_path, _config(aliases), lambda r: MockResponse(200, OK))
