"""The translating providers and the Anthropic front door end to end: the official openai and
anthropic SDKs → the real gateway process → a loopback upstream replaying the real recordings of
Anthropic, Cohere, Gemini, Replicate, TGI and Ollama. What the SDKs see must be what the
provider said; what the upstream receives must be what the recording shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.wire import Exchange, ReplayUpstream, Reply, load

BERLIN = "What's the weather in Berlin? (52.5200, 13.4050)"
WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "latitude": {"type": "string", "description": "Latitude (e.g., 52.5200)"},
        "longitude": {"type": "string", "description": "Longitude (e.g., 13.4050)"},
    },
    "required": ["latitude", "longitude"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "description": "Gets current weather for a location", "parameters": WEATHER_PARAMS},
}
USAGE = {"include_usage": True}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory, upstream: ReplayUpstream) -> Running:
    url = upstream.url
    entries = [
        deployment("claude", "anthropic/claude-haiku-4-5-20251001", url),
        deployment("claude-sonnet", "anthropic/claude-sonnet-4-5", url),
        deployment("command-a", "cohere/command-a-03-2025", url),
        deployment("command-a-plus", "cohere/command-a-plus-05-2026", url),
        deployment("embed-v4", "cohere/embed-v4.0", url),
        deployment("gemini-flash", "gemini/gemini-2.5-flash", url),
        deployment("gemini-3", "gemini/gemini-3-flash-preview", url),
        deployment("gemini-embed", "gemini/gemini-embedding-001", url),
        deployment("llama-replicate", "replicate/meta/meta-llama-3-8b-instruct", url),
        deployment("tgi", "huggingface/meta-llama/Llama-3.1-8B-Instruct", url + "/tgi"),
        deployment("tgi-legacy", "huggingface/tgi", url + "/legacy"),
        deployment("gemma", "ollama_chat/gemma3:1b", url),
        deployment("nomic", "ollama_chat/nomic-embed-text", url),
        deployment("gpt", "openai/gpt-3.5-turbo", url + "/v1"),
        deployment("gpt-mini", "openai/gpt-4o-mini", url + "/v1"),
        deployment("groq-tools", "groq/" + load("groq/chat-stream.yaml")[0].request_json()["model"], url + "/g"),
        deployment("claude-strict", "anthropic/claude-haiku-4-5-20251001", url, drop_params=False),
        deployment("claude-lenient", "anthropic/claude-haiku-4-5-20251001", url, drop_params=True),
    ]
    return module_gateway({"model_list": entries, "litellm_settings": {"num_retries": 0}})


def chat(served: Running, **body: Any) -> Any:
    extra = {k: body.pop(k) for k in ("thinking", "documents") if k in body}
    return served.openai().chat.completions.create(**body, extra_body=extra or None)


def collect(stream: Any) -> dict[str, Any]:
    """A stream as the SDK user reassembles it."""
    text, reasoning, finish, usage = "", "", None, None
    calls: dict[int, dict[str, str]] = {}
    for chunk in stream:
        data = chunk.model_dump()
        usage = data.get("usage") or usage
        for choice in data["choices"]:
            delta = choice["delta"]
            text += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.get("id") or ""
                slot["name"] += (call.get("function") or {}).get("name") or ""
                slot["arguments"] += (call.get("function") or {}).get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"text": text, "reasoning": reasoning, "calls": list(calls.values()), "finish": finish, "usage": usage}


def last(upstream: ReplayUpstream) -> Any:
    return upstream.requests[-1]


# --- the openai SDK through translating adapters ---------------------------------------------


def test_anthropic_tool_round_trip(served: Running, upstream: ReplayUpstream) -> None:
    first, second = load("anthropic/messages-nonstream-tools.yaml")
    tool = {**WEATHER, "function": {**WEATHER["function"], "parameters": {**WEATHER_PARAMS, "strict": True}}}
    upstream.add("/v1/messages", first)
    messages: list[Any] = [{"role": "user", "content": BERLIN}]
    answer = chat(served, model="claude", messages=messages, tools=[tool], max_tokens=64000)
    assert last(upstream).json() == {k: v for k, v in first.request_json().items() if k != "stream"}
    assert last(upstream).headers["x-api-key"] == "sk-up"
    (call,) = answer.choices[0].message.tool_calls
    assert (call.id, call.function.name) == ("toolu_01Ay5KzhmQYMK53svGLaAxfc", "weather")
    assert orjson.loads(call.function.arguments) == {"latitude": "52.5200", "longitude": "13.4050"}
    assert answer.choices[0].finish_reason == "tool_calls"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (633, 75)
    upstream.add("/v1/messages", second)
    messages += [
        answer.choices[0].message.model_dump(exclude_none=True),
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": "Current weather at 52.5200, 13.4050: 15°C, Wind: 10 km/h",
        },
    ]
    answer = chat(served, model="claude", messages=messages, tools=[tool], max_tokens=64000)
    assert last(upstream).json() == {k: v for k, v in second.request_json().items() if k != "stream"}
    assert answer.choices[0].message.content.startswith("The weather in Berlin is currently:")


def test_anthropic_stream_tool_deltas_and_usage(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-stream-tools.yaml")[0]
    upstream.add("/v1/messages", exchange)
    result = collect(
        chat(
            served,
            model="claude",
            messages=[{"role": "user", "content": BERLIN}],
            tools=[WEATHER],
            max_tokens=64000,
            stream=True,
            stream_options=USAGE,
        )
    )
    (call,) = result["calls"]
    assert call["id"] == "toolu_01MKSN7NHsBVKr7Jvw5pqCQq" and call["name"] == "weather"
    assert orjson.loads(call["arguments"]) == {"latitude": "52.5200", "longitude": "13.4050"}
    assert result["finish"] == "tool_calls"
    assert (result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]) == (633, 75)


def test_anthropic_thinking_stream(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-stream-thinking.yaml")[0]
    upstream.add("/v1/messages", exchange)
    result = collect(
        chat(
            served,
            model="claude-sonnet",
            messages=[{"role": "user", "content": "Two names"}],
            max_tokens=8192,
            stream=True,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )
    )
    assert result["text"] == "- Captain\n- Scoop" and result["reasoning"].startswith("The user wants two names")
    assert last(upstream).json()["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_anthropic_errors(served: Running, upstream: ReplayUpstream) -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    upstream.add("/v1/messages", Reply(529, {"content-type": "application/json"}, overloaded))
    with pytest.raises(openai.InternalServerError) as caught:
        chat(served, model="claude", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 503 and "Overloaded" in caught.value.message
    limited = b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens exceeded"}}'
    upstream.add("/v1/messages", Reply(429, {"content-type": "application/json", "retry-after": "13"}, limited))
    with pytest.raises(openai.RateLimitError) as rate:
        chat(served, model="claude", messages=[{"role": "user", "content": "hi"}])
    assert rate.value.response.headers["retry-after"] == "13" and "request tokens exceeded" in rate.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        chat(served, model="claude-strict", messages=[{"role": "user", "content": "hi"}], logit_bias={"1": 1})
    assert "logit_bias" in bad.value.message and "anthropic" in bad.value.message


def test_drop_params_per_deployment(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("anthropic/messages-nonstream.yaml")
    upstream.add("/v1/messages", exchange)
    answer = chat(served, model="claude-lenient", messages=[{"role": "user", "content": "What's 2 + 2?"}],
                  max_tokens=64000, logit_bias={"1": 1}, seed=3)  # fmt: skip
    assert answer.choices[0].message.content == "2 + 2 = 4"
    assert last(upstream).json() == {k: v for k, v in exchange.request_json().items() if k != "stream"}


def test_anthropics_rate_limit_headers_come_under_openais_names(served: Running, upstream: ReplayUpstream) -> None:
    """Anthropic's anthropic-ratelimit-* counts, as the OpenAI SDK's user reads them (LiteLLM's
    names); its resets are times, made OpenAI's durations from now (the recording's are past)."""
    (exchange,) = load("anthropic/messages-nonstream.yaml")
    upstream.add("/v1/messages", exchange)
    raw = served.openai().chat.completions.with_raw_response.create(
        model="claude", messages=[{"role": "user", "content": "What's 2 + 2?"}], max_tokens=64000
    )
    recorded = exchange.response_headers
    assert raw.headers["x-ratelimit-limit-requests"] == recorded["anthropic-ratelimit-requests-limit"]
    assert raw.headers["x-ratelimit-remaining-requests"] == recorded["anthropic-ratelimit-requests-remaining"]
    assert raw.headers["x-ratelimit-limit-tokens"] == recorded["anthropic-ratelimit-tokens-limit"]
    assert raw.headers["x-ratelimit-remaining-tokens"] == recorded["anthropic-ratelimit-tokens-remaining"]
    assert raw.headers["x-ratelimit-reset-requests"] == raw.headers["x-ratelimit-reset-tokens"] == "0s"
    assert not any(name.startswith("anthropic-ratelimit") for name in raw.headers)
    upstream.add("/v1/messages", exchange)  # the same through /v1/messages, with Anthropic's SDK
    native = served.anthropic().messages.with_raw_response.create(
        model="claude", max_tokens=64000, messages=[{"role": "user", "content": "What's 2 + 2?"}], timeout=30
    )
    assert native.headers["x-ratelimit-remaining-requests"] == recorded["anthropic-ratelimit-requests-remaining"]


def test_tgi_legacy_404_text_body(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("huggingface/legacy-inference-api-404.httprr.txt")
    upstream.add("/tgi/v1/chat/completions", exchange)
    with pytest.raises(openai.NotFoundError) as caught:
        chat(served, model="tgi", messages=[{"role": "user", "content": "Hello, my name is"}])
    assert "Not Found" in caught.value.message and "huggingface" in caught.value.message


def test_anthropic_mid_stream_error_is_an_error_event(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-stream-text.yaml")[0]
    head = exchange.response_body.split(b"event: content_block_stop")[0]
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    upstream.add("/v1/messages", Reply(headers={"content-type": "text/event-stream"}, chunks=[head, error]))
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in chat(served, model="claude", messages=[{"role": "user", "content": "hi"}], stream=True):
            seen.append(chunk)
    assert "Overloaded" in str(caught.value) and any(c.choices and c.choices[0].delta.content for c in seen)


def test_cohere_stream_and_citations(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("cohere/chat-v2-stream-citations.yaml")[0]
    upstream.add("/v2/chat", exchange)
    documents = exchange.request_json()["documents"]
    result = collect(
        chat(
            served,
            model="command-a-plus",
            stream=True,
            stream_options=USAGE,
            documents=documents,
            messages=[{"role": "user", "content": "Who created Ruby? Use the document."}],
        )
    )
    assert last(upstream).json() == exchange.request_json()
    assert "Yukihiro Matsumoto" in result["text"] and result["reasoning"].startswith("The document clearly")
    assert result["usage"]["completion_tokens"] == 86 and result["finish"] == "stop"


def test_cohere_tools_nonstream(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("cohere/chat-v2-nonstream-tools.yaml")[0]
    upstream.add("/v2/chat", exchange)
    answer = chat(served, model="command-a", messages=[{"role": "user", "content": BERLIN}], tools=[WEATHER])
    assert last(upstream).json() == exchange.request_json()
    (call,) = answer.choices[0].message.tool_calls
    assert call.id == "weather_cgvndtjtzzkh" and answer.choices[0].finish_reason == "tool_calls"


def test_cohere_embed_base64_default(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("cohere/embed-v2.yaml")[0]
    upstream.add("/v2/embed", exchange)
    result = served.openai().embeddings.create(
        model="embed-v4", input="Ruby is a programmer's best friend", dimensions=1024
    )
    assert last(upstream).json() == exchange.request_json()
    expected = exchange.response_json()["embeddings"]["float"][0]
    assert result.data[0].embedding == pytest.approx(expected, rel=1e-6)
    assert result.usage.prompt_tokens == 7


def test_gemini_stream_tools(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("gemini/stream-generate-content-sse-tools.yaml")[0]
    upstream.add("/v1beta/models/gemini-2.5-flash:streamGenerateContent", exchange)
    result = collect(
        chat(
            served,
            model="gemini-flash",
            messages=[{"role": "user", "content": BERLIN}],
            tools=[WEATHER],
            stream=True,
            stream_options=USAGE,
        )
    )
    received = last(upstream)
    assert received.query == {"alt": "sse"} and received.headers["x-goog-api-key"] == "sk-up"
    (call,) = result["calls"]
    assert call["name"] == "weather" and orjson.loads(call["arguments"]) == {
        "latitude": "52.5200",
        "longitude": "13.4050",
    }
    assert result["finish"] == "tool_calls" and result["usage"]["total_tokens"] == 176


def test_gemini_nonstream_and_embeddings(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("gemini/generate-content.yaml")
    upstream.add("/v1beta/models/gemini-2.5-flash:generateContent", exchange)
    answer = chat(served, model="gemini-flash", messages=[{"role": "user", "content": "What's 2 + 2?"}])
    assert answer.choices[0].message.content == "2 + 2 = **4**" and answer.usage.total_tokens == 41
    (embed,) = load("gemini/batch-embed-contents.yaml")
    upstream.add("/v1beta/models/gemini-embedding-001:batchEmbedContents", embed)
    result = served.openai().embeddings.create(
        model="gemini-embed", input=["Ruby is a programmer's best friend"], dimensions=768
    )
    assert last(upstream).json() == embed.request_json()
    assert result.data[0].embedding == pytest.approx(embed.response_json()["embeddings"][0]["values"], rel=1e-6)


def test_gemini_upstream_error_body(served: Running, upstream: ReplayUpstream) -> None:
    error = {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}
    body = orjson.dumps({"error": error})
    upstream.add(
        "/v1beta/models/gemini-2.5-flash:generateContent", Reply(400, {"content-type": "application/json"}, body)
    )
    with pytest.raises(openai.BadRequestError) as caught:
        chat(served, model="gemini-flash", messages=[{"role": "user", "content": "hi"}])
    assert "API key not valid" in caught.value.message


def test_ollama_native_stream_and_embed(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("ollama/native-chat-stream.httprr.txt")
    upstream.add("/api/chat", exchange)
    result = collect(
        chat(
            served,
            model="gemma",
            messages=[{"role": "user", "content": "Count from 1 to 5"}],
            max_tokens=50,
            temperature=0,
            stream=True,
            stream_options=USAGE,
        )
    )
    lines = [orjson.loads(line) for line in exchange.response_body.splitlines()]
    assert result["text"] == "".join(line["message"]["content"] for line in lines)
    assert result["usage"]["completion_tokens"] == lines[-1]["eval_count"]
    assert last(upstream).json()["options"] == {"num_predict": 50, "temperature": 0}
    (embed,) = load("ollama/native-embed.httprr.txt")
    upstream.add("/api/embed", embed)
    vectors = served.openai().embeddings.create(model="nomic", input="Hello world")
    assert vectors.data[0].embedding == pytest.approx(embed.response_json()["embeddings"][0], rel=1e-6)


def test_tgi_quirks_repaired(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("huggingface/tgi-chat-stream.yaml")[1]
    upstream.add("/tgi/v1/chat/completions", exchange)
    chunks = list(chat(served, model="tgi", messages=exchange.request_json()["messages"], max_tokens=20, stream=True))
    assert len({c.id for c in chunks}) == 1 and chunks[0].id
    legacy = load("huggingface/tgi-chat-tools-legacy.yaml")[0]
    upstream.add("/legacy/v1/chat/completions", legacy)
    request = legacy.request_json()
    answer = chat(served, model="tgi-legacy", messages=request["messages"], tools=request["tools"], max_tokens=500)
    (call,) = answer.choices[0].message.tool_calls
    assert call.id == "call_0" and orjson.loads(call.function.arguments)["num_days"] == 3
    assert answer.choices[0].finish_reason == "tool_calls"


def _prediction(exchange: Exchange, **changes: Any) -> bytes:
    return orjson.dumps({**exchange.response_json(), **changes})


def test_replicate_polls_to_completion(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("replicate/predictions-create-prefer-wait.yaml")
    upstream.add("/v1/models/meta/meta-llama-3-8b-instruct/predictions", exchange)  # still "processing"
    done = _prediction(exchange, status="succeeded", metrics={"input_token_count": 9, "output_token_count": 14})
    upstream.add("/v1/predictions/jp9nrd1g2hrj20cjb2vrb55mkr", Reply(body=done), method="GET")
    answer = chat(
        served, model="llama-replicate", messages=[{"role": "user", "content": "Please write a haiku about llamas"}]
    )
    assert answer.choices[0].message.content == "".join(exchange.response_json()["output"])
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (9, 14)
    create, poll = upstream.requests[-2:]
    assert create.headers["prefer"] == "wait" and create.json() == exchange.request_json()
    assert poll.method == "GET" and poll.headers["authorization"] == "Bearer sk-up"


def test_replicate_stream_url(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("replicate/predictions-create-stream.yaml")[2]
    started = _prediction(exchange, urls={"stream": upstream.url + "/stream/4awn"})
    upstream.add("/v1/models/meta/meta-llama-3-8b-instruct/predictions", Reply(201, body=started))
    events = [b"event: output\ndata: Camels\n\n", b"event: output\ndata:  and llamas\n\n", b"event: done\ndata: {}\n\n"]
    upstream.add("/stream/4awn", Reply(headers={"content-type": "text/event-stream"}, chunks=events), method="GET")
    result = collect(
        chat(
            served,
            model="llama-replicate",
            stream=True,
            messages=[{"role": "user", "content": "write a sonnet about camelids"}],
        )
    )
    assert result["text"] == "Camels and llamas" and result["finish"] == "stop"
    assert upstream.requests[-1].headers["accept"] == "text/event-stream"


# --- the anthropic SDK at the front door ----------------------------------------------------------


def test_messages_native_pass_through(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("anthropic/messages-nonstream.yaml")
    upstream.add("/v1/messages", exchange)
    message = served.anthropic().messages.create(
        model="claude",
        max_tokens=64000,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What's 2 + 2?"}]}],
        extra_headers={"anthropic-beta": "test-beta-1", "anthropic-version": "2023-06-01"},
        timeout=30,  # the recorded max_tokens is large
    )
    received = last(upstream)
    assert received.json() == {k: v for k, v in exchange.request_json().items() if k != "stream"}  # false: default
    assert received.headers["anthropic-beta"] == "test-beta-1" and received.headers["anthropic-version"] == "2023-06-01"
    assert message.model_dump(exclude_none=True, mode="json") == anthropic.types.Message.model_validate(
        exchange.response_json()
    ).model_dump(exclude_none=True, mode="json")


def test_messages_native_stream_with_tools(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-stream-tools.yaml")[0]
    upstream.add("/v1/messages", exchange)
    request = exchange.request_json()
    with served.anthropic().messages.stream(
        model="claude", max_tokens=64000, messages=request["messages"], tools=request["tools"]
    ) as stream:
        message = stream.get_final_message()
    (use,) = message.content
    assert use.type == "tool_use" and use.input == {"latitude": "52.5200", "longitude": "13.4050"}
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 75


def test_messages_to_openai_upstream_with_tools(served: Running, upstream: ReplayUpstream) -> None:
    first, second = load("openai/chat-nonstream-parallel-tools.yaml")
    openai_request = first.request_json()
    tools = [
        {
            "name": t["function"]["name"],
            "description": t["function"]["description"],
            "input_schema": t["function"]["parameters"],
        }
        for t in openai_request["tools"]
    ]
    upstream.add("/v1/chat/completions", first)
    question = openai_request["messages"][0]["content"]
    message = served.anthropic().messages.create(
        model="gpt", max_tokens=1024, tools=tools, messages=[{"role": "user", "content": question}]
    )
    sent = last(upstream).json()
    assert sent["messages"] == openai_request["messages"] and sent["tools"] == openai_request["tools"]
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.id for u in uses] == ["call_jpE40AW1quMaiDYWNV4Aob6D", "call_AZ51gEeXi37kKhFpXrcJzNQl"]
    assert message.stop_reason == "tool_use" and message.usage.input_tokens == 70
    upstream.add("/v1/chat/completions", second)
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "nice"} for u in uses]
    follow = served.anthropic().messages.create(
        model="gpt",
        max_tokens=1024,
        tools=tools,
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": message.content},
            {"role": "user", "content": results},
        ],
    )
    assert [m["role"] for m in last(upstream).json()["messages"]] == ["user", "assistant", "tool", "tool"]
    assert follow.content[0].text == "The weather in both San Francisco and Japan is nice."


def test_messages_stream_from_openai_upstream(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/chat-stream-tools-include-usage.yaml")[0]
    upstream.add("/v1/chat/completions", exchange)
    tool = {
        "name": "multiply",
        "description": "Multiply two numbers.",
        "input_schema": exchange.request_json()["tools"][0]["function"]["parameters"],
    }
    with served.anthropic().messages.stream(
        model="gpt-mini", max_tokens=100, tools=[tool], messages=[{"role": "user", "content": "What is 1231 * 2331?"}]
    ) as stream:
        message = stream.get_final_message()
    assert last(upstream).json()["stream_options"] == {"include_usage": True}
    (use,) = message.content
    assert use.name == "multiply" and use.input == {"a": 1231, "b": 2331}
    assert message.stop_reason == "tool_use" and message.usage.output_tokens > 0


def test_messages_stream_from_cohere_upstream(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("cohere/chat-v2-stream.yaml")[0]
    upstream.add("/v2/chat", exchange)
    with served.anthropic().messages.stream(
        model="command-a", max_tokens=100, messages=[{"role": "user", "content": "Count from 1 to 3"}]
    ) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "Sure! Here's counting from 1 to 3:\n\n1, 2, 3."
    assert (message.usage.input_tokens, message.usage.output_tokens) == (502, 24)


def test_messages_mid_stream_error_from_groq(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("groq/chat-stream-tools-tool-use-failed.yaml")[0]
    upstream.add("/g/chat/completions", exchange)
    with pytest.raises(anthropic.APIStatusError) as caught:  # noqa: SIM117
        with served.anthropic().messages.stream(
            model="groq-tools", max_tokens=100, messages=[{"role": "user", "content": "call the tool"}]
        ) as stream:
            for _ in stream:
                pass
    assert "Tool call validation failed" in str(caught.value)


def test_messages_upstream_error_in_anthropic_shape(served: Running, upstream: ReplayUpstream) -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    upstream.add("/v1/messages", Reply(529, {"content-type": "application/json"}, overloaded))
    with pytest.raises(anthropic.APIStatusError) as caught:
        served.anthropic().messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code in (503, 529)
    with pytest.raises(anthropic.BadRequestError) as bad:
        served.anthropic().messages.create(model="gpt", max_tokens=10, messages=[{"role": "robot", "content": "x"}])
    assert "messages.0.role" in str(bad.value)


# --- every recorded answer of these providers, through the gateway ---------------------------------

# recording -> (deployment, upstream path)
ANSWERS = {
    "anthropic/messages-nonstream.yaml": ("claude", "/v1/messages"),
    "anthropic/messages-nonstream-tools.yaml": ("claude", "/v1/messages"),
    "anthropic/messages-stream-text.yaml": ("claude", "/v1/messages"),
    "anthropic/messages-stream-tools.yaml": ("claude", "/v1/messages"),
    "anthropic/messages-stream-thinking.yaml": ("claude-sonnet", "/v1/messages"),
    "cohere/chat-v2-nonstream.yaml": ("command-a", "/v2/chat"),
    "cohere/chat-v2-nonstream-tools.yaml": ("command-a", "/v2/chat"),
    "cohere/chat-v2-stream.yaml": ("command-a", "/v2/chat"),
    "cohere/chat-v2-stream-tools.yaml": ("command-a", "/v2/chat"),
    "cohere/chat-v2-stream-citations.yaml": ("command-a-plus", "/v2/chat"),
    "gemini/generate-content.yaml": ("gemini-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
    "gemini/generate-content-tools.yaml": ("gemini-flash", "/v1beta/models/gemini-2.5-flash:generateContent"),
    "gemini/stream-generate-content-sse.yaml": (
        "gemini-flash", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "gemini/stream-generate-content-sse-tools.yaml": (
        "gemini-flash", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "gemini/stream-generate-content-sse-thinking.yaml": (
        "gemini-3", "/v1beta/models/gemini-3-flash-preview:streamGenerateContent"),
    "gemini/stream-generate-content-json-array-tools.yaml": (
        "gemini-flash", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "ollama/native-chat-stream.httprr.txt": ("gemma", "/api/chat"),
    "ollama/native-chat-stream-by-default.httprr.txt": ("gemma", "/api/chat"),
    "huggingface/tgi-chat-nonstream.yaml": ("tgi", "/tgi/v1/chat/completions"),
    "huggingface/tgi-chat-stream.yaml": ("tgi", "/tgi/v1/chat/completions"),
    "huggingface/tgi-chat-tools-legacy.yaml": ("tgi-legacy", "/legacy/v1/chat/completions"),
}  # fmt: skip
RANDOM_IDS = ("gemini/", "ollama/")  # tool call ids the adapter makes up


def answers() -> Iterator[Any]:
    for recording, (model, path) in ANSWERS.items():
        for index, exchange in enumerate(load(recording)):
            if exchange.method == "POST" and exchange.status == 200:
                yield pytest.param(recording, index, model, path, id=f"{recording}#{index}")


def _streamed(exchange: Exchange) -> bool:
    return (
        "stream" in exchange.url
        or exchange.request_json().get("stream", False) is True
        or ("ndjson" in exchange.response_headers.get("content-type", ""))
    )


def _direct(served_model: str, exchange: Exchange, stream: bool) -> dict[str, Any]:
    """What the adapter itself makes of the recorded answer, without the gateway in between."""
    from tests.gateway.providers.helpers import accumulate, chunks_of, make_call, run_stream

    from seance.gateway.providers import load_adapter

    provider, model = {
        "claude": ("anthropic", "claude-haiku-4-5-20251001"), "claude-sonnet": ("anthropic", "claude-sonnet-4-5"),
        "command-a": ("cohere", "command-a-03-2025"), "command-a-plus": ("cohere", "command-a-plus-05-2026"),
        "gemini-flash": ("gemini", "gemini-2.5-flash"), "gemini-3": ("gemini", "gemini-3-flash-preview"),
        "gemma": ("ollama_chat", "gemma3:1b"), "tgi": ("huggingface", "meta-llama/Llama-3.1-8B-Instruct"),
        "tgi-legacy": ("huggingface", "tgi"),
    }[served_model]  # fmt: skip
    adapter = load_adapter(provider)
    assert adapter is not None
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream,
            "stream_options": USAGE}  # fmt: skip
    call = make_call("chat", body, provider=provider, model=model, api_base="http://x")
    if stream:
        result = accumulate(chunks_of(run_stream(adapter.stream(call), exchange.response_body)))
        calls = [{"id": c["id"], "name": c["name"], "arguments": c["arguments"]} for c in result["tool_calls"]]
        return {"text": result["content"], "reasoning": result["reasoning"], "calls": calls,
                "finish": result["finish_reason"], "usage": result["usage"]}  # fmt: skip
    reply = adapter.parse(call, 200, exchange.response_body)
    return _from_completion(orjson.loads(reply.body))  # type: ignore[union-attr]


def _from_completion(data: dict[str, Any]) -> dict[str, Any]:
    message = data["choices"][0]["message"]
    calls = [{"id": c["id"], **{k: c["function"][k] for k in ("name", "arguments")}}
             for c in message.get("tool_calls") or []]  # fmt: skip
    return {"text": message.get("content") or "", "reasoning": message.get("reasoning_content") or "",
            "calls": calls, "finish": data["choices"][0]["finish_reason"], "usage": data.get("usage")}  # fmt: skip


def _comparable(result: dict[str, Any], recording: str) -> dict[str, Any]:
    usage = result["usage"] or {}
    calls = result["calls"]
    if recording.startswith(RANDOM_IDS):
        calls = [{**c, "id": "(made up)"} for c in calls]
    counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {**result, "calls": calls, "usage": counts}


@pytest.mark.parametrize(("recording", "index", "model", "path"), list(answers()))
def test_every_recorded_answer_reaches_the_sdk(
    served: Running, upstream: ReplayUpstream, recording: str, index: int, model: str, path: str
) -> None:
    exchange = load(recording)[index]
    stream = _streamed(exchange)
    upstream.add(path, exchange)
    messages = [{"role": "user", "content": "hi"}]
    if stream:
        got = collect(chat(served, model=model, messages=messages, stream=True, stream_options=USAGE))
    else:
        got = _from_completion(chat(served, model=model, messages=messages).model_dump())
    expected = _direct(model, exchange, stream)
    assert _comparable(got, recording) == _comparable(expected, recording)
    assert got["text"] or got["calls"]
    assert got["finish"] in ("stop", "length", "tool_calls")
    assert (got["usage"] or {}).get("total_tokens") or recording.startswith("huggingface/tgi-chat-stream")


def test_messages_stream_from_gemini_upstream_with_tools(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("gemini/stream-generate-content-sse-tools.yaml")[0]
    upstream.add("/v1beta/models/gemini-2.5-flash:streamGenerateContent", exchange)
    tool = {"name": "weather", "description": "Gets current weather for a location", "input_schema": WEATHER_PARAMS}
    with served.anthropic().messages.stream(
        model="gemini-flash", max_tokens=100, tools=[tool], messages=[{"role": "user", "content": BERLIN}]
    ) as stream:
        message = stream.get_final_message()
    sent = last(upstream).json()
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "weather"
    (use,) = message.content
    assert use.type == "tool_use" and use.input == {"latitude": "52.5200", "longitude": "13.4050"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (103, 73)  # thinking counts as output


def test_replicate_problem_json_error(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("replicate/models-predictions-create-422.json")
    upstream.add("/v1/models/meta/meta-llama-3-8b-instruct/predictions", exchange)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        chat(served, model="llama-replicate", messages=[{"role": "user", "content": "cake"}])
    assert "Additional property provider is not allowed" in caught.value.message


def test_ollama_generate_as_text_completion(served: Running, upstream: ReplayUpstream) -> None:
    (exchange,) = load("ollama/native-generate-nonstream.httprr.txt")
    upstream.add("/api/generate", exchange)
    result = served.openai().completions.create(model="gemma", prompt="Hello, how are you?", max_tokens=100,
                                                temperature=0)  # fmt: skip
    assert result.choices[0].text == exchange.response_json()["response"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (15, 65)
    assert last(upstream).json()["options"] == {"num_predict": 100, "temperature": 0}


# --- response_format and false values (issue 12) ---------------------------------------------

SUM_SCHEMA = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"],
              "additionalProperties": False}  # fmt: skip
TWO_AND_TWO = [{"role": "user", "content": "What's 2 + 2?"}]


def test_anthropic_json_schema_with_thinking_uses_structured_outputs(served: Running, upstream: ReplayUpstream) -> None:
    """Anthropic refuses thinking with a forced tool_choice: the schema goes as output_config.format."""
    exchange = load("anthropic/messages-nonstream.yaml")[0]
    upstream.add("/v1/messages", exchange)
    answer = chat(
        served, model="claude", messages=TWO_AND_TWO, max_tokens=64000, reasoning_effort="low",
        response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": SUM_SCHEMA}},
    )  # fmt: skip
    assert last(upstream).json() == {
        "model": "claude-haiku-4-5-20251001",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What's 2 + 2?"}]}],
        "max_tokens": 64000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "output_config": {"format": {"type": "json_schema", "schema": SUM_SCHEMA}},
    }
    assert answer.choices[0].message.content == "2 + 2 = 4" and answer.choices[0].finish_reason == "stop"


def test_anthropic_json_object_keeps_the_clients_tools_callable(served: Running, upstream: ReplayUpstream) -> None:
    first = load("anthropic/messages-nonstream-tools.yaml")[0]
    upstream.add("/v1/messages", first)
    answer = chat(
        served, model="claude", messages=[{"role": "user", "content": BERLIN}], max_tokens=64000,
        tools=[WEATHER], tool_choice="required", parallel_tool_calls=False, response_format={"type": "json_object"},
    )  # fmt: skip
    sent = last(upstream).json()
    assert [t["name"] for t in sent["tools"]] == ["weather", "json_tool_call"]
    assert sent["tools"][1] == {"name": "json_tool_call", "description": "Respond with JSON",
                                "input_schema": {"type": "object"}}  # fmt: skip
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}  # the client's own
    (call,) = answer.choices[0].message.tool_calls
    assert (call.id, call.function.name) == ("toolu_01Ay5KzhmQYMK53svGLaAxfc", "weather")
    assert answer.choices[0].finish_reason == "tool_calls"


def test_anthropic_json_schema_without_tools_forces_the_json_tool(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-nonstream.yaml")[0]
    upstream.add("/v1/messages", exchange)
    chat(
        served, model="claude", messages=TWO_AND_TWO, max_tokens=64000, parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": {"name": "sum", "schema": SUM_SCHEMA}},
    )  # fmt: skip
    sent = last(upstream).json()
    assert sent["tools"] == [{"name": "json_tool_call", "description": "Respond with JSON", "input_schema": SUM_SCHEMA}]
    assert sent["tool_choice"] == {"type": "tool", "name": "json_tool_call", "disable_parallel_tool_use": True}


def test_parallel_tool_calls_false_without_tools_sends_no_tool_choice(
    served: Running, upstream: ReplayUpstream
) -> None:
    upstream.add("/v1/messages", load("anthropic/messages-nonstream.yaml")[0])
    chat(served, model="claude", messages=TWO_AND_TWO, max_tokens=64000, parallel_tool_calls=False)
    assert "tool_choice" not in last(upstream).json()


@pytest.mark.parametrize("model", ["command-a", "gemini-flash", "gemma", "llama-replicate"])
def test_parallel_tool_calls_false_is_refused_where_there_is_no_such_switch(
    served: Running, upstream: ReplayUpstream, model: str
) -> None:
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        chat(served, model=model, messages=TWO_AND_TWO, parallel_tool_calls=False)
    assert "does not support the parameter 'parallel_tool_calls'" in caught.value.message
    assert len(upstream.requests) == before


GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_ASKED = {"contents": [{"role": "user", "parts": [{"text": "What's 2 + 2?"}]}]}


def _gemini_answer(**changes: Any) -> Reply:
    """The recorded generateContent answer, with `changes` applied to its first candidate."""
    data = load("gemini/generate-content.yaml")[0].response_json()
    data["candidates"][0].update(changes)
    return Reply(headers={"content-type": "application/json"}, body=orjson.dumps(data))


def test_gemini_n_is_candidate_count_and_n_choices_come_back(served: Running, upstream: ReplayUpstream) -> None:
    data = load("gemini/generate-content.yaml")[0].response_json()
    second = {"content": {"parts": [{"text": "Four."}], "role": "model"}, "finishReason": "STOP", "index": 1}
    data["candidates"].append(second)
    upstream.add(GEMINI_PATH, Reply(headers={"content-type": "application/json"}, body=orjson.dumps(data)))
    answer = chat(served, model="gemini-flash", messages=TWO_AND_TWO, n=2, parallel_tool_calls=True)
    assert last(upstream).json() == {**GEMINI_ASKED, "generationConfig": {"candidateCount": 2}}
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (0, "2 + 2 = **4**", "stop"),
        (1, "Four.", "stop"),
    ]
    assert answer.id == "Cr-FaqLbNpfYkdUP-bmpoAw" and answer.usage.completion_tokens == 8 + 23


def test_gemini_logprobs(served: Running, upstream: ReplayUpstream) -> None:
    result = {
        "topCandidates": [{"candidates": [{"token": "2", "logProbability": -0.01},
                                          {"token": "Two", "logProbability": -4.6}]}],
        "chosenCandidates": [{"token": "2", "logProbability": -0.01}],
    }  # fmt: skip
    upstream.add(GEMINI_PATH, _gemini_answer(logprobsResult=result, avgLogprobs=-0.01))
    answer = chat(served, model="gemini-flash", messages=TWO_AND_TWO, logprobs=True, top_logprobs=2)
    config = last(upstream).json()["generationConfig"]
    assert config == {"responseLogprobs": True, "logprobs": 2}
    assert answer.choices[0].logprobs.model_dump() == {
        "content": [{"token": "2", "logprob": -0.01, "bytes": [50], "top_logprobs": [
            {"token": "2", "logprob": -0.01, "bytes": [50]}, {"token": "Two", "logprob": -4.6, "bytes": [84, 119, 111]},
        ]}],
        "refusal": None,
    }  # fmt: skip


def test_gemini_through_messages_gets_the_exact_thinking_budget_and_top_k(
    served: Running, upstream: ReplayUpstream
) -> None:
    upstream.add(GEMINI_PATH, _gemini_answer())
    message = served.anthropic().messages.create(
        model="gemini-flash", max_tokens=5000, messages=TWO_AND_TWO, extra_body={"top_k": 20},
        thinking={"type": "enabled", "budget_tokens": 3000},
    )  # fmt: skip
    assert last(upstream).json() == {
        **GEMINI_ASKED,
        "generationConfig": {
            "topK": 20, "maxOutputTokens": 5000, "thinkingConfig": {"thinkingBudget": 3000, "includeThoughts": True}
        },
    }  # fmt: skip
    assert [b.type for b in message.content] == ["text"] and message.content[0].text == "2 + 2 = **4**"


def test_thinking_through_messages_to_an_openai_upstream_is_reasoning_effort(
    served: Running, upstream: ReplayUpstream
) -> None:
    exchange = load("openai/chat-nonstream.httprr.txt")[0]
    upstream.add("/v1/chat/completions", exchange)
    served.anthropic().messages.create(
        model="gpt-mini", max_tokens=500, messages=TWO_AND_TWO, thinking={"type": "enabled", "budget_tokens": 3000}
    )
    sent = last(upstream).json()
    assert sent["reasoning_effort"] == "medium" and "thinking" not in sent


@pytest.mark.parametrize("suffix", ["", "/v2", "/v2/chat", "/v1/chat/"])
def test_cohere_api_base_in_litellm_form(gateway: GatewayFactory, upstream: ReplayUpstream, suffix: str) -> None:
    """LiteLLM configs write the full chat URL as api_base; the host root works as well."""
    exchange = load("cohere/chat-v2-nonstream.yaml")[0]
    running = gateway({"model_list": [deployment("command-a", "cohere/command-a-03-2025", upstream.url + suffix)]})
    upstream.add("/v2/chat", exchange)
    answer = chat(running, model="command-a", messages=TWO_AND_TWO)
    assert last(upstream).path == "/v2/chat" and last(upstream).headers["authorization"] == "Bearer sk-up"
    assert last(upstream).json() == exchange.request_json()
    assert answer.choices[0].message.content == exchange.response_json()["message"]["content"][0]["text"]


def test_cohere_image_detail(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("cohere/chat-v2-nonstream.yaml")[0]
    upstream.add("/v2/chat", exchange)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    chat(served, model="command-a", messages=[{"role": "user", "content": [{"type": "text", "text": "Hi"}, image]}])
    assert last(upstream).json()["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, image]},
    ]


# --- /v1/completions to chat-only models (answered through chat) -------------------------------


def test_completion_to_an_openai_chat_model(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/chat-nonstream.httprr.txt")[0]
    upstream.add("/v1/chat/completions", exchange)
    result = served.openai().completions.create(
        model="gpt", prompt="Hello, how are you?", temperature=0, extra_body={"max_completion_tokens": 50}
    )
    assert last(upstream).path == "/v1/chat/completions"
    assert last(upstream).json() == exchange.request_json()
    expected = exchange.response_json()
    assert result.model_dump(exclude_unset=True) == {
        "id": expected["id"], "object": "text_completion", "created": expected["created"], "model": expected["model"],
        "choices": [{"index": 0, "text": expected["choices"][0]["message"]["content"], "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": expected["usage"],
    }  # fmt: skip


def test_completion_stream_to_an_openai_chat_model(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("openai/chat-stream-include-usage.httprr.txt")[0]
    upstream.add("/v1/chat/completions", exchange)
    request = {"prompt": "Count from 1 to 5", "temperature": 0, "stream": True, "stream_options": USAGE}
    chunks = list(served.openai().completions.create(model="gpt", **request, extra_body={"max_completion_tokens": 50}))
    assert last(upstream).json() == exchange.request_json()
    recorded = [orjson.loads(e[6:]) for e in exchange.response_body.split(b"\n\n") if e.startswith(b"data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in recorded if c["choices"])
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = recorded[-1]["usage"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        usage["prompt_tokens"], usage["completion_tokens"]
    )  # fmt: skip


def test_completion_to_anthropic(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-nonstream.yaml")[0]
    upstream.add("/v1/messages", exchange)
    result = served.openai().completions.create(model="claude", prompt="What's 2 + 2?", max_tokens=64000)
    assert last(upstream).json() == {k: v for k, v in exchange.request_json().items() if k != "stream"}
    assert (result.object, result.choices[0].text, result.choices[0].finish_reason) == (
        "text_completion", "2 + 2 = 4", "stop"
    )  # fmt: skip
    assert result.id == "msg_011CeCGmD8uwD58unxgBN8Qx" and result.usage.completion_tokens == 13


def test_completion_stream_to_anthropic(served: Running, upstream: ReplayUpstream) -> None:
    exchange = load("anthropic/messages-stream-text.yaml")[0]
    upstream.add("/v1/messages", exchange)
    chunks = list(
        served.openai().completions.create(
            model="claude", prompt="Say just hello", max_tokens=8192, temperature=1.0, stream=True
        )
    )
    assert last(upstream).json() == exchange.request_json()
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Hello"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_completion_parameters_without_a_chat_counterpart_are_refused(served: Running) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        served.openai().completions.create(model="claude", prompt="x", echo=True)
    assert "anthropic does not support the parameter 'echo'" in caught.value.message


def test_text_completion_openai_prefix_uses_the_completions_endpoint(
    gateway: GatewayFactory, upstream: ReplayUpstream
) -> None:
    exchange = load("together/completions-nonstream.json")[0]
    model = exchange.request_json()["model"]
    running = gateway({"model_list": [deployment("base", f"text-completion-openai/{model}", upstream.url + "/v1")]})
    upstream.add("/v1/completions", exchange)
    result = running.openai().completions.create(
        model="base", prompt="Paris is", temperature=0, max_tokens=10, extra_body={"inputs": "Paris is"}
    )
    assert last(upstream).path == "/v1/completions" and last(upstream).json() == exchange.request_json()
    assert result.choices[0].text == exchange.response_json()["choices"][0]["text"]
