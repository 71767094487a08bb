"""Instructions per request, counted by valgrind's callgrind: a before/after of a change that does
not move when the machine is busy.

`run.py` measures time, which is what users feel, but on a 2-core machine shared with other work its
CPU-per-request figure swings by ±10 % from run to run, more than the changes it has to judge.
callgrind counts the instructions the gateway process executes instead: the same code, config and
requests give the same count to within a fraction of a percent, whatever else the machine is doing.
It runs the gateway 30-100 times slower, so this measures a few hundred sequential requests, not load.

    python3 bench/instructions.py                       # the working tree
    python3 bench/instructions.py --rev fb20996 --rev HEAD --requests 300
    python3 bench/instructions.py --scenario stream --access-log
    python3 bench/instructions.py --scenario embed            # /v1/embeddings, run.py's 256-float answer
    python3 bench/instructions.py --scenario embed-1536       # text-embedding-3-small's 1,536 floats
    python3 bench/instructions.py --gateway-arg=--no-db        # without the keys/spend store
    python3 bench/instructions.py --virtual-key                # a key from /key/generate, not the master key
    python3 bench/instructions.py --virtual-key '{"rpm_limit": 1000000}' --scenario chat-miss
    python3 bench/instructions.py --keep /tmp/cg               # keep callgrind's files (callgrind_annotate)
    python3 bench/instructions.py --calls --rev HEAD --rev .   # Python calls a request instead, function by
                                                # function, and what changed between the revisions
    python3 bench/instructions.py --config-extra 'general_settings: {proxy_batch_write_at: 3600}'
                                                # the request path alone: no spend write while counting
    python3 bench/instructions.py --python /tmp/debian-venv/bin/python   # another interpreter (its own venv)
    python3 bench/instructions.py --deployment-extra 'rpm: 1000000000' --deployment-extra 'tpm: 1000000000000'
                                                # lines added to the deployment's litellm_params

The count is the gateway process's: the SQLite spend writer runs in a process of its own
(`store/sqlite_writer.py`), which valgrind leaves uncounted; with `DATABASE_URL` the COPY is counted.

Each revision's `src/` is exported with `git archive` (the working tree for "."), served with the
repository's `.venv` interpreter under `PYTHONPATH`, warmed up, then counted over the measured
requests only (callgrind's instrumentation is switched on and off around them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bodies

ROOT = Path(__file__).resolve().parent.parent
CALLCOUNT = Path(__file__).resolve().parent / "callcount"  # its sitecustomize.py counts calls (--calls)
PYTHON = ROOT / ".venv" / "bin" / "python"
MASTER_KEY = "sk-bench-instructions"

# The answers and requests of run.py's scenarios (bodies.py), so that a count sees what the timed
# runs do: with its own smaller answers this tool once counted the same work for two revisions
# whose embeddings differed by 25 % in run.py (the 256-float answer was parsed whole, the 1,536-float
# one here was not).
CHAT = bodies.openai_chat_json().encode()
STREAM = bodies.openai_chat_sse().encode()
EMBEDDINGS = bodies.openai_embeddings_json().encode()  # 256 floats, pretty-printed, as OpenAI answers
# text-embedding-3-small's full size: 1,536 floats (over the gateway's whole-parse limit)
EMBEDDINGS_1536 = bodies.openai_embeddings_json(1536).encode()
_CHAT = bodies.chat_request("bench", stream=False).encode()
# a number in the input (%d): with a response cache on, every request is a miss
_EMBED = bodies.embeddings_request("bench").encode().replace(b'."', b'. %d"', 1)
REQUESTS = {
    "chat": _CHAT,
    # a new seed each time (%d): with a response cache on, every request is a miss
    "chat-miss": _CHAT[:-1] + b',"seed":%d}',
    "stream": bodies.chat_request("bench", stream=True).encode(),
    "embed": _EMBED,
    "embed-1536": _EMBED[:-1] + b',"dimensions":1536}',
}
PATHS = {"embed": "/v1/embeddings", "embed-1536": "/v1/embeddings"}  # the others: /v1/chat/completions


class Upstream(asyncio.Protocol):
    """A keep-alive HTTP/1.1 server answering every request with the chat answer, the stream or
    the embeddings."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            length = int(match.group(1)) if match else 0
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], rest[length:]
            if b'"input"' in body:
                answer = EMBEDDINGS_1536 if b'"dimensions":1536' in body else EMBEDDINGS
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n" % len(answer) + answer
                )
            elif b'"stream":true' in body:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"content-length: %d\r\n\r\n" % len(STREAM) + STREAM
                )
            else:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n" % len(CHAT) + CHAT
                )


