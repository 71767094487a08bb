"""Item 13 of issue 13: with `--workers 2`, connections are shared between the workers.

Which worker holds a connection is read from outside, as `ss -tnp` would: the server side of each
client connection is a socket inode in /proc/net/tcp, and the worker whose descriptors include that
inode holds it. Nothing in the gateway says which worker answered."""

from __future__ import annotations

import os
import select
import signal
import socket
from collections import Counter

from tests.gateway.conftest import GatewayFactory, Running
from tests.reliability.raw import status_of

CONNECTIONS = 64


def workers_of(parent: int) -> list[int]:
    """The live child processes of `parent` (Linux /proc)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != b"Z":
            children.append(int(entry))
    return sorted(children)


def connections_per_process(pids: list[int], port: int, state: str = "01") -> Counter[int]:
    """TCP sockets on local `port` held by each of `pids` (loopback, IPv4), in `state` (01:
    established, 0A: listening)."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == state:
                inodes.add(fields[9])
    held: Counter[int] = Counter()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


def port_of(served: Running) -> int:
    return int(served.url.rpartition(":")[2])


def complete(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    length = next(int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:"))
    return len(body) >= length


def open_answered(served: Running, count: int) -> list[socket.socket]:
    """`count` keep-alive connections opened at once, as a load generator (wrk) opens them, each
    with one request answered (so a worker accepted it)."""
    port = port_of(served)
    clients = [socket.socket() for _ in range(count)]
    for client in clients:
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
    for client in clients:
        select.select([], [client], [], 10)
        client.settimeout(10)
        client.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
    for client in clients:
        answer = b""
        while not complete(answer):
            chunk = client.recv(65536)
            assert chunk, "the gateway closed a keep-alive connection"
            answer += chunk
        assert status_of(answer) == 200, answer[:200]
    return clients


def test_two_workers_share_64_keepalive_connections(gateway: GatewayFactory) -> None:
    """Each worker holds between 35 % and 65 % of 64 connections. The kernel spreads connections
    over the workers' SO_REUSEPORT sockets by a hash of their addresses, like a fair coin: one
    sample of 64 lands outside 23..41 with a probability of 1.7 %, so a second sample of fresh
    connections is taken when the first does (a fair spread fails both 3 times in 10,000; the
    uneven spread this test guards against — 64/0 — fails every sample)."""
    served = gateway(None, args=("--workers", "2", "--allow-no-auth"), master_key=None)
    pids = workers_of(served.process.pid)
    assert len(pids) == 2, pids
    # each worker listens on a socket of its own (SO_REUSEPORT); the parent listens on none
    listening = connections_per_process([served.process.pid, *pids], port_of(served), state="0A")
    assert [listening[pid] for pid in [served.process.pid, *pids]] == [0, 1, 1], listening
    shares: list[list[int]] = []
    for _ in range(2):
        clients = open_answered(served, CONNECTIONS)
        try:
            held = connections_per_process(pids, port_of(served))
        finally:
            for client in clients:
                client.close()
        counts = [held[pid] for pid in pids]
        assert sum(counts) == CONNECTIONS, counts
        shares.append(counts)
        if all(0.35 * CONNECTIONS <= count <= 0.65 * CONNECTIONS for count in counts):
            break
    else:
        raise AssertionError(f"connections per worker in two samples of {CONNECTIONS}: {shares}")
    assert served.stop() in (0, -signal.SIGTERM)
