"""Rate-limit counters in Redis/Valkey, shared by every worker and replica: one Lua script checks and
counts every scope of a request at once (one round trip, atomic), another settles its tokens and
ends its in-flight count after the answer (sent without waiting for a reply, and with none asked
for where the server can skip it: SharedStore.release). A busy set of scopes far from its limits is
counted a block of requests at a time instead, admitted here and settled in batches (leases.py).
The scripts read the server's clock (TIME), so replicas with drifting clocks still agree on each
window.

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
import contextlib
import hashlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from seance.gateway.ratelimits import PARALLEL_TTL, SETTLE, WINDOW, Counts, Entry, Held, Verdict
from seance.gateway.ratelimits.leases import FLUSH_EVERY, LEASE_SHARE, LEASE_TTL, MAX_WANT, Lease
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
# ARGV: span ms, estimate, want (requests to count at once: a lease, leases.py), then per entry:
#    rpm, tpm, parallel (-1: none)
# -> JSON text: [admitted, refusing entry (1-based), limit (1 rpm, 2 tpm, 3 parallel), now,
#    [per entry: [window start, requests, tokens, in flight, window start in ms, generation]],
#    granted: the requests counted (1, or a lease's: up to `want`, each with `estimate` tokens and
#    a place in flight)],
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
local window, span, estimate, want = %(window)d, tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local e = tonumber(estimate)
local g = math.floor(now / span)
local n = #KEYS
local w, s, r, tk, p = {}, {}, {}, {}, {}
local refused, code = 0, 0
for i = 1, n do
  local par = ARGV[3 * i + 3]
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
    local rpm, tpm = ARGV[3 * i + 1], ARGV[3 * i + 2]
    if rpm ~= '-1' and r[i] >= tonumber(rpm) then refused, code = i, 1
    elseif tpm ~= '-1' and tk[i] >= tonumber(tpm) then refused, code = i, 2
    elseif h[5] and p[i] >= tonumber(par) then refused, code = i, 3 end
  end
end
local admitted, grant = 0, 1
if refused == 0 then
  admitted = 1
  -- a lease: at most 1/LEASE_SHARE of what any limit has left, so that the leases every worker
  -- holds stay a small part of it; one request (exactly as without) where that is less than two
  if want > 1 then
    grant = want
    for i = 1, n do
      local rpm, tpm, par = ARGV[3 * i + 1], ARGV[3 * i + 2], ARGV[3 * i + 3]
      if rpm ~= '-1' then grant = math.min(grant, math.floor((tonumber(rpm) - r[i]) / %(share)d)) end
      if tpm ~= '-1' then
        if e > 0 then grant = math.min(grant, math.floor((tonumber(tpm) - tk[i]) / (%(share)d * e)))
        else grant = 1 end
      end
      if par ~= '-1' then grant = math.min(grant, math.floor((tonumber(par) - p[i]) / %(share)d)) end
    end
    if grant < 1 then grant = 1 end
  end
  local gs, ge = '1', estimate
  if grant > 1 then gs, ge = string.format('%%d', grant), string.format('%%d', grant * e) end
  local k = g %% 3 + 1
  for i = 1, n do
    local key, h = KEYS[i], w[i]
    local a = h[5]
    r[i], tk[i] = r[i] + grant, tk[i] + grant * e
    if not h[1] then
      redis.call('HSET', key, 's', string.format('%%d', now), 'r', gs, 't', ge)
      if not a then redis.call('PEXPIRE', key, '%(window)d') end
    elseif not a or not h[4] then
      redis.call('HINCRBY', key, 'r', gs)
      if e ~= 0 then redis.call('HINCRBY', key, 't', ge) end
    end
    if a then
      a[k] = a[k] + grant
      p[i] = p[i] + grant
      if not h[4] then
        redis.call('HSET', key, 'g', string.format('%%d', g), 'a0', string.format('%%d', a[1]),
          'a1', string.format('%%d', a[2]), 'a2', string.format('%%d', a[3]))
        redis.call('PEXPIREAT', key, string.format('%%d', (g + 3) * span))
      elseif h[1] then
        redis.call('HSET', key, 'r', string.format('%%d', r[i]), 't', string.format('%%d', tk[i]),
          SLOTS[k], string.format('%%d', a[k]))
      else
        redis.call('HINCRBY', key, SLOTS[k], gs)
      end
    end
  end
end
if n == 1 then  -- (one scope, the usual request: one format, no table to join, ~6k instructions less)
  return string.format('[%%d,%%d,%%d,%%d.%%03d,[[%%d.%%03d,%%d,%%d,%%d,%%d,%%d]],%%d]', admitted, refused, code,
    now / 1000, now %% 1000, s[1] / 1000, s[1] %% 1000, r[1], tk[1], p[1], s[1], g, grant)
end
local counts = {}
for i = 1, n do
  counts[i] = string.format('[%%d.%%03d,%%d,%%d,%%d,%%d,%%d]', s[i] / 1000, s[i] %% 1000, r[i], tk[i], p[i], s[i], g)
end
return string.format('[%%d,%%d,%%d,%%d.%%03d,[%%s],%%d]', admitted, refused, code, now / 1000, now %% 1000,
  table.concat(counts, ','), grant)
"""