def serve_upstream(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def export(rev: str, into: Path) -> Path:
    """The `src/` of `rev` ("." = the working tree; a folder holding a src/: that one) under `into`."""
    if rev != "." and (Path(rev) / "src").is_dir():
        return Path(rev) / "src"
    target = into / rev.replace("/", "_")
    if rev == ".":
        shutil.copytree(ROOT / "src", target / "src")
    else:
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def request(
    conn: http.client.HTTPConnection, body: bytes, key: str = MASTER_KEY, path: str = "/v1/chat/completions"
) -> bytes:
    conn.request("POST", path, body, {"authorization": f"Bearer {key}", "content-type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"gateway answered {response.status}: {data[:300]!r}")
    return data


def virtual_key(conn: http.client.HTTPConnection, fields: str) -> str:
    """A key from /key/generate (by default no limits, no budget): what an application is given."""
    body = {"key_alias": f"bench-instructions-{time.monotonic_ns()}", **json.loads(fields or "{}")}
    answer = request(conn, json.dumps(body).encode(), path="/key/generate")
    return str(json.loads(answer)["key"])


def body_of(scenario: str, n: int) -> bytes:
    body = REQUESTS[scenario]
    return body % n if b"%d" in body else body


def first_number() -> int:
    """Where a run's request numbers start: anew each run, always 10 digits. Numbered from 0, the
    second run within a Redis cache's TTL sent the first's bodies again and counted hits: chat-miss
    with seance-all-redis's features measured 597k instructions a request, then 401k."""
    return 10**9 + secrets.randbelow(10**9 - 10**6)


def count(
    src: Path,
    config: Path,
    scenario: str,
    n: int,
    warmup: int,
    extra: list[str],
    work: Path,
    vkey: str | None = None,
    calls: Path | None = None,
    python: Path = PYTHON,
) -> int:
    """Instructions over the `n` measured requests; with `calls`, Python calls instead (counted by
    callcount/sitecustomize.py without valgrind, written to `calls` function by function)."""
    port = free_port()
    out = work / f"callgrind.{os.getpid()}.{time.monotonic_ns()}"
    env = {**os.environ, "PYTHONPATH": str(src), "LITELLM_MASTER_KEY": MASTER_KEY, "PYTHONHASHSEED": "0"}
    # Background work on a timer lands in the window at valgrind's pace (~50x slower), over a few
    # hundred requests instead of thousands: the stored-models poll (every 5 s) added ~8k a request
    # to every run with the store. It is not the request path; keep it out of the count.
    env.setdefault("SEANCE_MODELS_POLL", "3600")
    command = [
        str(python), "-m", "seance", "gateway", "--config", str(config), "--port", str(port), "--workers", "1",
        *extra,
    ]  # fmt: skip
    if calls is None:
        command[:0] = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    else:
        env.update(PYTHONPATH=f"{CALLCOUNT}{os.pathsep}{src}", SEANCE_CALLCOUNT=str(calls))
        calls.unlink(missing_ok=True)
    log = open(work / "gateway.log", "ab")  # noqa: SIM115
    # cwd: the store's default SQLite file (keys, spend) lands in the run's own folder
    gateway = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=work)
    first = first_number()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        deadline = time.monotonic() + 300
        while True:
            try:
                request(conn, body_of(scenario, first), path=PATHS.get(scenario, "/v1/chat/completions"))
                break
            except (ConnectionError, OSError):
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise RuntimeError("the gateway did not start; see " + str(work / "gateway.log")) from None
                conn.close()
                time.sleep(1)
        key = virtual_key(conn, vkey) if vkey is not None else MASTER_KEY
        for i in range(warmup):
            request(conn, body_of(scenario, first + i + 1), key, PATHS.get(scenario, "/v1/chat/completions"))
        _measure(gateway.pid, True, calls)
        for i in range(n):
            request(conn, body_of(scenario, first + warmup + i + 1), key, PATHS.get(scenario, "/v1/chat/completions"))
        _measure(gateway.pid, False, calls)
        conn.close()
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        try:
            gateway.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(gateway.pid, signal.SIGKILL)
            gateway.wait()
        log.close()
    if calls is not None:
        return sum(json.loads(calls.read_text()).values())
    total = 0
    for path in work.glob(out.name + "*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total = max(total, int(line.split()[1]))
    if not total:
        raise RuntimeError(f"callgrind wrote no totals ({out})")
    return total


def _measure(pid: int, on: bool, calls: Path | None) -> None:
    """Start or stop counting: callgrind's instrumentation, or the call counter (its signals; the
    event loop runs a Python signal handler at its next turn, so the first request waits for it)."""
    if calls is None:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(pid)], check=True, capture_output=True)
        return
    os.kill(pid, signal.SIGUSR1 if on else signal.SIGUSR2)
    if on:
        time.sleep(0.5)  # (the counter sends no reply: a pause its handler's turn fits in)
        return
    deadline = time.monotonic() + 30
    while not calls.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway wrote no call counts (bench/callcount/sitecustomize.py)")
        time.sleep(0.05)


def calls_table(runs: dict[str, dict[str, int]], requests: int, top: int = 40) -> str:
    """Calls a request by function: the first revision's most called, or with more revisions, the
    functions whose count changed most between the first two."""
    (first, a), *rest = runs.items()
    if not rest:
        rows = sorted(a.items(), key=lambda item: -item[1])[:top]
        lines = [f"| {name} | {n / requests:.2f} |" for name, n in rows]
        return f"| function ({first}) | calls a request |\n|---|---:|\n" + "\n".join(lines)
    second, b = rest[0]
    changed = {name: (b.get(name, 0) - a.get(name, 0)) / requests for name in a.keys() | b.keys()}
    rows = sorted(((d, name) for name, d in changed.items() if abs(d) >= 0.5), key=lambda row: -abs(row[0]))[:top]
    lines = [f"| {name} | {a.get(name, 0) / requests:.2f} | {b.get(name, 0) / requests:.2f} | {d:+.2f} |"
             for d, name in rows]  # fmt: skip
    totals = f"| (all) | {sum(a.values()) / requests:.1f} | {sum(b.values()) / requests:.1f} | |"
    header = f"| function | {first} | {second} | change |\n|---|---:|---:|---:|\n"
    return header + "\n".join([totals, *lines])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rev", action="append", help="revision to measure (repeatable; '.' = working tree, or a folder with a src/)"
    )
    parser.add_argument("--scenario", choices=sorted(REQUESTS), default="chat")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="measure each revision this many times, interleaved")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument(
        "--virtual-key", nargs="?", const="{}", help="call with a key from /key/generate (optional JSON: its fields)"
    )
    parser.add_argument(
        "--config-extra", default="", help="YAML appended to the config: 'general_settings: {disable_spend_logs: true}'"
    )
    parser.add_argument(
        "--deployment-extra",
        action="append",
        default=[],
        help="a YAML line added to the deployment's litellm_params (repeatable): 'rpm: 1000000000'",
    )
    parser.add_argument("--keep", type=Path, help="copy callgrind's output files into this folder")
    parser.add_argument(
        "--calls", action="store_true", help="count Python calls a request, by function, instead (no valgrind)"
    )
    parser.add_argument(
        "--python",
        type=Path,
        default=PYTHON,
        help="the interpreter that runs the gateway (a venv's python with its dependencies): .venv's by default",
    )
    parser.add_argument("--top", type=int, default=40, help="--calls: the functions shown (the most called)")
    parser.add_argument(
        "--gateway-arg", action="append", default=[], help="passed to `seance gateway` (repeatable): --no-db, --metrics"
    )
    args = parser.parse_args(argv)
    if not args.calls and not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    revs = args.rev or ["."]
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(upstream_port)])
    results: dict[str, list[float]] = {rev: [] for rev in revs}
    called: dict[str, dict[str, int]] = {}  # --calls: each revision's first count, by function
    unit = "calls" if args.calls else "instructions"
    with tempfile.TemporaryDirectory(prefix="seance-instr-") as tmp:
        work = Path(tmp)
        config = work / "config.yaml"
        params = "".join(f"      {line}\n" for line in args.deployment_extra)
        config.write_text(
            "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
            f"      api_base: http://127.0.0.1:{upstream_port}/v1\n      api_key: sk-upstream\n{params}"
            f"{args.config_extra}\n"
        )
        sources = {rev: export(rev, work) for rev in revs}
        try:
            for _ in range(args.repeat):
                for rev in revs:
                    source = sources[rev]
                    extra = [*args.gateway_arg, *(["--access-log"] if args.access_log else [])]
                    counted = work / "calls.json" if args.calls else None  # (read before the next run)
                    total = count(
                        source, config, args.scenario, args.requests, args.warmup, extra, work, args.virtual_key,
                        counted, args.python,
                    )  # fmt: skip
                    results[rev].append(total / args.requests)
                    if counted is not None:
                        called.setdefault(rev, json.loads(counted.read_text()))
                    print(f"{rev}: {total / args.requests:,.0f} {unit}/request", flush=True)
        finally:
            upstream.terminate()
            upstream.wait()
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                for found in work.glob("callgrind.*"):
                    shutil.copy(found, args.keep / found.name)
    if called:
        print("\n" + calls_table(called, args.requests, args.top))
        return 0
    base = min(results[revs[0]])
    print(f"\n| revision | instructions/request ({args.scenario}, {args.requests} requests) | vs {revs[0]} |")
    print("|---|---:|---:|")
    for rev in revs:
        best = min(results[rev])
        print(f"| {rev} | {best:,.0f} | {best / base:.3f} |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-upstream":
        with contextlib.suppress(KeyboardInterrupt):
            serve_upstream(int(sys.argv[2]))
        raise SystemExit(0)
    raise SystemExit(main(sys.argv[1:]))
