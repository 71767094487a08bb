"""The response cache end to end: the real gateway (one worker, then two sharing the real Redis)
with the official openai SDK, the provider a loopback server replaying a recorded stream."""

from __future__ import annotations

import dataclasses
from typing import Any

import openai
import orjson
import pytest
import redis
from tests.gateway.cached_gateway import REDIS_URL, space, start, upstream, wait_stored
from tests.gateway.conftest import GatewayFactory, deployment
from tests.wire import Exchange, ReplayUpstream, load

__all__ = ["space", "upstream"]  # (fixtures)

STREAM = load("openai/chat-stream-include-usage.httprr.txt")[0]
MESSAGES: Any = [{"role": "user", "content": "Count from 1 to 5"}]


def streamed(client: openai.OpenAI, usage: bool) -> tuple[str, Any, str]:
    """(content, usage, cache key) of a streamed answer."""
    options: Any = {"include_usage": True} if usage else openai.NOT_GIVEN
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", messages=MESSAGES, stream=True, stream_options=options
    )
    text, seen = [], None
    for chunk in raw.parse():
        if chunk.usage is not None:
            seen = chunk.usage
        text += [choice.delta.content or "" for choice in chunk.choices]
    return "".join(text), seen, raw.headers["x-litellm-cache-key"]


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_a_stream_is_stored_and_replayed_with_the_same_content_and_usage(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str, kind: str
) -> None:
    served = start(gateway, upstream, space, kind)
    upstream.add("/v1/chat/completions", STREAM)  # one provider answer only
    client = served.openai()
    text, usage, key = streamed(client, usage=True)
    if kind == "redis":
        wait_stored(space, key)
    assert text and usage is not None and len(key) == 64
    again, again_usage, again_key = streamed(client, usage=True)
    assert (again, again_key) == (text, key)
    assert again_usage is not None
    assert (again_usage.prompt_tokens, again_usage.completion_tokens, again_usage.total_tokens) == (
        usage.prompt_tokens, usage.completion_tokens, usage.total_tokens,
    )  # fmt: skip
    quiet, no_usage, _ = streamed(client, usage=False)
    assert quiet == text and no_usage is None  # no usage chunk unless asked for
    plain = client.chat.completions.create(model="gpt", messages=MESSAGES)
    assert plain.choices[0].message.content == text and plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None and plain.usage.completion_tokens == usage.completion_tokens
    assert len(upstream.requests) == 1


def test_two_workers_share_the_redis_cache(gateway: GatewayFactory, upstream: ReplayUpstream, space: str) -> None:
    served = start(gateway, upstream, space, "redis", "--workers", "2")
    chat = load("openai/chat-nonstream.httprr.txt")[0]
    upstream.add("/v1/chat/completions", chat)
    with served.http() as http:
        body = {"model": "gpt", "messages": MESSAGES}
        first = http.post("/v1/chat/completions", json=body)
        assert first.status_code == 200
        wait_stored(space, first.headers["x-litellm-cache-key"])
        for _ in range(8):  # new connections: the kernel spreads them over both workers
            with served.http() as fresh:
                answer = fresh.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200 and answer.content == first.content
    assert len(upstream.requests) == 1


def test_the_workers_copies_of_a_redis_entry_end_with_its_deletion(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str
) -> None:
    """Each worker answers a repeated request from its copy of the Redis entry (cache_near.py); a
    /cache/delete or /cache/flushall through either worker ends every copy: the next request, on
    whichever worker, goes to the provider, and every worker then serves the new answer."""
    served = start(gateway, upstream, space, "redis", "--workers", "2")
    chat = load("openai/chat-nonstream.httprr.txt")[0]
    body = {"model": "gpt", "messages": MESSAGES}
    direct = redis.Redis.from_url(REDIS_URL)

    def answer(text: str) -> Exchange:
        reply = chat.response_json()
        reply["choices"][0]["message"]["content"] = text
        return dataclasses.replace(chat, response_body=orjson.dumps(reply))

    def repeated(text: str) -> None:
        for _ in range(16):  # new connections: the kernel spreads them over both workers
            with served.http() as fresh:
                got = fresh.post("/v1/chat/completions", json=body)
                assert got.status_code == 200 and got.json()["choices"][0]["message"]["content"] == text

    try:
        with served.http() as http:
            upstream.add("/v1/chat/completions", answer("first"))
            key = http.post("/v1/chat/completions", json=body).headers["x-litellm-cache-key"]
            wait_stored(space, key)
            repeated("first")
            assert int(direct.info("stats")["tracking_total_keys"]) >= 1  # a worker keeps a copy
            for path, payload in (("/cache/delete", {"keys": [key]}), ("/cache/flushall", None)):
                upstream.add("/v1/chat/completions", answer(f"after {path}"))
                asked = len(upstream.requests)
                assert http.post(path, json=payload).status_code == 200
                assert http.post("/v1/chat/completions", json=body).status_code == 200
                assert len(upstream.requests) == asked + 1  # gone: asked again, and stored again
                wait_stored(space, key)
                repeated(f"after {path}")  # no worker serves its old copy
                assert len(upstream.requests) == asked + 1
    finally:
        direct.close()


@pytest.mark.parametrize("kind", ["local", "redis"])
def test_an_anthropic_stream_is_stored_and_replayed_to_the_anthropic_sdk(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str, kind: str
) -> None:
    config: dict[str, Any] = {
        "model_list": [deployment("claude", "anthropic/claude-haiku-4-5-20251001", upstream.url)],
        "litellm_settings": {"cache": True, "cache_params": {"type": kind, "namespace": space}},
    }
    served = gateway(config, {"REDIS_URL": REDIS_URL} if kind == "redis" else {})
    upstream.add("/v1/messages", load("anthropic/messages-stream-thinking.yaml")[0])  # one provider answer
    client = served.anthropic()
    asked: Any = {"model": "claude", "max_tokens": 2000, "messages": [{"role": "user", "content": "Is 1001 prime?"}]}

    def streamed() -> tuple[Any, str, str]:
        with client.messages.stream(**asked) as stream:
            text = "".join(stream.text_stream)
            return stream.get_final_message(), text, stream.response.headers["x-litellm-cache-key"]

    first, text, key = streamed()
    if kind == "redis":
        wait_stored(space, key)
    again, again_text, _ = streamed()
    assert (again_text, again.content, again.stop_reason) == (text, first.content, first.stop_reason) and text
    assert again.usage.output_tokens == first.usage.output_tokens > 0
    assert [block.type for block in again.content] == ["thinking", "text"] and again.content[0].signature
    assert len(upstream.requests) == 1