# What a request (or a lease, SETTLE) gives back in one scope's hash, where it was counted: if that
# window is still the hash's, `requests` back and `delta` tokens added (used less reserved); if a
# newer window is, `used` tokens added to it; if none is, a window opened with them. Returns the
# window's start, or nil when the hash is gone. (Numbers as text, as HINCRBY takes them.)
SETTLE_WINDOW = """
local function settle(key, counted, requests, delta, used)
  local stored = redis.call('HGET', key, 's')
  local start = tonumber(stored)
  if start and now - start < window then
    if stored == counted then
      if requests ~= '0' then redis.call('HINCRBY', key, 'r', '-' .. requests) end
      if delta ~= '0' then redis.call('HINCRBY', key, 't', delta) end
    elseif used ~= '0' then
      redis.call('HINCRBY', key, 't', used)
    end
  elseif used ~= '0' then
    redis.call('HSET', key, 's', string.format('%%d', now), 'r', '0', 't', used)
    if not start then redis.call('PEXPIRE', key, '%(window)d') end
  end
  return start
end
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
%(settle)s
local i = 0
for counted in string.gmatch(starts, '%%d+') do
  i = i + 1
  local key = KEYS[i]
  local flag = string.byte(flags, i)
  local start
  if flag > 49 then  -- its tokens back to none (and with '3' its request): in its window only
    start = settle(key, counted, flag == 51 and '1' or '0', tostring(tonumber(delta) - tonumber(used)), '0')
  else
    start = settle(key, counted, '0', delta, used)
  end
  if start and held and flag == 49 then redis.call('HINCRBY', key, slot, '-1') end
end
return 1
"""

# KEYS: per entry, its hash
# ARGV: span ms, generation (the lease's), parallel ('1' per entry holding places in flight, else
#    '0'), places given back, then per entry: window start ms (the lease's), requests given back,
#    tokens to add if that window is still the entry's (used - reserved), tokens used (added to a
#    newer window instead)
# RELEASE for many requests of a lease at once, and what the lease did not use (leases.py).
SETTLE_SCRIPT = """
local SLOTS = {'a0', 'a1', 'a2'}
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window, span, g, flags, back = %(window)d, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
local held = now < (g + 3) * span
local slot = SLOTS[g %% 3 + 1]
%(settle)s
for i = 1, #KEYS do
  local b = 4 * i
  local start = settle(KEYS[i], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4])
  if start and held and back ~= '0' and string.byte(flags, i) == 49 then
    redis.call('HINCRBY', KEYS[i], slot, '-' .. back)
  end
end
return 1
"""

LIMIT_NAMES = ("", "rpm", "tpm", "parallel")
WINDOW_MS = int(WINDOW * 1000)
ACQUIRE = ACQUIRE % {"window": WINDOW_MS, "share": LEASE_SHARE}
_SETTLE = {"window": WINDOW_MS, "settle": SETTLE_WINDOW % {"window": WINDOW_MS}}
RELEASE, SETTLE_SCRIPT = RELEASE % _SETTLE, SETTLE_SCRIPT % _SETTLE
SCRIPTS = (ACQUIRE, RELEASE, SETTLE_SCRIPT)
SHAS = {script: hashlib.sha1(script.encode()).hexdigest() for script in SCRIPTS}
MAX_REMEMBERED = 4096  # sets of entries whose commands are kept encoded; past it the table starts again
# a release's counts whose window start matches no window (add_tokens_now): tokens go to the current one
NO_WINDOW = ((0, 0, 0, 0, 0, 0),)


