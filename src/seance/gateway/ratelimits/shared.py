"""Rate-limit counters in Redis/Valkey, shared by every worker and replica: one Lua script checks and
counts every scope of a request at once (one round trip, atomic), another settles its tokens and
ends its in-flight count after the answer (sent without waiting for a reply, and with none asked
for where the server can skip it: SharedStore.release). The scripts read the server's clock (TIME), so replicas
with drifting clocks still agree on each window.

    <prefix><scope>      a hash: s (window start, ms), r (requests), t (tokens); with a parallel
                         limit, the ring of places in flight too (g, a0, a1, a2: see ACQUIRE)

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

from seance.gateway.ratelimits import PARALLEL_TTL, SETTLE, WINDOW, Counts, Entry, Held, Verdict
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

# Both scripts are measured by the instructions Redis 7.0 spends on them (redis-server under
# callgrind, one entry with rpm, tpm and parallel limits, acquire + release pipelined): ~18k per
# EVALSHA before the script does anything, ~6-8k per redis.call (TIME ~9k with its conversion),
# ~2k per tonumber (strtod) and ~2.5k per number made a string (string.format; Lua's own '%.14g'
# costs more). So they make as few calls and conversions as they can: a scope's counters in one
# hash, read by one HMGET; numbers only Redis reads kept as the strings they came as. The sorted
# set of requests in flight they replaced (ZREMRANGEBYSCORE, ZCARD, ZADD, PEXPIRE and ZREM, a
# member per request) made the pair ~209k; this ~173k. Per request of bench/instructions.py's
# chat-miss with such a key, Redis went from ~243k instructions to ~204k (with the ~178k pair).
#
# KEYS: per entry, its hash
# ARGV: span ms, estimate, then per entry: rpm, tpm, parallel (-1: none)
# -> JSON text: [admitted, refusing entry (1-based), limit (1 rpm, 2 tpm, 3 parallel), now,
#    [per entry: [window start, requests, tokens, in flight, window start in ms, generation]]],
#    times in seconds to the ms: the Verdict as it is made, read by orjson in one call, where RESP's
#    array of integers cost ~4k instructions an item to parse in Python and as much again to
#    rearrange (bench/instructions.py). '%d' writes Lua's numbers (doubles) exactly up to 2^53.
#
# In flight: a ring of three counters per scope, a0 a1 a2, the places taken in the last three
# generations (g: the latest; a generation is `span` ms, half of PARALLEL_TTL, on the server's
# clock). A new generation reuses the slot of the one three before it: the places still counted
# there are lost (their worker died before releasing them), ended between 2 and 3 spans — 1 and
# 1.5 PARALLEL_TTL — after they were taken. The hash lives until then (PEXPIREAT at each new
# generation); without a parallel limit, for its window (PEXPIRE when it opens).
ACQUIRE = """
local SLOTS = {'a0', 'a1', 'a2'}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window, span, estimate = %(window)d, tonumber(ARGV[1]), ARGV[2]
local e = tonumber(estimate)
local g = math.floor(now / span)
local n = #KEYS
local w, s, r, tk, p = {}, {}, {}, {}, {}
local refused, code = 0, 0
for i = 1, n do
  local par = ARGV[3 * i + 2]
  local h
  if par ~= '-1' then
    h = redis.call('HMGET', KEYS[i], 's', 'r', 't', 'g', 'a0', 'a1', 'a2')
    local last, a = tonumber(h[4]), {tonumber(h[5]) or 0, tonumber(h[6]) or 0, tonumber(h[7]) or 0}
    if last ~= g then
      if not last or g - last >= 3 then a = {0, 0, 0}
      else for k = last + 1, g do a[k %% 3 + 1] = 0 end end
      h[4] = false
    end
    h[5] = a
    p[i] = a[1] + a[2] + a[3]
  else
    h = redis.call('HMGET', KEYS[i], 's', 'r', 't')
    h[5] = false
    p[i] = 0
  end
  local start = tonumber(h[1])
  if start and now - start < window then
    s[i], r[i], tk[i] = start, tonumber(h[2]) or 0, tonumber(h[3]) or 0
  else
    s[i], r[i], tk[i], h[1] = now, 0, 0, false
  end
  w[i] = h
  if refused == 0 then
    local rpm, tpm = ARGV[3 * i], ARGV[3 * i + 1]
    if rpm ~= '-1' and r[i] >= tonumber(rpm) then refused, code = i, 1
    elseif tpm ~= '-1' and tk[i] >= tonumber(tpm) then refused, code = i, 2
    elseif h[5] and p[i] >= tonumber(par) then refused, code = i, 3 end
  end
