"""The lean SSE splitter agrees with the gateway's SSEDecoder on every recorded stream."""

from __future__ import annotations

import pytest
from tests.gateway.providers.helpers import SPLITS, splits
from tests.sse_reference import SSEDecoder
from tests.wire import FIXTURES

from seance.gateway.formats.sse import EventSplitter

STREAMS = sorted(
    p.relative_to(FIXTURES).as_posix() for p in FIXTURES.glob("*/*.resp*.txt") if b"data:" in p.read_bytes()
)


@pytest.mark.parametrize("mode", SPLITS)
@pytest.mark.parametrize("relpath", STREAMS)
def test_same_events_as_the_reference_decoder(relpath: str, mode: str) -> None:
    body = (FIXTURES / relpath).read_bytes()
    reference = [(e.event, e.data) for e in SSEDecoder().feed(body) + SSEDecoder().flush()]
    splitter = EventSplitter()
    events = [event for piece in splits(body, mode) for event in splitter.feed(piece)] + splitter.flush()
    assert [(n.decode() if n is not None else None, d.decode()) for n, d in events] == reference
    assert events


def test_comments_and_unknown_fields_are_skipped() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b": ping\n\nid: 3\nretry: 10\n\nevent: output\ndata: a\ndata: b\n\n") == [(b"output", b"a\nb")]
    assert splitter.feed(b"data: tail") == [] and splitter.flush() == [(None, b"tail")]
