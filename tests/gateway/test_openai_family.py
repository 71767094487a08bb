"""The OpenAI-compatible providers end to end: the official openai SDK → the real gateway process →
a loopback upstream replaying the real recordings. What the SDK sees must be what the provider said;
what the upstream receives must be what the client sent, with only the model name swapped."""

from __future__ import annotations

import base64
import inspect
import struct
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.wire import Exchange, ReplayUpstream, Reply, load

# recording -> (provider prefix, api_base path on the replay server)
CHAT = {
    "openai/chat-nonstream.httprr.txt": ("openai", "/v1"),
    "openai/chat-nonstream-parallel-tools.yaml": ("openai", "/v1"),
    "openai/chat-stream-include-usage.httprr.txt": ("openai", "/v1"),
    "openai/chat-stream-tools-include-usage.yaml": ("openai", "/v1"),
    "together/chat-nonstream.json": ("together_ai", "/v1"),
    "together/chat-stream.json": ("together_ai", "/v1"),
    "groq/chat-nonstream.yaml": ("groq", "/openai/v1"),
    "groq/chat-stream.yaml": ("groq", "/openai/v1"),
    "mistral/chat-nonstream.yaml": ("mistral", "/v1"),
    "mistral/chat-nonstream-tools.yaml": ("mistral", "/v1"),
    "mistral/chat-stream.yaml": ("mistral", "/v1"),
    "mistral/chat-stream-tools.yaml": ("mistral", "/v1"),
    "huggingface/router-chat-nonstream-hyperbolic.httprr.txt": ("huggingface", "/hyperbolic/v1"),
    "ollama/openai-compat-chat-tools.yaml": ("ollama", ""),  # the adapter adds /v1
    "ollama/openai-compat-chat-stream-include-usage.yaml": ("ollama", ""),
    "cohere/compat-chat-stream.yaml": ("openai", "/compatibility/v1"),  # any OpenAI-shaped upstream
}