end
local admitted = 0
if refused == 0 then
  admitted = 1
  local k = g %% 3 + 1
  for i = 1, n do
    local key, h = KEYS[i], w[i]
    local a = h[5]
    r[i], tk[i] = r[i] + 1, tk[i] + e
    if not h[1] then
      redis.call('HSET', key, 's', string.format('%%d', now), 'r', '1', 't', estimate)
      if not a then redis.call('PEXPIRE', key, '%(window)d') end
    elseif not a or not h[4] then
      redis.call('HINCRBY', key, 'r', '1')
      if e ~= 0 then redis.call('HINCRBY', key, 't', estimate) end
    end
    if a then
      a[k] = a[k] + 1
      p[i] = p[i] + 1
      if not h[4] then
        redis.call('HSET', key, 'g', string.format('%%d', g), 'a0', string.format('%%d', a[1]),
          'a1', string.format('%%d', a[2]), 'a2', string.format('%%d', a[3]))
        redis.call('PEXPIREAT', key, string.format('%%d', (g + 3) * span))
      elseif h[1] then
        redis.call('HSET', key, 'r', string.format('%%d', r[i]), 't', string.format('%%d', tk[i]),
          SLOTS[k], string.format('%%d', a[k]))
      else
        redis.call('HINCRBY', key, SLOTS[k], '1')
      end
    end
  end
end
if n == 1 then  -- (one scope, the usual request: one format, no table to join, ~6k instructions less)
  return string.format('[%%d,%%d,%%d,%%d.%%03d,[[%%d.%%03d,%%d,%%d,%%d,%%d,%%d]]]', admitted, refused, code,
    now / 1000, now %% 1000, s[1] / 1000, s[1] %% 1000, r[1], tk[1], p[1], s[1], g)
end
local counts = {}
for i = 1, n do
  counts[i] = string.format('[%%d.%%03d,%%d,%%d,%%d,%%d,%%d]', s[i] / 1000, s[i] %% 1000, r[i], tk[i], p[i], s[i], g)
end
return string.format('[%%d,%%d,%%d,%%d.%%03d,[%%s]]', admitted, refused, code, now / 1000, now %% 1000,
  table.concat(counts, ','))
