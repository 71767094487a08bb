"""A reference SSE decoder, written straight from the HTML standard's rules, that the tests hold the
gateway's lean bytes splitter (`seance.gateway.formats.sse.EventSplitter`) and the streams it sends
against: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str | None
    data: str


class SSEDecoder:
    """Feed bytes split anywhere; get complete events back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[Event]:
        buffer = self._buffer + chunk
        events: list[Event] = []
        # Normalise CRLF/CR only on whole lines; a chunk may end between CR and LF.
        start = 0
        while True:
            newline = _next_line_end(buffer, start)
            if newline is None:
                break
            end, after = newline
            self._line(buffer[start:end].decode("utf-8", "replace"), events)
            start = after
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[Event]:
        """Events left when the stream ends without a final blank line."""
        events: list[Event] = []
        if self._buffer:
            self._line(self._buffer.decode("utf-8", "replace"), events)
            self._buffer = b""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[Event]) -> None:
        if not line:
            if self._data or self._event is not None:
                events.append(Event(self._event, "\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


def _next_line_end(buffer: bytes, start: int) -> tuple[int, int] | None:
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf != -1 else len(buffer))
    if cr != -1:
        if cr + 1 == len(buffer):
            return None  # wait: the LF of a CRLF may be in the next chunk
        return (cr, cr + 2) if buffer[cr + 1 : cr + 2] == b"\n" else (cr, cr + 1)
    if lf != -1:
        return lf, lf + 1
    return None
