"""Loopback helpers for the reliability suite: a raw upstream that records every byte it is sent
and answers with bytes the test chooses, raw clients, and reading a process's memory."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

OK_JSON = b'{"id":"x","object":"chat.completion","choices":[],"usage":null}'


def http_answer(body: bytes, status: int = 200, headers: bytes = b"content-type: application/json\r\n") -> bytes:
    return b"HTTP/1.1 %d X\r\n%scontent-length: %d\r\n\r\n%s" % (status, headers, len(body), body)


@dataclass
class Recorder:
    """A raw upstream on 127.0.0.1 (in the test's event loop). `answer(head)` gives the bytes to
    answer each request head with (b"": hold the connection open without answering)."""

    answer: Callable[[bytes], bytes | tuple[float, bytes]] = lambda head: http_answer(OK_JSON)
    received: list[bytes] = field(default_factory=list)  # every byte, per connection, as it came
    heads: list[bytes] = field(default_factory=list)  # each request line and headers
    server: asyncio.Server | None = None
    url: str = ""

    async def start(self) -> Recorder:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self.received)
        self.received.append(b"")
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.received[index] += head
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.received[index] += body
                reply = self.answer(head)
                if isinstance(reply, tuple):  # (seconds to wait, the answer)
                    await asyncio.sleep(reply[0])
                    reply = reply[1]
                if not reply:
                    self.received[index] += await reader.read()
                    return
                writer.write(reply)
                await writer.drain()
                if b"\r\nconnection: close\r\n" in reply.partition(b"\r\n\r\n")[0] + b"\r\n":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(url: str, timeout: float = 10) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    return sock


def read_answer(sock: socket.socket, limit: float = 10) -> bytes:
    """Everything the server sends until it closes the connection (or `limit` seconds pass)."""
    deadline = time.monotonic() + limit
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0


def alive(url: str, timeout: float = 2.0) -> float:
    """Seconds a liveness probe took on a fresh connection (raises when it does not answer 200)."""
    started = time.monotonic()
    with connect(url, timeout) as sock:
        sock.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = read_answer(sock, timeout)
    assert status_of(answer) == 200, answer[:200]
    return time.monotonic() - started


class ThreadedRecorder:
    """A Recorder in its own thread and event loop, for tests that drive the gateway process."""

    def __init__(self, answer: Callable[[bytes], bytes | tuple[float, bytes]]) -> None:
        self.recorder = Recorder(answer)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Recorder:
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.recorder.start(), self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _stop(self) -> None:
        await self.recorder.stop()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
