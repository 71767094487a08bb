"""The OpenAI-compatible family's parameter tables end to end: the openai (and anthropic) SDK → the
real gateway → a loopback upstream replaying each provider's recordings. Asserts the exact request
the provider receives (path, key header, body) and the exact answer the SDK gets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.wire import ReplayUpstream, Reply, load

HELLO = [{"role": "user", "content": "What's 2 + 2?"}]
USAGE = {"include_usage": True}

# provider -> (model, api_base path, upstream chat path, a recorded non-stream chat answer)
PROVIDERS = {
    "mistral": ("mistral-small-latest", "/v1", "/v1/chat/completions", "mistral/chat-nonstream.yaml"),
    "groq": ("llama3-8b-8192", "/openai/v1", "/openai/v1/chat/completions", "groq/chat-nonstream.yaml"),
    "together_ai": ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "/v1", "/v1/chat/completions",
                    "together/chat-nonstream.json"),
    "deepseek": ("deepseek-chat", "/ds/v1", "/ds/v1/chat/completions", "openai/chat-nonstream.httprr.txt"),
    "ollama": ("qwen3", "/ollama", "/ollama/v1/chat/completions", "ollama/openai-compat-chat-tools.yaml"),
    "azure": ("gpt-4o", "/az", "/az/openai/deployments/gpt-4o/chat/completions", "openai/chat-nonstream.httprr.txt"),
}  # fmt: skip


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory, upstream: ReplayUpstream) -> Running:
    entries = []
    for provider, (model, base, _, _) in PROVIDERS.items():
        entries.append(deployment(provider, f"{provider}/{model}", upstream.url + base))
        entries.append(deployment(provider + "-lenient", f"{provider}/{model}", upstream.url + base, drop_params=True))
    entries.append(deployment("llama3-8b-8192", "groq/llama3-8b-8192", upstream.url + "/openai/v1"))
    entries.append(deployment("magistral", "mistral/magistral-medium-latest", upstream.url + "/v1"))
    entries.append(deployment("azure-o3", "azure/o3-mini", upstream.url + "/az", api_version="2024-12-01-preview"))
    entries.append(deployment("azure-old", "azure/gpt-4o", upstream.url + "/az", api_version="2024-06-01"))
    return module_gateway({"model_list": entries, "litellm_settings": {"num_retries": 0}})


def _answer(provider: str) -> Any:
    recording = PROVIDERS[provider][3]
    return next(e for e in load(recording) if e.status == 200 and e.path.endswith("/chat/completions"))


def test_mistral_renames_and_drops(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("mistral/chat-nonstream.yaml")[0]
    upstream.add("/v1/chat/completions", exchange)
    completion = served.openai().chat.completions.create(
        model="mistral", messages=HELLO, seed=7, max_completion_tokens=30, user="end-user-1", temperature=0.2
    )
    received = upstream.requests[-1]
    assert received.path == "/v1/chat/completions" and received.headers["authorization"] == "Bearer sk-up"
    assert received.json() == {
        "model": "mistral-small-latest", "messages": HELLO, "random_seed": 7, "max_tokens": 30, "temperature": 0.2,
    }  # fmt: skip
    expected = exchange.response_json()
    assert completion.model_dump(exclude_unset=True)["choices"] == expected["choices"]
    assert completion.usage is not None and completion.usage.total_tokens == expected["usage"]["total_tokens"]


def test_mistral_stream_usage_chunk_without_stream_options(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("mistral/chat-stream.yaml")[0]
    upstream.add("/v1/chat/completions", exchange)
    chunks = list(
        served.openai().chat.completions.create(model="mistral", messages=HELLO, stream=True, stream_options=USAGE)
    )
    assert upstream.requests[-1].json() == {"model": "mistral-small-latest", "messages": HELLO, "stream": True}
    recorded = [orjson.loads(line[6:]) for line in exchange.response_body.split(b"\n\n") if line[6:7] == b"{"]
    last = chunks[-1].model_dump(exclude_unset=True)
    assert last == {
        "id": recorded[-1]["id"], "object": "chat.completion.chunk", "created": recorded[-1]["created"],
        "model": "mistral-small-latest", "choices": [], "usage": recorded[-1]["usage"],
    }  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == "1, 2, 3"
    assert len(chunks) == len(recorded) + 1


def test_mistral_stream_without_include_usage_passes_through(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("mistral/chat-stream.yaml")[0]
    upstream.add("/v1/chat/completions", exchange)
    with served.http() as http:
        response = http.post(
            "/v1/chat/completions", json={"model": "mistral", "messages": HELLO, "stream": True, "user": "u"}
        )
    assert response.content == exchange.response_body  # bytes as Mistral sent them
    assert upstream.requests[-1].json() == {"model": "mistral-small-latest", "messages": HELLO, "stream": True}


# Magistral's answer shape, from Mistral's reasoning documentation (no recording of it exists yet)
THINKING = [{"type": "text", "text": "2 and 2 make 4."}]
MAGISTRAL = {
    "id": "a1b2", "object": "chat.completion", "created": 1750000000, "model": "magistral-medium-latest",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "tool_calls": None,
                 "content": [{"type": "thinking", "thinking": THINKING}, {"type": "text", "text": "4"}]}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
}  # fmt: skip


def _magistral_stream() -> list[bytes]:
    head = {"id": "a1b2", "object": "chat.completion.chunk", "created": 1750000000, "model": "magistral-medium-latest"}
    deltas = [
        ({"role": "assistant", "content": ""}, None, None),
        ({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "2 and 2"}]}]}, None, None),
        ({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": " make 4."}]}]}, None, None),
        ({"content": "4"}, "stop", MAGISTRAL["usage"]),
    ]
    events = []
    for delta, finish, usage in deltas:
        chunk: dict[str, Any] = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            chunk["usage"] = usage
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


def _json(body: Any) -> Reply:
    return Reply(headers={"content-type": "application/json"}, body=orjson.dumps(body))


def _sse(events: list[bytes]) -> Reply:
    return Reply(headers={"content-type": "text/event-stream"}, chunks=events)


def test_magistral_thinking_chunks_become_reasoning_content(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", _json(MAGISTRAL))
    completion = served.openai().chat.completions.create(model="magistral", messages=HELLO)
    message = completion.choices[0].message.model_dump(exclude_unset=True)
    assert message == {"role": "assistant", "content": "4", "tool_calls": None, "reasoning_content": "2 and 2 make 4."}

    upstream.add("/v1/chat/completions", _sse(_magistral_stream()))
    chunks = list(served.openai().chat.completions.create(model="magistral", messages=HELLO, stream=True))
    deltas = [c.choices[0].delta.model_dump(exclude_unset=True) for c in chunks]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "", "reasoning_content": "2 and 2"},
        {"content": "", "reasoning_content": " make 4."},
        {"content": "4"},
    ]


def test_magistral_through_messages_is_a_thinking_block(served: Running, upstream: ReplayUpstream) -> None:
    upstream.add("/v1/chat/completions", _json(MAGISTRAL))
    message = served.anthropic().messages.create(model="magistral", max_tokens=100, messages=HELLO)
    assert [b.model_dump() for b in message.content] == [
        {"type": "thinking", "thinking": "2 and 2 make 4.", "signature": ""},
        {"type": "text", "text": "4", "citations": None},
    ]
    upstream.add("/v1/chat/completions", _sse(_magistral_stream()))
    with served.anthropic().messages.stream(model="magistral", max_tokens=100, messages=HELLO) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in final.content] == [
        ("thinking", "2 and 2 make 4."),
        ("text", "4"),
    ]
    assert "stream_options" not in upstream.requests[-1].json()


@pytest.mark.parametrize(
    ("provider", "param", "value"),
    [
        ("mistral", "logprobs", True),
        ("groq", "logit_bias", {"50256": -100}),
        ("together_ai", "parallel_tool_calls", False),
        ("deepseek", "seed", 7),
        ("ollama", "tool_choice", "required"),
        ("azure", "reasoning_effort", "low"),
    ],
)
def test_refused_unless_drop_params(
    served: Running, upstream: ReplayUpstream, provider: str, param: str, value: Any
) -> None:
    model, _, path, _ = PROVIDERS[provider]
    body = {"messages": HELLO, param: value}
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        served.openai().chat.completions.create(model=provider, **body)
    assert caught.value.status_code == 400
    assert f"{provider} does not support the parameter '{param}'" in caught.value.message
    assert len(upstream.requests) == before  # nothing was sent

    exchange = _answer(provider)
    for name, extra in ((provider, {"drop_params": True}), (provider + "-lenient", None)):  # request, deployment
        upstream.add(path, exchange)
        completion = served.openai().chat.completions.create(model=name, **body, extra_body=extra)
        received = upstream.requests[-1]
        assert received.path == path
        assert received.json() == {"model": model, "messages": HELLO}
        assert completion.choices[0].message.content == exchange.response_json()["choices"][0]["message"]["content"]


def test_drop_params_global(gateway: GatewayFactory, upstream: ReplayUpstream) -> None:
    model, base, path, _ = PROVIDERS["mistral"]
    config = {
        "model_list": [deployment("mistral", f"mistral/{model}", upstream.url + base)],
        "litellm_settings": {"drop_params": True, "num_retries": 0},
    }
    running = gateway(config)
    upstream.add(path, _answer("mistral"))
    running.openai().chat.completions.create(model="mistral", messages=HELLO, logprobs=True, top_logprobs=2)
    assert upstream.requests[-1].json() == {"model": model, "messages": HELLO}
    # the request's own drop_params: false wins over the global setting
    with pytest.raises(openai.BadRequestError) as caught:
        running.openai().chat.completions.create(
            model="mistral", messages=HELLO, logprobs=True, extra_body={"drop_params": False}
        )
    assert "'logprobs'" in caught.value.message


def test_azure_parameters_follow_version_and_model(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/chat-nonstream.httprr.txt")[0]
    upstream.add("/az/openai/deployments/o3-mini/chat/completions", exchange)
    served.openai().chat.completions.create(model="azure-o3", messages=HELLO, max_tokens=40, reasoning_effort="low")
    received = upstream.requests[-1]
    assert received.query == {"api-version": "2024-12-01-preview"} and received.headers["api-key"] == "sk-up"
    assert received.json() == {
        "model": "o3-mini", "messages": HELLO, "max_completion_tokens": 40, "reasoning_effort": "low"
    }  # fmt: skip

    upstream.add("/az/openai/deployments/gpt-4o/chat/completions", exchange)
    served.openai().chat.completions.create(model="azure-old", messages=HELLO, max_completion_tokens=40)
    assert upstream.requests[-1].query == {"api-version": "2024-06-01"}
    assert upstream.requests[-1].json() == {"model": "gpt-4o", "messages": HELLO, "max_tokens": 40}


def test_pass_through_stays_byte_exact_for_accepted_fields(served: Running, upstream: ReplayUpstream) -> None:
    """A body with only fields the provider takes goes upstream as the client's bytes."""
    upstream.add("/openai/v1/chat/completions", _answer("groq"))
    raw = b'{"model":"llama3-8b-8192","messages":[{"role":"user","content":"Hi"}],"seed":3,  "user":"u"}'
    with served.http() as http:
        response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert upstream.requests[-1].body == raw


def test_anthropic_sdk_gets_refusal_in_its_shape(served: Running) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        served.anthropic().messages.create(
            model="ollama", max_tokens=10, messages=HELLO, tool_choice={"type": "any"},
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
        )  # fmt: skip
    assert "ollama does not support the parameter 'tool_choice'" in caught.value.message
