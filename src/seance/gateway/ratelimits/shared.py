"""Rate-limit counters in Redis/Valkey, shared by every worker and replica: one Lua script checks and
counts every scope of a request at once (one round trip, atomic), another settles its tokens and
ends its in-flight count after the answer (sent without waiting for a reply, and with none asked
for where the server can skip it: SharedStore.release). The scripts read the server's clock (TIME), so replicas
with drifting clocks still agree on each window.

    <prefix><scope>      a hash: s (window start, ms), r (requests), t (tokens); expires with the window
    <prefix><scope>:p    a sorted set of the requests in flight, scored by when they are taken as lost

Redis unreachable (refused, reset, no answer within ANSWER_TIMEOUT, or answering errors: loading,
read-only, out of memory): one WARNING, and requests are counted in this process (memory.py) until a
background check every few seconds finds
Redis again. A request is settled where it was counted. The keys of one request may be in different
hash slots: a standalone Redis/Valkey (what `seance synth` provisions), not a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from seance.gateway.ratelimits import PARALLEL_TTL, WINDOW, Counts, Entry, Held, Verdict
from seance.gateway.ratelimits.memory import MemoryStore
from seance.gateway.resp import Client, ReplyError, bulk

if TYPE_CHECKING:
    from seance.gateway.shared_state import RedisSettings

log = logging.getLogger("seance.gateway")

PREFIX = "seance:rl:"
PROBE_EVERY = 3.0  # seconds between checks for Redis while it is down
# A connection or answer later than this counts as unreachable. Longer than shared_state's
# SOCKET_TIMEOUT: a worker whose event loop lags under a burst reads even a fast answer late, and
# falling back then would loosen every limit exactly when it matters.
ANSWER_TIMEOUT = 2.0

# KEYS: per entry, its window hash and its in-flight set
# ARGV: window ms, parallel ttl ms, estimate, request id, then per entry: rpm, tpm, parallel (-1: none)
# -> JSON text: [admitted, refusing entry (1-based), limit (1 rpm, 2 tpm, 3 parallel), now,
#    [per entry: [window start, requests, tokens, in flight]]], times in seconds to the ms: the
#    Verdict as it is made, read by orjson in one call, where RESP's array of integers cost ~4k
#    instructions an item to parse in Python and as much again to rearrange (bench/instructions.py).
#    '%d' writes Lua's numbers (doubles) exactly up to 2^53, '%.3f' a time in ms as seconds.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, ttl, estimate, id = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local n = #KEYS / 2
local s, r, tk, p, fresh = {}, {}, {}, {}, {}
local refused, code = 0, 0
for i = 1, n do
  local rpm, tpm, par = tonumber(ARGV[3 * i + 2]), tonumber(ARGV[3 * i + 3]), tonumber(ARGV[3 * i + 4])
  local w = redis.call('HMGET', KEYS[2 * i - 1], 's', 'r', 't')
  local start = tonumber(w[1])
  if start and now - start < window then
    s[i], r[i], tk[i], fresh[i] = start, tonumber(w[2]) or 0, tonumber(w[3]) or 0, false
  else
    s[i], r[i], tk[i], fresh[i] = now, 0, 0, true
  end
  p[i] = 0
  if par >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
    p[i] = redis.call('ZCARD', KEYS[2 * i])
  end
  if refused == 0 then
    if rpm >= 0 and r[i] >= rpm then refused, code = i, 1
    elseif tpm >= 0 and tk[i] >= tpm then refused, code = i, 2
    elseif par >= 0 and p[i] >= par then refused, code = i, 3 end
  end
end
local admitted = 0
if refused == 0 then
  admitted = 1
  for i = 1, n do
    local key = KEYS[2 * i - 1]
    if fresh[i] then
      redis.call('HSET', key, 's', now, 'r', 1, 't', estimate)
      redis.call('PEXPIRE', key, window)
    else
      redis.call('HINCRBY', key, 'r', 1)
      redis.call('HINCRBY', key, 't', estimate)
    end
    r[i], tk[i] = r[i] + 1, tk[i] + estimate
    if tonumber(ARGV[3 * i + 4]) >= 0 then
      redis.call('ZADD', KEYS[2 * i], now + ttl, id)
      redis.call('PEXPIRE', KEYS[2 * i], ttl)
      p[i] = p[i] + 1
    end
  end
end
local counts = {}
for i = 1, n do counts[i] = string.format('[%.3f,%d,%d,%d]', s[i] / 1000, r[i], tk[i], p[i]) end
return string.format('[%d,%d,%d,%.3f,[%s]]', admitted, refused, code, now / 1000, table.concat(counts, ','))
"""

