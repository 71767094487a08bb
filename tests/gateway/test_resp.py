"""The limits' Redis client: RESP replies read whole however the bytes arrive, calls answered in
order over one pipelined connection, and failures as the builtin errors the store falls back on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator

import pytest

from seance.gateway import resp
from seance.gateway.resp import Client, Incomplete, ReplyError, Subscription, _Connection, encode, parse

REDIS_URL = os.environ.get("SEANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REPLIES = b":42\r\n+OK\r\n$5\r\nhe\r\no\r\n$-1\r\n*3\r\n:1\r\n*1\r\n$1\r\nx\r\n:-7\r\n-NOSCRIPT No matching script\r\n"


def test_encode_is_resp_arrays_of_bulk_strings() -> None:
    assert encode(("EVALSHA", "ab", 2, b"k\r\n")) == b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$3\r\nk\r\n\r\n"


def test_every_reply_kind_parses_and_a_cut_anywhere_is_incomplete() -> None:
    values, pos = [], 0
    while pos < len(REPLIES):
        value, pos = parse(REPLIES, pos)
        values.append(value)
    assert values[:5] == [42, "OK", b"he\r\no", None, [1, [b"x"], -7]]
    assert isinstance(values[5], ReplyError) and str(values[5]).startswith("NOSCRIPT")
    for cut in range(1, len(b"*3\r\n:1\r\n*1\r\n$1\r\nx\r\n:-7\r\n")):
        with pytest.raises(Incomplete):
            parse(b"*3\r\n:1\r\n*1\r\n$1\r\nx\r\n:-7\r\n"[:cut], 0)


def test_replies_split_over_reads_answer_their_calls_in_order() -> None:
    async def go() -> list[object]:
        connection = _Connection()
        futures = [asyncio.get_running_loop().create_future() for _ in range(6)]
        connection.waiting.extend(futures)
        connection.deadlines.extend([0.0] * len(futures))
        connection.sent.extend([0.0] * len(futures))
        for i in range(0, len(REPLIES), 3):  # three bytes at a time
            connection.data_received(REPLIES[i : i + 3])
        assert not connection.rest and not connection.waiting and not connection.deadlines and not connection.sent
        return [f.exception() or f.result() for f in futures]

    results = asyncio.run(go())
    assert results[:5] == [42, "OK", b"he\r\no", None, [1, [b"x"], -7]]
    assert isinstance(results[5], ReplyError)


async def test_pipelined_calls_on_the_real_redis() -> None:
    client = Client(REDIS_URL, 2.0)
    try:
        answers = await asyncio.gather(*(client.call("EVAL", "return tonumber(ARGV[1]) * 2", 0, i) for i in range(200)))
        assert answers == [i * 2 for i in range(200)]
        with pytest.raises(ReplyError, match="NOSCRIPT"):
            await client.call("EVALSHA", "0" * 40, 0)
        assert await client.call("PING") == "PONG"  # the connection is still in step after an error reply
    finally:
        client.close()


async def test_a_call_sent_without_waiting_has_its_reply_dropped_in_order() -> None:
    client = Client(REDIS_URL, 1.0)
    key = "seance-test-resp-" + os.urandom(6).hex()
    try:
        assert not client.send_nowait(("SET", key, b"x"))  # no connection yet: nothing sent
        assert await client.call("PING") == "PONG"
        assert client.send_nowait(("SET", key, b"v", "PX", 5000))
        assert client.send_nowait(("INCR", key))  # an error reply (not an integer), read and dropped
        assert await client.call("GET", key) == b"v"
    finally:
        client.close()


async def test_a_command_sent_unanswered_gets_no_reply_and_the_calls_stay_in_step() -> None:
    client = Client(REDIS_URL, 1.0)
    key = "seance-test-resp-" + os.urandom(6).hex()
    try:
        assert not client.send_unanswered(encode(("SET", key, b"x")))  # no connection yet: nothing sent
        assert await client.call("PING") == "PONG"
        connection = client._connection
        assert connection is not None and connection.skips is None
        # the first one asks whether the server knows CLIENT REPLY SKIP, and has its reply read
        assert client.send_unanswered(encode(("SET", key, b"u", "PX", 5000)))
        assert await client.call("GET", key) == b"u" and connection.skips  # Redis does
        assert client.send_unanswered(encode(("SET", key, b"v", "PX", 5000)))
        assert client.send_unanswered(encode(("INCR", key)))  # an error reply, never sent
        assert not connection.waiting  # nothing to read
        assert await client.call("GET", key) == b"v"
        connection.skips = False  # as with a server that does not know it: the replies are read and dropped
        assert client.send_unanswered(encode(("SET", key, b"w", "PX", 5000)))
        assert len(connection.waiting) == 1 and await client.call("GET", key) == b"w"
    finally:
        client.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    with socket_port() as port:
        client = Client(f"redis://127.0.0.1:{port}/0", 1.0)
        with pytest.raises(ConnectionError):
            await client.call("PING")


async def test_a_silent_server_is_a_timeout_and_the_calls_behind_fail_too() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client(f"redis://127.0.0.1:{port}/0", 0.2)
    try:
        first = asyncio.ensure_future(client.call("PING"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(client.call("PING"))
        with pytest.raises(TimeoutError):
            await first
        with pytest.raises(ConnectionError):
            await second  # never answered by a reply meant for the first
    finally:
        client.close()
        for writer in accepted:
            writer.close()
        server.close()


async def test_clients_of_one_server_share_a_connection_each_with_its_setup() -> None:
    key = "seance-test-resp-" + os.urandom(6).hex()
    plain = Client(REDIS_URL, 1.0)
    scripted = Client(REDIS_URL, 2.0, (("SET", key, b"set up", "PX", 5000),))
    try:
        assert await plain.call("PING") == "PONG"
        assert not scripted.connected  # not until its first call (its setup runs first)
        assert await scripted.call("GET", key) == b"set up"
        connection = plain._connection
        assert connection is scripted._connection and connection is not None
        assert connection.users == 2 and connection.patience == 2.0  # the longest timeout of its clients
        scripted.close()  # the other client still uses it
        assert not connection.closed and await plain.call("PING") == "PONG"
        plain.close()
        assert connection.closed
    finally:
        plain.close()
        scripted.close()


async def test_the_calls_of_one_turn_of_the_loop_go_out_in_one_write() -> None:
    client = Client(REDIS_URL, 1.0)
    try:
        assert await client.call("PING") == "PONG"
        connection = client._connection
        assert connection is not None and connection.transport is not None
        writes: list[bytes] = []
        write = connection.transport.write
        connection.transport.write = lambda data: (writes.append(bytes(data)), write(data))[1]  # type: ignore[method-assign]
        answers = await asyncio.gather(*(client.call("ECHO", str(i)) for i in range(5)))
        assert answers == [str(i).encode() for i in range(5)] and len(writes) == 1
    finally:
        client.close()


async def test_unanswered_commands_ride_with_the_next_write_or_go_alone_soon() -> None:
    """A command whose reply is skipped waits for the next call's write (Redis then wakes once for
    both) and still reaches the server before it; with no call after it, it goes alone after DEFER."""
    client = Client(REDIS_URL, 1.0)
    key = "seance-test-resp-" + os.urandom(6).hex()
    try:
        assert await client.call("PING") == "PONG"
        connection = client._connection
        assert connection is not None and connection.transport is not None
        assert client.send_unanswered(encode(("SET", key, b"probe", "PX", 5000)))  # asks whether it may skip
        assert await client.call("GET", key) == b"probe" and connection.skips
        writes: list[bytes] = []
        write = connection.transport.write
        connection.transport.write = lambda data: (writes.append(bytes(data)), write(data))[1]  # type: ignore[method-assign]

        assert client.send_unanswered(encode(("SET", key, b"a", "PX", 5000)))
        await asyncio.sleep(0)  # a turn of the loop: held, not written
        assert writes == [] and connection.later
        assert await client.call("GET", key) == b"a"  # sent first, in the same write as the GET
        assert len(writes) == 1 and writes[0].index(b"SET") < writes[0].index(b"GET")

        assert client.send_unanswered(encode(("SET", key, b"b", "PX", 5000)))
        await asyncio.sleep(resp.DEFER * 5)  # nothing else to send: it goes alone
        assert len(writes) == 2 and b"SET" in writes[1] and b"GET" not in writes[1] and not connection.later
        assert await client.call("GET", key) == b"b"
    finally:
        client.close()


async def test_a_call_past_its_timeout_fails_alone_until_the_server_is_taken_as_gone() -> None:
    """Two clients on one connection: the short one's late call fails by itself, its reply dropped
    when it comes; the connection goes only when the oldest call has waited the longest timeout."""
    delay = 0.3

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):  # (the test's end)
            while data := await reader.read(1 << 16):
                for _ in range(data.count(b"PING")):
                    await asyncio.sleep(delay)
                    writer.write(b"+PONG\r\n")

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    short, long = Client(f"redis://127.0.0.1:{port}/0", 0.1), Client(f"redis://127.0.0.1:{port}/0", 1.0)
    try:
        assert await long.call("PING") == "PONG"
        with pytest.raises(TimeoutError):
            await short.call("PING")  # answered after 0.3 s: too late for it
        assert long._connection is short._connection and long.connected
        assert await long.call("PING") == "PONG"  # its own reply, not the one the short call dropped
        delay = 1.5  # now past every client's timeout: the server is taken as gone
        with pytest.raises(TimeoutError):
            await long.call("PING")
        assert not long.connected and not short.connected
    finally:
        short.close()
        long.close()
        server.close()


def test_urls() -> None:
    client = Client("rediss://user:p%40ss@cache.internal:6380/3", 1.0)
    assert (client.host, client.port, client.tls, client.username, client.password, client.db) == (
        "cache.internal", 6380, True, "user", "p@ss", 3,
    )  # fmt: skip
    plain = Client("redis://127.0.0.1", 1.0)
    assert (plain.port, plain.tls, plain.password, plain.db) == (6379, False, None, 0)
    with pytest.raises(ValueError, match="redis://"):
        Client("http://x", 1.0)


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    """A port nothing listens on (bound, not listening, for the test's duration)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_subscription_gives_messages_to_its_handler_and_replies_to_their_calls() -> None:
    async def go() -> tuple[list[object], list[object], int]:
        messages: list[object] = []
        connection = Subscription(1.0, messages.append)
        connection.loop = asyncio.get_running_loop()
        futures = [connection.loop.create_future() for _ in range(2)]
        for future in futures:
            connection.waiting.append(future)
            connection.deadlines.append(0.0)
            connection.sent.append(0.0)
        closed = []
        connection.on_close.append(lambda: closed.append(1))
        data = (
            b"*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
            b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*-1\r\n"
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        )
        for cut in range(0, len(data), 7):  # however the bytes arrive
            connection.data_received(data[cut : cut + 7])
        connection.fail(ConnectionError("done"))
        connection.fail(ConnectionError("again"))
        return [f.result() for f in futures], messages, len(closed)

    replies, messages, closed = asyncio.run(go())
    assert replies == [[b"subscribe", b"__redis__:invalidate", 1], [b"pong", b""]]
    assert messages == [[b"a", b"b"], None]
    assert closed == 1  # on_close runs once
