"""routing/proxy.py: what one try leaves in a stream's bytes."""

from __future__ import annotations

from seance.gateway.errors import Redactor
from seance.gateway.providers.base import StreamTranslator
from seance.gateway.routing.proxy import REDACTED, _Redacting

KEY = "sk-upstream-secret"


class Echo(StreamTranslator):
    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b'data: {"error": {"message": "bad key sk-upstream-secret"}}\n\n'


def test_a_stream_never_carries_the_deployments_key() -> None:
    stream = _Redacting(Echo(), Redactor([KEY]), KEY.encode())
    chunk = b'data: {"choices": []}\n\n'
    assert stream.feed(chunk) is chunk  # nothing to take out: the chunk as it came
    key = KEY.encode()
    assert stream.feed(b"key: " + key + b", again " + key) == b"key: " + REDACTED + b", again " + REDACTED
    assert KEY.encode() not in stream.close()