"""

# KEYS: as ACQUIRE's; ARGV: span ms, per entry '1' if it holds a place in flight else '0' (one
# string; the last entry's '2' or '3': its tokens back to none, NO_TOKENS, and its request too,
# GIVE_BACK — such an entry, a deployment's, has no parallel limit), then JSON text: [tokens used -
# estimate, tokens used, generation, per entry: its window start in ms when counted] (as ACQUIRE
# gave them) — made by one orjson call: the arguments one by one cost ~15k instructions to format
# (bench/instructions.py); read by one string.match, the numbers Redis adds kept as text. A place
# whose generation's slot was reused since is not given back: it was dropped with the slot.
RELEASE = """
local SLOTS = {'a0', 'a1', 'a2'}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window, span, flags = %(window)d, tonumber(ARGV[1]), ARGV[2]
local delta, used, g, starts = string.match(ARGV[3], '^%%[(-?%%d+),(%%d+),(%%d+),(.*)%%]$')
g = tonumber(g)
local held = now < (g + 3) * span
local slot = SLOTS[g %% 3 + 1]
local i = 0
for counted in string.gmatch(starts, '%%d+') do
  i = i + 1
  local key = KEYS[i]
  local stored = redis.call('HGET', key, 's')
  local start = tonumber(stored)
  local flag = string.byte(flags, i)
  if flag > 49 then
    if stored == counted and now - start < window then
      local back = tonumber(delta) - tonumber(used)
      if back ~= 0 then redis.call('HINCRBY', key, 't', back) end
      if flag == 51 then redis.call('HINCRBY', key, 'r', '-1') end
    end
  elseif start and now - start < window then
    if stored == counted then
      if delta ~= '0' then redis.call('HINCRBY', key, 't', delta) end
    else
      redis.call('HINCRBY', key, 't', used)
    end
  elseif used ~= '0' then
    redis.call('HSET', key, 's', string.format('%%d', now), 'r', '0', 't', used)
    if not start then redis.call('PEXPIRE', key, '%(window)d') end
  end
  if start and held and flag == 49 then redis.call('HINCRBY', key, slot, '-1') end
