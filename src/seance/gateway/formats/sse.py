"""Server-sent events: the one splitter for upstream streams, and the encoder for ours.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
Lines end in LF, CRLF or CR (Gemini uses CRLF); an event ends at a blank line. The splitter works on
bytes and hands `data` to orjson without decoding: a translated stream pays for it once per event.
"""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"


class EventSplitter:
    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]:
        """Complete events so far, as (event name or None, data)."""
        buffer = self.buffer + data
        if b"\r" in buffer:
            held = buffer.endswith(b"\r")  # its LF may come in the next piece
            buffer = buffer[:-1] if held else buffer
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buffer += b"\r"
        end = buffer.rfind(b"\n\n")
        if end == -1:
            self.buffer = buffer
            return []
        self.buffer = buffer[end + 2 :]
        return [parsed for block in buffer[:end].split(b"\n\n") if (parsed := _event(block)) is not None]

    def flush(self) -> list[tuple[bytes | None, bytes]]:
        """The last event when the stream ends without its blank line."""
        block, self.buffer = self.buffer.rstrip(b"\r\n"), b""
        parsed = _event(block) if block else None
        return [parsed] if parsed is not None else []


def _event(block: bytes) -> tuple[bytes | None, bytes] | None:
    name: bytes | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data and name is None:
        return None
    return name, b"\n".join(data)


def complete_events(pending: bytes, data: bytes) -> tuple[bytes, bytes]:
    """(the complete events so far, what is left to wait for) of a byte stream split anywhere, for
    a translator that rewrites whole events and passes the rest through."""
    pending += data
    end = max(pending.rfind(b"\n\n"), pending.rfind(b"\r\n\r\n"))
    if end == -1:
        return b"", pending
    cut = end + (4 if pending[end : end + 4] == b"\r\n\r\n" else 2)
    return pending[:cut], pending[cut:]


def encode(data: object, event: str | None = None) -> bytes:
    """One SSE event carrying `data` as JSON."""
    payload = orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