def cases() -> Iterator[Any]:
    for recording, (provider, base) in CHAT.items():
        for index, exchange in enumerate(load(recording)):
            if exchange.status == 200 and exchange.path.endswith("/chat/completions"):
                yield pytest.param(recording, index, provider, base, id=f"{recording}#{index}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory, upstream: ReplayUpstream) -> Running:
    """One gateway with a deployment per (provider, recorded model)."""
    entries = []
    for recording, (provider, base) in CHAT.items():
        for exchange in load(recording):
            model = exchange.request_json()["model"]
            name = _name(provider, model)
            if not any(e["model_name"] == name for e in entries):
                entries.append(deployment(name, f"{provider}/{model}", upstream.url + base))
    entries.append(deployment("embed-small", "openai/text-embedding-3-small", upstream.url + "/v1"))
    entries.append(deployment("embed-missing", "openai/nonexistent", upstream.url + "/v1"))
    entries.append(deployment("mistral-embed", "mistral/mistral-embed", upstream.url + "/v1"))
    entries.append(deployment("mixtral", "together_ai/mistralai/Mixtral-8x7B-v0.1", upstream.url + "/v1"))
    groq_model = load("groq/chat-stream-tools-tool-use-failed.yaml")[0].request_json()["model"]
    entries.append(deployment("groq-tools", f"groq/{groq_model}", upstream.url + "/openai/v1"))
    # --no-db: the pass-through as it is without hooks; the spend log would ask streams for usage
    return module_gateway({"model_list": entries, "litellm_settings": {"num_retries": 0}}, args=("--no-db",))


def _name(provider: str, model: str) -> str:
    return f"{provider}--{model}"


def _upstream_path(exchange: Exchange, provider: str, base: str) -> str:
    return (base or "/v1") + "/chat/completions"


@pytest.mark.parametrize(("recording", "index", "provider", "base"), list(cases()))
def test_chat_recording_round_trip(
    served: Running, upstream: ReplayUpstream, recording: str, index: int, provider: str, base: str
) -> None:
    exchange = load(recording)[index]
    request = exchange.request_json()
    upstream.add(_upstream_path(exchange, provider, base), exchange)
    client = served.openai()
    sent = {**request, "model": _name(provider, request["model"])}
    before = len(upstream.requests)
    if request.get("stream"):
        chunks = [c.model_dump(exclude_unset=True) for c in _create(client, sent)]
        assert assemble(chunks) == assemble(recorded_chunks(exchange.response_body))
    else:
        completion = _create(client, sent)
        expected = exchange.response_json()
        got = completion.model_dump(exclude_unset=True)
        assert got["id"] == expected["id"]
        assert got["choices"] == expected["choices"]
        assert got.get("usage") == expected.get("usage")
    received = upstream.requests[before]
    assert received.json() == request  # only the model name changed, and back again
    assert received.headers["authorization"] == "Bearer sk-up"


def _create(client: openai.OpenAI, body: dict[str, Any]) -> Any:
    """chat.completions.create with the recorded body; fields the SDK has no argument for go in
    extra_body, as a user of an unusual provider parameter would send them."""
    accepted = inspect.signature(client.chat.completions.create).parameters
    known = {k: v for k, v in body.items() if k in accepted}
    extra = {k: v for k, v in body.items() if k not in accepted}
    return client.chat.completions.create(**known, extra_body=extra or None)


def recorded_chunks(body: bytes) -> list[dict[str, Any]]:
    chunks = []
    for line in body.splitlines():
        if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
            chunks.append(orjson.loads(line[5:]))
    return chunks


def assemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client makes of a stream: text, reasoning, tool calls by index, finish reason, usage."""
    text, finish, usage = "", None, None
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.get("id") or ""
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"text": text, "calls": calls, "finish": finish, "usage": usage}


def test_stream_is_assembled_from_many_chunks(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/chat-stream-include-usage.httprr.txt")[0]
    upstream.add("/v1/chat/completions", exchange)
    request = exchange.request_json()
    stream = served.openai().chat.completions.create(**{**request, "model": _name("openai", request["model"])})
    chunks = list(stream)
    assert len(chunks) == len(recorded_chunks(exchange.response_body)) > 5
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_embeddings_float(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/embeddings-float-dimensions.httprr.txt")[0]
    upstream.add("/v1/embeddings", exchange)
    result = served.openai().embeddings.create(
        model="embed-small", input=["Hello world"], dimensions=256, encoding_format="float"
    )
    expected = exchange.response_json()
    assert result.data[0].embedding == expected["data"][0]["embedding"]
    assert len(result.data[0].embedding) == 256
    assert result.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert upstream.requests[-1].json()["model"] == "text-embedding-3-small"


def test_embeddings_base64_the_sdk_default(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/embeddings-base64.yaml")[0]
    upstream.add("/v1/embeddings", exchange)
    result = served.openai().embeddings.create(model="embed-small", input=["Hello, world!"], dimensions=128)
    assert upstream.requests[-1].json()["encoding_format"] == "base64"
    packed = base64.b64decode(exchange.response_json()["data"][0]["embedding"])
    assert result.data[0].embedding == list(struct.unpack(f"<{len(packed) // 4}f", packed))


def test_mistral_embeddings(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("mistral/embeddings.yaml")[0]
    upstream.add("/v1/embeddings", exchange)
    result = served.openai().embeddings.create(
        model="mistral-embed", input="Ruby is a programmer's best friend", encoding_format="float"
    )
    assert result.data[0].embedding == exchange.response_json()["data"][0]["embedding"]


def test_text_completions(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("together/completions-nonstream.json")[0]
    upstream.add("/v1/completions", exchange)
    result = served.openai().completions.create(
        model="mixtral", prompt="Paris is", temperature=0, max_tokens=10, extra_body={"inputs": "Paris is"}
    )
    expected = exchange.response_json()
    assert result.choices[0].text == expected["choices"][0]["text"]
    assert upstream.requests[-1].json() == exchange.request_json()


def test_upstream_error_reaches_client_with_its_status(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/error-404-model-not-found.yaml")[0]
    upstream.add("/v1/embeddings", exchange)
    with pytest.raises(openai.NotFoundError) as caught:
        served.openai().embeddings.create(model="embed-missing", input=["Hello, world!"])
    assert "does not exist" in caught.value.message


def test_upstream_400_passes_through(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("groq/chat-nonstream-tools-tool-use-failed.yaml")[0]
    upstream.add("/openai/v1/chat/completions", exchange)
    request = exchange.request_json()
    with pytest.raises(openai.BadRequestError) as caught:
        _create(served.openai(), {**request, "model": "groq-tools"})
    assert "groq" in caught.value.message
    assert caught.value.status_code == 400


def test_mid_stream_error_event_raises_in_the_sdk(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("groq/chat-stream-tools-tool-use-failed.yaml")[0]
    upstream.add("/openai/v1/chat/completions", exchange)
    request = exchange.request_json()
    with pytest.raises(openai.APIError) as caught:
        for _ in _create(served.openai(), {**request, "model": "groq-tools"}):
            pass
    assert "tool" in str(caught.value).lower()


def test_stream_cut_mid_way_ends_with_an_error_event(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("groq/chat-stream.yaml")[0]
    chunks = recorded_chunks(exchange.response_body)
    events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
    # sent back to back: what arrived before the cut must still reach the client
    cut = Reply(headers={"content-type": "text/event-stream"}, chunks=events, cut_after=3)
    upstream.add("/openai/v1/chat/completions", cut)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in served.openai().chat.completions.create(
            model=_name("groq", "llama3-8b-8192"), messages=[{"role": "user", "content": "Hello!"}], stream=True
        ):
            received.append(chunk)
    assert len(received) == 3
    assert "closed the connection before the answer was complete" in str(caught.value)
