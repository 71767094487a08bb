"""providers/openai_compat.py: the usage of a pass-through answer too large to parse, searched for."""

from __future__ import annotations

import pytest

from seance.gateway.formats.openai import Usage
from seance.gateway.providers.openai_compat import read_usage

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
