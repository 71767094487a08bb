"""Anthropic's Messages streams for the response cache, on the recorded streams: each one assembled
into the answer it amounts to, and that answer replayed as events that assemble to it again."""

from __future__ import annotations

import orjson
import pytest
from tests.wire import load

from seance.gateway.formats.sse import EventSplitter
from seance.gateway.pipeline import cache_messages


def _events(stream: bytes) -> list[bytes]:
    splitter = EventSplitter()
    return [data for _, data in splitter.feed(stream)] + [data for _, data in splitter.flush()]


@pytest.mark.parametrize("name", ["text", "tools", "thinking"])
def test_a_recorded_stream_assembles_and_replays_to_the_same_answer(name: str) -> None:
    stream = load(f"anthropic/messages-stream-{name}.yaml")[0].response_body
    body = cache_messages.assemble(_events(stream))
    assert body is not None
    answer = orjson.loads(body)
    assert answer["type"] == "message" and answer["stop_reason"] and answer["usage"]["output_tokens"] > 0
    kinds = [block["type"] for block in answer["content"]]
    replayed = cache_messages.replay(body)
    assert replayed is not None and cache_messages.assemble(_events(replayed)) == body
    names = [event.split(b"\n", 1)[0] for event in replayed.split(b"\n\n") if event]
    assert names[0] == b"event: message_start" and names[-2:] == [b"event: message_delta", b"event: message_stop"]
    if name == "tools":
        (tool,) = [block for block in answer["content"] if block["type"] == "tool_use"]
        assert isinstance(tool["input"], dict) and tool["input"]  # the partial JSON, whole
    if name == "thinking":
        assert kinds[0] == "thinking" and answer["content"][0]["thinking"] and answer["content"][0]["signature"]
    if name == "text":
        assert kinds == ["text"] and answer["content"][0]["text"]


def test_a_stream_that_did_not_end_or_has_an_error_is_not_kept() -> None:
    events = _events(load("anthropic/messages-stream-text.yaml")[0].response_body)
    assert cache_messages.assemble(events[:-1]) is None  # no message_stop
    error = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert cache_messages.assemble([*events[:-1], error]) is None
    unknown = b'{"type":"content_block_start","index":1,"content_block":{"type":"image_generation"}}'
    assert cache_messages.assemble([*events[:2], unknown, *events[2:]]) is None


def test_a_stored_non_streamed_answer_replays_as_events() -> None:
    body = load("anthropic/messages-nonstream-tools.yaml")[0].response_body
    replayed = cache_messages.replay(body)
    assert replayed is not None
    again = orjson.loads(cache_messages.assemble(_events(replayed)) or b"{}")
    assert again["content"] == orjson.loads(body)["content"] and again["usage"] == orjson.loads(body)["usage"]