# KEYS: as ACQUIRE's; ARGV: window ms, per entry '1' if it holds an in-flight place else '0' (one
# string), then JSON text: [estimate, tokens used, request id, per entry: its window start when
# counted (seconds, to the ms, as ACQUIRE gave it)] — made by one orjson call: the arguments one by
# one cost ~15k instructions to format (bench/instructions.py).
RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, parallel, v = tonumber(ARGV[1]), ARGV[2], cjson.decode(ARGV[3])
local estimate, used, id = v[1], v[2], v[3]
for i = 1, #KEYS / 2 do
  local key = KEYS[2 * i - 1]
  local start = tonumber(redis.call('HGET', key, 's'))
  if start and now - start < window then
    if start == math.floor(v[3 + i] * 1000 + 0.5) then
      redis.call('HINCRBY', key, 't', used - estimate)
    else
      redis.call('HINCRBY', key, 't', used)
    end
  elseif used > 0 then
    redis.call('HSET', key, 's', now, 'r', 0, 't', used)
    redis.call('PEXPIRE', key, window)
  end
  if string.sub(parallel, i, i) == '1' then redis.call('ZREM', KEYS[2 * i], id) end
end
return 1
"""

LIMIT_NAMES = ("", "rpm", "tpm", "parallel")
SHAS = {script: hashlib.sha1(script.encode()).hexdigest() for script in (ACQUIRE, RELEASE)}
WINDOW_MS, PARALLEL_TTL_MS = int(WINDOW * 1000), int(PARALLEL_TTL * 1000)
MAX_REMEMBERED = 4096  # sets of entries whose commands are kept encoded; past it the table starts again


class Commands:
    """The two script calls of one set of entries, encoded once but for each request's own values
    (its estimate, id, tokens used, window starts): encoding every argument of every call was
    ~40k instructions of a request's ~590k (bench/instructions.py, issue 10's Redis target).

    acquire: EVALSHA sha nkeys keys… window ttl | estimate id | per entry: rpm tpm parallel
    release: EVALSHA sha nkeys keys… window parallel | [estimate, used, id, per entry: start]"""

    __slots__ = ("acquire_head", "acquire_tail", "entries", "keys", "release_head", "release_sha")

    def __init__(self, entries: tuple[Entry, ...], keys: list[str]) -> None:
        self.entries = entries
        self.keys = keys
        n = len(entries)
        keyed = bulk(len(keys)) + b"".join([bulk(key) for key in keys])
        self.acquire_head = b"*%d\r\n%b%b%b%b%b" % (
            7 + 5 * n, bulk("EVALSHA"), bulk(SHAS[ACQUIRE]), keyed, bulk(WINDOW_MS), bulk(PARALLEL_TTL_MS),
        )  # fmt: skip
        self.acquire_tail = b"".join(
            [bulk(_or_none(limit)) for _, rpm, tpm, parallel in entries for limit in (rpm, tpm, parallel)]
        )
        self.release_sha = bulk("EVALSHA") + bulk(SHAS[RELEASE])
        parallel = "".join("0" if parallel is None else "1" for *_, parallel in entries)
        self.release_head = b"*%d\r\n%b%b%b%b" % (6 + 2 * n, self.release_sha, keyed, bulk(WINDOW_MS), bulk(parallel))

    def acquire(self, estimate: int, request_id: bytes) -> bytes:
        e = b"%d" % estimate
        return b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n%b" % (
            self.acquire_head, len(e), e, len(request_id), request_id, self.acquire_tail,
        )  # fmt: skip

    def release(self, estimate: int, used: int, request_id: str, counts: Counts) -> bytes:
        values = orjson.dumps([estimate, used, request_id, *[count[0] for count in counts]])
        return b"%b$%d\r\n%b\r\n" % (self.release_head, len(values), values)

    def as_eval(self, command: bytes, script: str) -> bytes:
        """The same call with the script itself (EVAL), for a server that does not have it."""
        sha = self.release_sha if script is RELEASE else bulk("EVALSHA") + bulk(SHAS[ACQUIRE])
        count, _, rest = command.partition(b"\r\n")
        return b"%b\r\n%b%b%b" % (count, bulk("EVAL"), bulk(script), rest[len(sha) :])


class _Settle(tuple[Any, ...]):
    """Waits for a release's reply in the connection itself: no task wakes up for it. NOSCRIPT (a
    flushed or new server) sends it again as EVAL; any other failure means Redis is down.
    (store, commands, command): a tuple, made in C — a class with an __init__ cost ~2.5k
    instructions a request."""

    __slots__ = ()

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, error: BaseException) -> None:
        store, commands, command = self
        if isinstance(error, ReplyError) and str(error).startswith("NOSCRIPT"):
            if store.client.send_nowait(commands.as_eval(command, RELEASE), _Lost(store)):
                return
            error = ConnectionError("the connection to Redis was closed")
        _Lost(store).set_exception(error)


class _Lost:
    """A release that failed: lost (its tokens stay at the estimate; its in-flight place ends after
    PARALLEL_TTL), and Redis taken as down."""

    __slots__ = ("store",)

    def __init__(self, store: SharedStore) -> None:
        self.store = store

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, error: BaseException) -> None:
        self.store._went_down(error)


class SharedStore:
    def __init__(self, redis: RedisSettings, prefix: str = PREFIX, probe_every: float = PROBE_EVERY) -> None:
        self.where = redis.where
        self.prefix = prefix
        self.probe_every = probe_every
        self.local = MemoryStore()  # while Redis is down
        self.down = False
        # connects on first use, in the worker's own loop; every connection loads both scripts, so
        # a release can be sent without waiting for its reply (NOSCRIPT only after a SCRIPT FLUSH)
        setup = tuple(("SCRIPT", "LOAD", script) for script in (ACQUIRE, RELEASE))
        self.client = Client(redis.url, ANSWER_TIMEOUT, setup)
        self._probe: asyncio.Task[None] | None = None
        self._commands: dict[int, Commands] = {}
        self._releasing: set[asyncio.Task[None]] = set()

    def keys(self, entries: tuple[Entry, ...]) -> list[str]:
        keys: list[str] = []
        for name, _, _, _ in entries:
            window = self.prefix + name
            keys += (window, window + ":p")
        return keys

    def commands(self, entries: tuple[Entry, ...]) -> Commands:
        """The entries' encoded commands: the limits hook asks with the same tuple again and again
        (its Plans keep them), so they are found by identity."""
        found = self._commands.get(id(entries))
        if found is None or found.entries is not entries:  # (an id is only reused once its tuple is gone)
            if len(self._commands) >= MAX_REMEMBERED:
                self._commands.clear()
            found = self._commands[id(entries)] = Commands(entries, self.keys(entries))
        return found

    async def acquire(self, entries: tuple[Entry, ...], estimate: int, request_id: str) -> Verdict:
        if self.down:
            return self.local.acquire_now(entries, estimate)
        commands = self.commands(entries)
        command = commands.acquire(estimate, request_id.encode())
        try:
            try:
                reply = await self.client.request(command)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                # a flushed or new server: EVAL sends the script, and caches it there for EVALSHA
                reply = await self.client.request(commands.as_eval(command, ACQUIRE))
                self.client.send_nowait(("SCRIPT", "LOAD", RELEASE))  # for the releases to come
        except (OSError, TimeoutError, ReplyError) as exc:
            self._went_down(exc)
            return self.local.acquire_now(entries, estimate)
        out = orjson.loads(reply)
        return Verdict(self, out[0] == 1, out[3], out[4], out[1] - 1, LIMIT_NAMES[out[2]])

    async def release(self, held: Held, used: int) -> None:
        """Sent without waiting: the after hook has nothing to wait for. Its reply is not even sent
        (CLIENT REPLY SKIP: reading it was ~10k instructions a request) where the server can skip
        it, else read by the connection (_Settle). What skipping gives up: after a SCRIPT FLUSH,
        the releases sent before the next acquire meets NOSCRIPT (and loads the scripts again) are
        lost, as a release is when Redis fails: tokens left at the estimate, an in-flight place
        held until PARALLEL_TTL. A new connection (a restarted or failed-over server) loads both
        scripts first. Not connected (the connection closed since the acquire): sent by a task
        that connects first, so an in-flight place is not held until PARALLEL_TTL."""
        _, entries, counts, estimate, request_id = held
        commands = self.commands(entries)
        command = commands.release(estimate, used, request_id, counts)
        if self.client.send_unanswered(command, _Settle((self, commands, command))):
            return
        task = asyncio.ensure_future(self._release(commands, command))
        self._releasing.add(task)  # a reference, or the loop may drop the task before it ends
        task.add_done_callback(self._releasing.discard)

    async def _release(self, commands: Commands, command: bytes) -> None:
        try:
            try:
                await self.client.request(command)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await self.client.request(commands.as_eval(command, RELEASE))
        except (OSError, TimeoutError, ReplyError) as exc:
            # lost: its tokens stay at the estimate; its in-flight place ends after PARALLEL_TTL
            self._went_down(exc)

    def _went_down(self, exc: BaseException) -> None:
        """Redis cannot be reached, or answers errors (loading, read-only, out of memory): count in
        this process, and watch in the background for its return."""
        if self.down:
            return
        self.down = True
        log.warning(
            "rate limits: Redis at %s is unreachable (%s: %s); counting in this process until it is back "
            "(checked every %g s)", self.where, type(exc).__name__, exc, self.probe_every,
        )  # fmt: skip
        self._probe = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.probe_every)
            try:
                await self.client.call("PING")
            except (OSError, TimeoutError, ReplyError):
                continue
            self.down = False
            log.info("rate limits: Redis at %s is back; limits are shared again", self.where)
            return


def _or_none(limit: int | None) -> int:
    return -1 if limit is None else limit
