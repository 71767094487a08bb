"""general_settings.enforce_user_param and enforced_params: an LLM request without a required field
gets a 400 naming it, before any provider sees it; with them it goes through, its gateway fields
still kept from the provider. In-process over a MockTransport, then the real server and the
official SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from tests.gateway.asgi_client import KEY, deployment, make_app, request
from tests.gateway.conftest import GatewayFactory
from tests.wire import ReplayUpstream, load

from seance.gateway.config import ConfigError, load_settings
from seance.gateway.pipeline import hooks
from seance.gateway.pipeline.required_params import RequiredParams
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)
EMBEDDING = b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"e","usage":{"prompt_tokens":1,"total_tokens":1}}'  # noqa: E501
GENERAL = {"enforce_user_param": True, "enforced_params": ["metadata.generation_name", "user"]}
CONFIG = {
    "model_list": [deployment("gpt", "openai/gpt-4o"), deployment("emb", "openai/text-embedding-3-small")],
    "general_settings": GENERAL,
}
HI = [{"role": "user", "content": "hi"}]


def answer(upstream: UpstreamRequest) -> MockResponse:
    return MockResponse(body=EMBEDDING if upstream.url.endswith("/embeddings") else ANSWER)


def app(tmp_path: Path, config: dict[str, Any] = CONFIG):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps(config))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY}, announce=False)
    built = hooks.build(hooks.Features(KEY, settings=settings))
    required = [hook for hook in built if isinstance(hook, RequiredParams)]
    return make_app(tmp_path, config, answer, hooks=required)


def post(gateway: Any, path: str, body: dict[str, Any]) -> Any:
    return request(gateway, "POST", path, body, {"authorization": f"Bearer {KEY}"})


@pytest.mark.parametrize(
    ("body", "field", "setting"),
    [
        ({"model": "gpt", "messages": HI}, "user", "enforce_user_param"),
        ({"model": "gpt", "messages": HI, "user": "u1"}, "metadata.generation_name", "enforced_params"),
        ({"model": "gpt", "messages": HI, "user": "u1", "metadata": {"other": 1}}, "metadata.generation_name",
         "enforced_params"),
        ({"model": "gpt", "messages": HI, "user": "u1", "metadata": "generation_name"}, "metadata.generation_name",
         "enforced_params"),
    ],
)  # fmt: skip
def test_a_request_without_a_required_field_is_refused(tmp_path: Path, body: dict[str, Any], field: str,
                                                       setting: str) -> None:  # fmt: skip
    gateway, transport = app(tmp_path)
    got = post(gateway, "/v1/chat/completions", body)
    assert got.status == 400, got.body
    error = got.json()["error"]
    assert error["param"] == field and error["type"] == "invalid_request_error"
    assert error["message"] == (
        f"{field} is required by this gateway (general_settings.{setting}): add it to the request"
    )
    assert transport.requests == [], "no provider saw it"


def test_with_every_required_field_it_goes_through(tmp_path: Path) -> None:
    gateway, transport = app(tmp_path)
    body = {"model": "gpt", "messages": HI, "user": "u1", "metadata": {"generation_name": "nightly"}}
    got = post(gateway, "/v1/chat/completions", body)
    assert got.status == 200, got.body
    (sent,) = transport.requests
    assert sent.body is not None
    forwarded = orjson.loads(sent.body)
    assert forwarded["user"] == "u1" and "metadata" not in forwarded  # a gateway field stays here

    refused = post(gateway, "/v1/embeddings", {"model": "emb", "input": "x", "user": "u1"})
    assert refused.status == 400 and refused.json()["error"]["param"] == "metadata.generation_name"
    embedded = post(gateway, "/v1/embeddings", {"model": "emb", "input": "x", "user": "u1",
                                                 "metadata": {"generation_name": "g"}})  # fmt: skip
    assert embedded.status == 200, embedded.body
    listed = request(gateway, "GET", "/v1/models", None, {"authorization": f"Bearer {KEY}"})
    assert listed.status == 200  # routes without a body are not held to it


def test_off_the_hook_is_not_in_the_list(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({"model_list": CONFIG["model_list"]}))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY}, announce=False)
    assert not any(isinstance(h, RequiredParams) for h in hooks.build(hooks.Features(KEY, settings=settings)))


@pytest.mark.parametrize("name", ["a.b.c", "metadata.", "", " user"])
def test_a_field_path_that_is_not_one(tmp_path: Path, name: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(
        orjson.dumps({"model_list": CONFIG["model_list"], "general_settings": {"enforced_params": [name]}})
    )
    with pytest.raises(ConfigError, match=r"general_settings\.enforced_params"):
        load_settings(path, {"LITELLM_MASTER_KEY": KEY}, announce=False)


def test_the_official_sdk_against_the_real_server(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        upstream.add("/v1/chat/completions", load("openai/chat-nonstream.httprr.txt")[0])
        entry = {"model": "openai/gpt-3.5-turbo", "api_base": upstream.url + "/v1", "api_key": "sk-up"}
        served = gateway({"model_list": [{"model_name": "gpt", "litellm_params": entry}], "general_settings": GENERAL})
        with served.openai() as client:
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="gpt", messages=HI)  # type: ignore[arg-type]
            assert refused.value.status_code == 400
            assert "user is required by this gateway (general_settings.enforce_user_param)" in str(refused.value)
            reply = client.chat.completions.create(
                model="gpt", messages=HI, user="u1",  # type: ignore[arg-type]
                extra_body={"metadata": {"generation_name": "nightly"}},
            )  # fmt: skip
            assert reply.choices[0].message.content
