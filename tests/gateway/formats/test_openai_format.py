"""Shared translation helpers: wrong shapes are the sender's fault, never a 500."""

from __future__ import annotations

import orjson
import pytest
from tests.gateway.providers.helpers import accumulate, chunks_of, make_call

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.formats.anthropic import messages as anthropic_messages
from seance.gateway.formats.anthropic import stream
from seance.gateway.formats.openai import ChunkWriter, check_params
from seance.gateway.providers import load_adapter
from seance.gateway.providers.base import Usage

TRANSLATING = ("anthropic", "cohere", "gemini", "ollama_chat", "replicate")


@pytest.mark.parametrize("provider", TRANSLATING)
def test_malformed_client_messages_are_a_400(provider: str) -> None:
    adapter = load_adapter(provider)
    assert adapter is not None
    malformed: list[object] = ["hello", [{"role": "user", "content": 5}]]
    if provider in ("anthropic", "gemini", "ollama_chat"):  # the others forward tool calls as they are
        malformed.append([{"role": "assistant", "content": None, "tool_calls": ["not a call"]}])
    for messages in malformed:
        body = {"model": "m", "messages": messages}
        with pytest.raises(BadRequest):
            adapter.build(make_call("chat", body, provider=provider, model="m", api_base="http://x"))


@pytest.mark.parametrize("provider", TRANSLATING)
def test_answers_of_the_wrong_shape_are_a_502(provider: str) -> None:
    adapter = load_adapter(provider)
    assert adapter is not None
    call = make_call("chat", {"model": "m", "messages": []}, provider=provider, model="m", api_base="http://x")
    for body in (b"[1, 2]", b'{"content": 5, "message": 5, "candidates": 5, "status": 5}', b"not json"):
        with pytest.raises(UpstreamError) as caught:
            adapter.parse(call, 200, body)
        assert caught.value.status == 502


@pytest.mark.parametrize("provider", ["anthropic", "cohere", "gemini", "ollama_chat"])  # replicate: raw text
def test_stream_events_of_the_wrong_shape_are_an_error(provider: str) -> None:
    adapter = load_adapter(provider)
    assert adapter is not None
    call = make_call("chat", {"model": "m", "messages": [], "stream": True}, provider=provider, model="m",
                     api_base="http://x")  # fmt: skip
    translator = adapter.stream(call)
    with pytest.raises(UpstreamError):
        translator.feed(b'data: ["x"]\n\nevent: done\ndata: 7\n\n[1]\n')
        translator.close()


def test_front_door_shapes() -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": "lots"}}  # fmt: skip
    with pytest.raises(BadRequest):
        anthropic_messages.to_openai_request(body)
    with pytest.raises(UpstreamError):
        anthropic_messages.from_openai_response(b'{"choices": [5]}', "m")
    with pytest.raises(UpstreamError):
        stream.OpenAIToAnthropicStream().feed(b'data: {"choices": [5]}\n\n')


def test_check_params() -> None:
    for quiet in ({"logprobs": False}, {"n": 1}, {"logit_bias": {}}, {"frequency_penalty": 0}, {"seed": None}):
        check_params({"model": "m", **quiet}, (), "p", drop=False)
    with pytest.raises(BadRequest) as caught:
        check_params({"model": "m", "frequency_penalty": 0.5}, (), "p", drop=False)
    assert caught.value.param == "frequency_penalty" and "drop_params" in caught.value.message
    check_params({"model": "m", "frequency_penalty": 0.5}, (), "p", drop=True)


def test_chunk_writer_sequence() -> None:
    writer = ChunkWriter("m", include_usage=True)
    out = writer.start() + writer.text("a") + writer.tool_start(0, "c1", "f", '{"x"')
    out += writer.tool_arguments(0, ":1}") + writer.finish("tool_calls") + writer.end(Usage(3, 4))
    chunks = chunks_of(out)
    assert len({c["id"] for c in chunks}) == 1 and chunks[-1]["choices"] == []
    result = accumulate(chunks)
    assert result["roles"] == ["assistant"] and result["content"] == "a"
    assert result["tool_calls"] == [{"id": "c1", "name": "f", "arguments": '{"x":1}'}]
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_spliced_text_chunks_equal_encoded_ones() -> None:
    fast = ChunkWriter('model "quoted"', include_usage=False, id="c1")
    slow = ChunkWriter('model "quoted"', include_usage=False, id="c1")
    slow.created = fast.created
    assert fast.start() == slow.start()
    for text in ('he said "hi"\n', "ünïcode ✓", "\\", "</script>"):
        assert orjson.loads(fast.text(text)[6:]) == orjson.loads(slow.delta({"content": text})[6:])
        assert orjson.loads(fast.reasoning(text)[6:]) == orjson.loads(slow.delta({"reasoning_content": text})[6:])
    fast.id = slow.id = "c2"  # a provider's own id arrives later: the envelope follows
    assert orjson.loads(fast.text("x")[6:]) == orjson.loads(slow.delta({"content": "x"})[6:])


def test_usage_from_openai_reads_every_count_and_coerces_what_is_not_an_int() -> None:
    full = {
        "prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 30}, "completion_tokens_details": {"reasoning_tokens": 25},
        "cache_creation_input_tokens": 5,
    }  # fmt: skip
    assert Usage.from_openai(full) == Usage(100, 40, 30, 5, 25)
    assert Usage.from_openai({"prompt_tokens": 9, "prompt_cache_hit_tokens": 4}) == Usage(9, 0, 4, 0, 0)
    assert Usage.from_openai({"prompt_tokens": 12.0, "completion_tokens": "8", "prompt_tokens_details": None}) == Usage(
        12, 8
    )
    assert type(Usage.from_openai({"prompt_tokens": 12.0}).prompt_tokens) is int  # type: ignore[union-attr]
    assert Usage.from_openai(None) is None and Usage.from_openai({}) == Usage()
