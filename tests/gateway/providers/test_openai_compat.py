"""providers/openai_compat.py: what a pass-through keeps to read an answer's usage."""

from __future__ import annotations

import pytest

from seance.gateway.formats.openai import Usage
from seance.gateway.providers.openai_compat import PassThroughStream, read_usage

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
