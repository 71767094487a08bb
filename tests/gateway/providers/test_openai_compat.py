"""providers/openai_compat.py: what a pass-through checks of an answer and keeps to read its usage."""

from __future__ import annotations

import json

import pytest
from tests.gateway.providers.helpers import make_call

from seance.gateway.errors import UpstreamError
from seance.gateway.formats.openai import Usage
from seance.gateway.providers.base import Call, Operation, Reply
from seance.gateway.providers.openai_compat import OpenAI, PassThroughStream, read_usage

FLOATS = b'{"object":"list","data":[{"embedding":[0.1,-0.2]}],"model":"m",'


@pytest.mark.parametrize(
    ("tail", "usage"),
    [
        (b'"usage":{"prompt_tokens":5,"total_tokens":5}}', Usage(5, 0)),
        (b'"usage": {"prompt_tokens": 7, "completion_tokens": 3}}', Usage(7, 3)),
        (b'"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":4}}}', Usage(9, 0, 4)),
        (b'"usage":{"prompt_tokens":9,"prompt_cache_hit_tokens":2}}', Usage(9, 0, 2)),  # DeepSeek's name
        (b'"usage":{"prompt_tokens":9,"cache_creation_input_tokens":6}}', Usage(9, 0, 0, 6)),
        (b'"usage":{"completion_tokens":8,"completion_tokens_details":{"reasoning_tokens":5}}}', Usage(0, 8, 0, 0, 5)),
        (b'"usage":null}', None),
        (b'"id":"x"}', None),
    ],
)
def test_the_usage_is_read_from_the_bytes(tail: bytes, usage: Usage | None) -> None:
    assert read_usage(FLOATS + tail) == usage


@pytest.mark.parametrize("size", [1, 150, 5000, 20000])
def test_a_stream_in_chunks_of_any_size_keeps_its_tail(size: int) -> None:
    event = b'data: {"choices":[{"delta":{"content":"word "}}]}\n\n'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":400}}\n\n'
    stream = event * 400 + usage + b"data: [DONE]\n\n"
    translator = PassThroughStream("openai")
    out = b"".join(translator.feed(stream[at : at + size]) for at in range(0, len(stream), size))
    assert out == stream and translator.close() == b""
    assert translator.usage == Usage(3, 400)
    assert sum(map(len, translator.kept)) <= 2 * PassThroughStream.TAIL + size  # never the whole stream


def _call(op: Operation, body: dict[str, object]) -> Call:
    return make_call(op, body, provider="openai", model="m", api_base="http://127.0.0.1:9/v1")


# as OpenAI answers text-embedding-3-small with dimensions: 256, pretty-printed (6 KB)
EMBEDDINGS = json.dumps(
    {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.012345678] * 256}],
     "model": "text-embedding-3-small", "usage": {"prompt_tokens": 9, "total_tokens": 9}},
    indent=2,
).encode()  # fmt: skip


def test_an_embeddings_answer_is_relayed_unchanged_with_its_usage() -> None:
    reply = OpenAI().parse(_call("embedding", {"model": "m", "input": "x"}), 200, EMBEDDINGS)
    assert isinstance(reply, Reply) and reply.body == EMBEDDINGS
    assert reply.usage == Usage(9, 0)


@pytest.mark.parametrize("op", ["chat", "embedding"])
def test_an_answer_that_is_not_a_json_object_is_an_upstream_error(op: Operation) -> None:
    with pytest.raises(UpstreamError, match="not JSON"):
        OpenAI().parse(_call(op, {"model": "m"}), 200, b"<html>oops</html>")


def test_a_small_chat_answer_is_parsed_whole() -> None:
    """Its ends look like JSON, its middle does not: only the parse that reads its usage tells."""
    with pytest.raises(UpstreamError, match="not JSON"):
        OpenAI().parse(_call("chat", {"model": "m"}), 200, b'{"id": "x", "choices": [oops], "usage": {}}')