end
return 1
"""

LIMIT_NAMES = ("", "rpm", "tpm", "parallel")
WINDOW_MS = int(WINDOW * 1000)
ACQUIRE, RELEASE = ACQUIRE % {"window": WINDOW_MS}, RELEASE % {"window": WINDOW_MS}
SHAS = {script: hashlib.sha1(script.encode()).hexdigest() for script in (ACQUIRE, RELEASE)}
MAX_REMEMBERED = 4096  # sets of entries whose commands are kept encoded; past it the table starts again
# a release's counts whose window start matches no window (add_tokens_now): tokens go to the current one
NO_WINDOW = ((0, 0, 0, 0, 0, 0),)


class Commands:
    """The two script calls of one set of entries, encoded once but for each request's own values
    (its estimate, tokens used, window starts, generation): encoding every argument of every call
    was ~40k instructions of a request's ~590k (bench/instructions.py, issue 10's Redis target).

    acquire: EVALSHA sha nkeys keys… span | estimate | per entry: rpm tpm parallel
    release: EVALSHA sha nkeys keys… span parallel | [used - estimate, used, generation, per entry: start ms]"""

    __slots__ = ("acquire_head", "acquire_tail", "entries", "keys", "release_heads", "release_sha")

    def __init__(self, entries: tuple[Entry, ...], keys: list[str], span_ms: int) -> None:
        self.entries = entries
        self.keys = keys
        n = len(entries)
        keyed = bulk(len(keys)) + b"".join([bulk(key) for key in keys])
        self.acquire_head = b"*%d\r\n%b%b%b%b" % (5 + 4 * n, bulk("EVALSHA"), bulk(SHAS[ACQUIRE]), keyed, bulk(span_ms))
        self.acquire_tail = b"".join(
            [bulk(_or_none(limit)) for _, rpm, tpm, parallel in entries for limit in (rpm, tpm, parallel)]
        )
        self.release_sha = bulk("EVALSHA") + bulk(SHAS[RELEASE])
        parallel = "".join("0" if parallel is None else "1" for *_, parallel in entries)
        # by what becomes of the last entry: SETTLE, NO_TOKENS, GIVE_BACK (RELEASE's flags)
        self.release_heads = tuple(
            b"*%d\r\n%b%b%b%b" % (6 + n, self.release_sha, keyed, bulk(span_ms), bulk(parallel[:-1] + last))
            for last in (parallel[-1:], "2", "3")
        )

    def acquire(self, estimate: int) -> bytes:
        e = b"%d" % estimate
        return b"%b$%d\r\n%b\r\n%b" % (self.acquire_head, len(e), e, self.acquire_tail)

    def release(self, estimate: int, used: int, counts: Counts, last: int = SETTLE) -> bytes:
        # counts: ACQUIRE's, [start, requests, tokens, in flight, start ms, generation] per entry
        values = orjson.dumps([used - estimate, used, counts[0][5], *[count[4] for count in counts]])
        return b"%b$%d\r\n%b\r\n" % (self.release_heads[last], len(values), values)

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
    def __init__(
        self,
        redis: RedisSettings,
        prefix: str = PREFIX,
        probe_every: float = PROBE_EVERY,
        parallel_ttl: float = PARALLEL_TTL,
        subject: str = "rate limits",
    ) -> None:
        """`parallel_ttl`: how long a place in flight that is never given back still counts (at
        least that long, at most half as long again: ACQUIRE's ring); shorter than the window only
        in tests, since a hash with a ring lives for the ring's span. `subject`: what the WARNING
        of an unreachable Redis names (the keys' limits, the deployments')."""
        self.where = redis.where
        self.url = redis.url  # (may hold a password: compared, never logged)
        self.subject = subject
        self.prefix = prefix
        self.probe_every = probe_every
        self.span_ms = max(1, int(parallel_ttl * 1000) // 2)
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
        return [self.prefix + name for name, _, _, _ in entries]

    def commands(self, entries: tuple[Entry, ...]) -> Commands:
        """The entries' encoded commands: the limits hook asks with the same tuple again and again
        (its Plans keep them), so they are found by identity."""
        found = self._commands.get(id(entries))
        if found is None or found.entries is not entries:  # (an id is only reused once its tuple is gone)
            if len(self._commands) >= MAX_REMEMBERED:
                self._commands.clear()
            found = self._commands[id(entries)] = Commands(entries, self.keys(entries), self.span_ms)
        return found

    async def acquire(self, entries: tuple[Entry, ...], estimate: int) -> Verdict:
        if self.down:
            return self.local.acquire_now(entries, estimate)
        commands = self.commands(entries)
        command = commands.acquire(estimate)
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

    def release_now(self, held: Held, used: int, last: int = SETTLE) -> None:
        """Sent without waiting: the after hook has nothing to wait for. Its reply is not even sent
        (CLIENT REPLY SKIP: reading it was ~10k instructions a request) where the server can skip
        it, else read by the connection (_Settle). What skipping gives up: after a SCRIPT FLUSH,
        the releases sent before the next acquire meets NOSCRIPT (and loads the scripts again) are
        lost, as a release is when Redis fails: tokens left at the estimate, an in-flight place
        held until PARALLEL_TTL (to 1.5 times that). A new connection (a restarted or failed-over
        server) loads both scripts first. Not connected (the connection closed since the acquire):
        sent by a task that connects first, so an in-flight place is not held until PARALLEL_TTL."""
        _, entries, counts, estimate = held
        commands = self.commands(entries)
        command = commands.release(estimate, used, counts, last)
        if self.client.send_unanswered(command, _Settle((self, commands, command))):
            return
        task = asyncio.ensure_future(self._release(commands, command))
        self._releasing.add(task)  # a reference, or the loop may drop the task before it ends
        task.add_done_callback(self._releasing.discard)

    def add_tokens_now(self, entries: tuple[Entry, ...], used: int) -> None:
        """Tokens used now by a request counted without an estimate (a deployment's: the router's
        pre-call checks), added to each entry's current window; in this process while Redis is down,
        where such requests are counted meanwhile. Sent as a release is, without waiting."""
        store: SharedStore | MemoryStore = self.local if self.down else self
        store.release_now((store, entries, NO_WINDOW, 0), used)

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
            "%s: Redis at %s is unreachable (%s: %s); counting in this process until it is back "
            "(checked every %g s)", self.subject, self.where, type(exc).__name__, exc, self.probe_every,
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
            log.info("%s: Redis at %s is back; limits are shared again", self.subject, self.where)
            return


def _or_none(limit: int | None) -> int:
    return -1 if limit is None else limit