class Commands:
    """The script calls of one set of entries, encoded once but for each request's own values
    (its estimate, tokens used, window starts, generation): encoding every argument of every call
    was ~40k instructions of a request's ~590k (bench/instructions.py, issue 10's Redis target).
    And the entries' lease (leases.py): the one being taken from, the grant being waited for, and
    how many requests the next one asks for.

    acquire: EVALSHA sha nkeys keys… span | estimate | want | per entry: rpm tpm parallel
    release: EVALSHA sha nkeys keys… span parallel | [used - estimate, used, generation, per entry: start ms]
    settle:  EVALSHA sha nkeys keys… span | generation | parallel | places | per entry: start ms, …"""

    __slots__ = (
        "acquire_head", "acquire_tail", "entries", "granted", "keys", "lease", "parallel", "release_heads",
        "settle_flags", "settle_head", "tokens", "waiting", "want", "wanted_at",
    )  # fmt: skip

    def __init__(self, entries: tuple[Entry, ...], keys: list[str], span_ms: int) -> None:
        self.entries = entries
        self.keys = keys
        n = len(entries)
        keyed = bulk(len(keys)) + b"".join([bulk(key) for key in keys])
        self.acquire_head = b"*%d\r\n%b%b%b%b" % (6 + 4 * n, bulk("EVALSHA"), bulk(SHAS[ACQUIRE]), keyed, bulk(span_ms))
        self.acquire_tail = b"".join(
            [bulk(_or_none(limit)) for _, rpm, tpm, parallel in entries for limit in (rpm, tpm, parallel)]
        )
        release_sha = bulk("EVALSHA") + bulk(SHAS[RELEASE])
        parallel = "".join("0" if parallel is None else "1" for *_, parallel in entries)
        self.parallel = "1" in parallel  # a request holds a place in flight somewhere
        self.tokens = any(tpm is not None for _, _, tpm, _ in entries)  # and is held to a tpm somewhere
        self.settle_head = b"*%d\r\n%b%b%b%b" % (
            7 + 5 * n, bulk("EVALSHA"), bulk(SHAS[SETTLE_SCRIPT]), keyed, bulk(span_ms)
        )  # fmt: skip
        self.settle_flags = bulk(parallel)
        self.lease: Lease | None = None
        self.waiting: asyncio.Future[None] | None = None  # a grant asked for by another request
        self.want = 1  # requests the next ACQUIRE asks for
        self.granted = 1  # requests the last one counted (1: no lease, near a limit or refused)
        self.wanted_at = 0.0  # when the last one was asked (the loop's clock)
        # by what becomes of the last entry: SETTLE, NO_TOKENS, GIVE_BACK (RELEASE's flags)
        self.release_heads = tuple(
            b"*%d\r\n%b%b%b%b" % (6 + n, release_sha, keyed, bulk(span_ms), bulk(parallel[:-1] + last))
            for last in (parallel[-1:], "2", "3")
        )

    def acquire(self, estimate: int, want: int = 1) -> bytes:
        e, w = b"%d" % estimate, b"%d" % want
        return b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n%b" % (self.acquire_head, len(e), e, len(w), w, self.acquire_tail)

    def release(self, estimate: int, used: int, counts: Counts, last: int = SETTLE) -> bytes:
        # counts: ACQUIRE's, [start, requests, tokens, in flight, start ms, generation] per entry
        values = orjson.dumps([used - estimate, used, counts[0][5], *[count[4] for count in counts]])
        return b"%b$%d\r\n%b\r\n" % (self.release_heads[last], len(values), values)

    def settle(self, generation: int, values: list[int]) -> bytes:
        """SETTLE_SCRIPT's call: `values`, the places given back and per entry its four numbers."""
        back, *rest = values
        return b"%b%b%b%b%b" % (
            self.settle_head, bulk(generation), self.settle_flags, bulk(back), b"".join([bulk(v) for v in rest])
        )  # fmt: skip

    @staticmethod
    def as_eval(command: bytes, script: str) -> bytes:
        """The same call with the script itself (EVAL), for a server that does not have it."""
        sha = bulk("EVALSHA") + bulk(SHAS[script])
        count, _, rest = command.partition(b"\r\n")
        return b"%b\r\n%b%b%b" % (count, bulk("EVAL"), bulk(script), rest[len(sha) :])


class _Settle(tuple[Any, ...]):
    """Waits for a release's (or a settlement's) reply in the connection itself: no task wakes up
    for it. NOSCRIPT (a flushed or new server) sends it again as EVAL; any other failure means Redis
    is down. (store, script, command): a tuple, made in C — a class with an __init__ cost ~2.5k
    instructions a request."""

    __slots__ = ()

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, error: BaseException) -> None:
        store, script, command = self
        if isinstance(error, ReplyError) and str(error).startswith("NOSCRIPT"):
            if store.client.send_nowait(Commands.as_eval(command, script), _Lost(store)):
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
        max_want: int = MAX_WANT,
        lease_ttl: float = LEASE_TTL,
    ) -> None:
        """`parallel_ttl`: how long a place in flight that is never given back still counts (at
        least that long, at most half as long again: ACQUIRE's ring); shorter than the window only
        in tests, since a hash with a ring lives for the ring's span. `subject`: what the WARNING
        of an unreachable Redis names (the keys' limits, the deployments'). `max_want`: the most
        requests a lease holds (1: none, every request counted in Redis); `lease_ttl`: how long
        one admits requests (leases.py)."""
        self.where = redis.where
        self.url = redis.url  # (may hold a password: compared, never logged)
        self.subject = subject
        self.prefix = prefix
        self.probe_every = probe_every
        self.span_ms = max(1, int(parallel_ttl * 1000) // 2)
        self.local = MemoryStore()  # while Redis is down
        self.down = False
        self.max_want, self.lease_ttl = max_want, lease_ttl
        # connects on first use, in the worker's own loop; every connection loads the scripts, so
        # a release can be sent without waiting for its reply (NOSCRIPT only after a SCRIPT FLUSH)
        setup = tuple(("SCRIPT", "LOAD", script) for script in SCRIPTS)
        self.client = Client(redis.url, ANSWER_TIMEOUT, setup)
        self._probe: asyncio.Task[None] | None = None
        self._commands: dict[int, Commands] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._to_settle: list[Lease] = []  # leases with something to settle at the next batch
        self._settling: asyncio.TimerHandle | None = None

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
        loop = asyncio.get_running_loop()
        while True:
            lease = commands.lease
            if lease is not None and (taken := lease.take(estimate, loop.time())) is not None:
                return taken
            waiting = commands.waiting
            if waiting is not None:
                await waiting  # another request asked for a lease of these entries: take from it
                if self.down:
                    return self.local.acquire_now(entries, estimate)
                if commands.granted < 2:  # near a limit (or refused): counted alone, beside the others
                    verdict = await self._ask(commands, estimate, 1)
                    assert verdict is not None  # (a grant is at most what was asked for)
                    return verdict
                continue  # (or the others waiting took it all: one of them asks for the next)
            now = loop.time()
            # twice what was asked last, if that came within a lease's time; else one request
            want = min(commands.want * 2, self.max_want) if now - commands.wanted_at < self.lease_ttl else 1
            commands.want, commands.wanted_at = want, now
            if want == 1:
                verdict = await self._ask(commands, estimate, 1)
                assert verdict is not None
                return verdict
            # asked by a task of its own: a request that goes away meanwhile (its client did) does
            # not take the lease Redis counted with it
            commands.waiting = waiting = loop.create_future()
            granted = await asyncio.shield(loop.create_task(self._lease_for(commands, estimate, want, waiting)))
            if granted is not None:  # counted alone (near a limit) or refused
                return granted

    async def _lease_for(
        self, commands: Commands, estimate: int, want: int, waiting: asyncio.Future[None]
    ) -> Verdict | None:
        """A lease of `want` requests for the requests waiting (None: it is the entries' lease now),
        or the verdict of the asking request alone."""
        try:
            return await self._ask(commands, estimate, want)
        finally:
            commands.waiting = None
            waiting.set_result(None)

    async def _ask(self, commands: Commands, estimate: int, want: int) -> Verdict | None:
        """ACQUIRE for `want` requests: a verdict, or None when it granted a lease (commands.lease)."""
        entries = commands.entries
        command = commands.acquire(estimate, want)
        try:
            try:
                reply = await self.client.request(command)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                # a flushed or new server: EVAL sends the script, and caches it there for EVALSHA
                reply = await self.client.request(commands.as_eval(command, ACQUIRE))
                for script in (RELEASE, SETTLE_SCRIPT):  # for the releases and settlements to come
                    self.client.send_nowait(("SCRIPT", "LOAD", script))
        except (OSError, TimeoutError, ReplyError) as exc:
            self._went_down(exc)
            return self.local.acquire_now(entries, estimate)
        out = orjson.loads(reply)
        commands.granted = out[5]
        if out[5] > 1:  # (only when want > 1)
            self._lease(commands, out, estimate)
            return None
        return Verdict(self, out[0] == 1, out[3], out[4], out[1] - 1, LIMIT_NAMES[out[2]])

    def _lease(self, commands: Commands, reply: Any, estimate: int) -> None:
        """The grant ACQUIRE made: the entries' lease from now on (the one before it ended)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        # ends with its window (the earliest of the entries'), on this loop's clock
        window_left = min(count[0] for count in reply[4]) + WINDOW - reply[3]
        lease = Lease(self, commands, reply, estimate, now + min(self.lease_ttl, window_left))
        if commands.lease is not None:
            commands.lease.end()
        commands.lease = lease
        lease.timer = loop.call_at(lease.expires, lease.end)

    def settle_later(self, lease: Lease) -> None:
        """A lease has something to settle: with the next batch, FLUSH_EVERY from the first."""
        if lease.dirty:
            return
        lease.dirty = True
        self._to_settle.append(lease)
        if self._settling is None:
            self._settling = asyncio.get_running_loop().call_later(FLUSH_EVERY, self._settle)

    def _settle(self) -> None:
        """The batch: one SETTLE call per lease with something to settle, sent without waiting."""
        self._settling = None
        leases, self._to_settle = self._to_settle, []
        for lease in leases:
            command = lease.settlement()
            if command is None or self.down:
                continue  # (down: what the leases hold is lost with the counts they were made in)
            if not self.client.send_unanswered(command, _Settle((self, SETTLE_SCRIPT, command))):
                task = asyncio.ensure_future(self._release(SETTLE_SCRIPT, command))
                self._releasing.add(task)
                task.add_done_callback(self._releasing.discard)

    async def close(self) -> None:
        """The process stops: every lease ends and what they hold is settled now, not left counted
        in Redis until the window (its places: PARALLEL_TTL) ends."""
        for commands in list(self._commands.values()):
            if commands.lease is not None:
                commands.lease.end()
        if self._settling is not None:
            self._settling.cancel()
            self._settle()
        if self._releasing:
            await asyncio.wait(list(self._releasing), timeout=ANSWER_TIMEOUT)
        if not self.down and self.client.connected:
            with contextlib.suppress(OSError, TimeoutError, ReplyError):
                await self.client.call("PING")  # the batch sent before it is read by then

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
        if self.client.send_unanswered(command, _Settle((self, RELEASE, command))):
            return
        task = asyncio.ensure_future(self._release(RELEASE, command))
        self._releasing.add(task)  # a reference, or the loop may drop the task before it ends
        task.add_done_callback(self._releasing.discard)

    def add_tokens_now(self, entries: tuple[Entry, ...], used: int) -> None:
        """Tokens used now by a request counted without an estimate (a deployment's: the router's
        pre-call checks), added to each entry's current window; in this process while Redis is down,
        where such requests are counted meanwhile. Sent as a release is, without waiting."""
        store: SharedStore | MemoryStore = self.local if self.down else self
        store.release_now((store, entries, NO_WINDOW, 0), used)

    async def _release(self, script: str, command: bytes) -> None:
        try:
            try:
                await self.client.request(command)
            except ReplyError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await self.client.request(Commands.as_eval(command, script))
        except (OSError, TimeoutError, ReplyError) as exc:
            # lost: its tokens stay at the estimate; its in-flight place ends after PARALLEL_TTL
            self._went_down(exc)

    def _went_down(self, exc: BaseException) -> None:
        """Redis cannot be reached, or answers errors (loading, read-only, out of memory): count in
        this process, and watch in the background for its return."""
        if self.down:
            return
        self.down = True
        for commands in self._commands.values():  # (what they hold is lost with Redis's counts)
            if commands.lease is not None:
                commands.lease.end()
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
