"""Which deployment of a group takes a request: LiteLLM's routing strategies and pre-call checks.

    simple-shuffle            at random, by weight                        (router.py's _pick: no state)
    least-busy                the fewest requests in flight
    latency-based-routing     the lowest moving average of latency (time to the first chunk, for
                              streams); with routing_strategy_args.lowest_latency_buffer (0.1: 10 %),
                              any deployment within that fraction of the best, at random
    usage-based-routing-v2    the most rpm/tpm headroom this minute (the fewest tokens, without limits)
    cost-based-routing        the cheapest by its prices per token (unknown prices last)

Ties are broken at random. A deployment that has not answered yet counts as fast (it gets tried).

router_settings.enable_pre_call_checks: a deployment whose `rpm` or `tpm` is used up this minute is
skipped (they are limits, not only weights), and so is one whose model_info.max_input_tokens the
request cannot fit (estimated at one token per 4 bytes of the request: an over-estimate by its JSON).

With a Redis/Valkey configured, the limited deployments' rpm/tpm are one count for every worker and
replica (a provider's quota is one quota, as LiteLLM's router counts them in its redis_host): the
router checks and counts the deployment it picked with the rate limits' own script
(ratelimits/shared.py: one round trip, atomic, the server's clock, a 60-second window; in this
process while Redis is unreachable, one WARNING), and tokens are added once used, without waiting
(no estimate reserved, as the in-process count reserves none). Where a group is one such deployment,
the limits hook counts it instead, with the caller's limits in the same script call
(pipeline/limits.py: one round trip a request, not two), reserving the request's estimate there as
it does for a tpm of the caller's and settling it to the tokens used: the router is told
(ctx.counted_deployment) and the strategy then adds none (`settled`). One the shared count refuses
is taken as used up here for the rest of its minute and another of the group picked (`instead`);
none left: the group's 429 `no_deployments_available`, or its fallbacks.

The state is in-process (per worker) and bounded as everything kept per deployment is; nothing
here exists with simple-shuffle and no pre-call checks, so that path costs what it did. With
simple-shuffle and pre-call checks only the deployments with an rpm or a tpm are counted (`learns`),
and the request is measured once, on the call the router then sends (`admit`): the checks cost a
few comparisons a request where they cannot refuse anything.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from seance.gateway.errors import CONTEXT_WINDOW, RateLimited, UpstreamError
from seance.gateway.providers.base import Call, Reply, Usage
from seance.gateway.routing.deployments import MAX_DYNAMIC, Deployment
from seance.gateway.routing.proxy import Stream

if TYPE_CHECKING:
    from seance.gateway.ratelimits import Entry, Verdict
    from seance.gateway.ratelimits.shared import SharedStore

SMOOTHING = 0.3  # weight of the newest latency in the moving average
SHARED_SCOPE = "deployment:"  # a deployment's count in Redis: seance:rl:deployment:<id>
BYTES_PER_TOKEN = 4


@dataclass(slots=True)
class Stats:
    in_flight: int = 0
    latency: float | None = None  # seconds, moving average
    minute: float = -1  # the minute the counts below are for (the clock's seconds // 60)
    requests: int = 0
    tokens: int = 0
    # the deployment these are for and its limits, read from it once: the fields of a dataclass
    # that have a default are read by CPython 3.11's generic attribute lookup (~350 instructions
    # each), a slot's by its specialized one; _used_up reads the limits on every request
    deployment: Deployment | None = None
    rpm: int | None = None
    tpm: int | None = None
    # its entry in the count shared through Redis (`shared`): the same tuple each request, so the
    # store finds its encoded commands again (SharedStore.commands)
    shared_entries: tuple[Entry, ...] = ()


class Strategy:
    """Picks among a group's deployments and learns from each try (`started`, `finished`)."""

    def __init__(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        pre_call_checks: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = "usage-based-routing-v2" if name == "usage-based-routing" else name
        self.buffer = float((args or {}).get("lowest_latency_buffer", 0) or 0)
        self.pre_call_checks = pre_call_checks
        # every try feeds the choice (`started`, `finished`); simple-shuffle reads only the counts of
        # the deployments with an rpm or a tpm, and the router counts no other (Deployment.limited)
        self.learns = self.name != "simple-shuffle"
        self.times = self.name == "latency-based-routing"  # the one that reads the latencies
        self.scores_usage = self.name == "usage-based-routing-v2"  # the one that reads the counts
        self.clock = clock
        self.random = rng or random.Random()
        self.stats: dict[str, Stats] = {}
        # with Redis and pre-call checks: the limited deployments' counts every worker and replica
        # shares (the router checks the one it picked: `instead`), their tokens added after each answer
        self.shared: SharedStore | None = None
        self._score: Callable[[Deployment], Any] = {
            "least-busy": lambda d: self._stats(d).in_flight,
            "latency-based-routing": lambda d: self._stats(d).latency or 0.0,
            "usage-based-routing-v2": self._usage,
            "cost-based-routing": _cost,
        }.get(self.name, lambda d: 0)

    # -- picking --

    def pick(self, group: Sequence[Deployment], failed: set[str]) -> Deployment:
        candidates = [d for d in group if d.id not in failed] or list(group)
        if len(candidates) == 1:
            return candidates[0]
        if self.name == "simple-shuffle":
            return self.random.choices(candidates, weights=[d.weight for d in candidates])[0]
        scores = [self._score(d) for d in candidates]
        best = min(scores)
        if self.name == "latency-based-routing" and self.buffer > 0:
            chosen = [d for d, s in zip(candidates, scores, strict=True) if s <= best * (1 + self.buffer)]
        else:
            chosen = [d for d, s in zip(candidates, scores, strict=True) if s == best]
        return chosen[0] if len(chosen) == 1 else self.random.choice(chosen)

    def admit(
        self, name: str, group: Sequence[Deployment], build: Callable[[Deployment], Call]
    ) -> tuple[Sequence[Deployment], Call | None]:
        """The pre-call checks: the deployments of `group` that may take this request, and the call
        built for the first of them to measure the request (the router sends it rather than build
        it again), None when none was; raises when none may (a context-window refusal, or a 429
        with when the limits reset)."""
        if len(group) == 1:  # the usual group: its one deployment, without a list
            only = group[0]
            if only.limited and self._used_up(only):
                raise self.used_up_everywhere(name)
            if only.max_input is None:
                return group, None
            call = build(only)
            # _estimate, inline for a body passed through as it came: a call less a request
            tokens = len(call.raw) // BYTES_PER_TOKEN if call.raw else _estimate(call)
            if tokens > only.max_input:
                raise _too_long(name, tokens, only.max_input)
            return group, call
        open_ = [d for d in group if not (d.limited and self._used_up(d))]
        if not open_:
            raise self.used_up_everywhere(name)
        windows = [d.max_input for d in open_ if d.max_input is not None]
        if not windows:
            return open_, None
        call = build(open_[0])
        tokens = _estimate(call)
        if tokens <= min(windows):  # it fits them all
            return open_, call
        fitting = [d for d in open_ if (d.max_input or tokens) >= tokens]
        if not fitting:
            raise _too_long(name, tokens, max(windows))
        return fitting, call if fitting[0] is open_[0] else None

    # -- learning --

    # (each of these is a call or two a request: the minute's counts are restarted inline)

    def started(self, deployment: Deployment) -> float:
        """A try sent to `deployment`; returns when (for `finished`)."""
        stats = self.stats.get(deployment.id) or self._stats(deployment)
        now = self.clock()
        if stats.minute != now // 60:
            _restart(stats, now // 60)
        stats.requests += 1
        stats.in_flight += 1
        return now

    def answered(self, deployment: Deployment, began: float, result: object, settled: bool = False) -> None:
        """A try that `started` at `began` answered: done now, or a stream when its last chunk is
        in (or it is closed). `settled`: its tokens are the limits hook's to add to the shared
        count (it counted the request there: pipeline/limits.py), not this one's."""
        if isinstance(result, Reply):  # the usual answer: `finished` inline (a call less a request)
            stats = self.stats.get(deployment.id) or self._stats(deployment)
            if stats.in_flight:
                stats.in_flight -= 1
            if self.times:
                _average(stats, self.clock() - began)
            usage = result.usage
            if usage is not None:
                stats.tokens += usage.prompt_tokens + usage.completion_tokens
                if self.shared is not None and deployment.limited and not settled:
                    self.shared.add_tokens_now(
                        self.shared_entries(deployment), usage.prompt_tokens + usage.completion_tokens
                    )
        elif isinstance(result, Stream):
            translator = result.translator
            result.chunks = self.watch(deployment, began, result.chunks, lambda: translator.usage, settled)
        else:
            self.finished(deployment, began, None, ok=True)

    def finished(
        self, deployment: Deployment, began: float, usage: Usage | None, ok: bool, settled: bool = False
    ) -> None:
        """A try that `started` at `began` is over; `usage`: the tokens it used, when known;
        `settled`: as for `answered`."""
        stats = self.stats.get(deployment.id) or self._stats(deployment)
        if stats.in_flight:
            stats.in_flight -= 1
        if ok and self.times:
            _average(stats, self.clock() - began)
        if usage is not None:  # in the minute it started in, or the one its counts restarted for since
            stats.tokens += usage.prompt_tokens + usage.completion_tokens
            if self.shared is not None and deployment.limited and not settled:
                self.shared.add_tokens_now(
                    self.shared_entries(deployment), usage.prompt_tokens + usage.completion_tokens
                )

    async def instead(
        self, name: str, group: Sequence[Deployment], failed: set[str], refused: Deployment, verdict: Verdict
    ) -> tuple[Deployment, Sequence[Deployment]]:
        """The shared count refused `refused` (the router asked it itself, a coroutine less on the
        usual way): another deployment of `group` that has room, and the group it was picked from;
        each refused one taken as used up for the rest of its minute (no retry spent, no cooldown:
        the provider was not called). Raises the group's 429 when none has room."""
        assert self.shared is not None
        deployment = refused
        while True:
            self.used_up_elsewhere(deployment, verdict)
            group = [d for d in group if d is not deployment]
            if not group:
                raise self.used_up_everywhere(name)
            deployment = group[0] if len(group) == 1 else self.pick(group, failed)
            if not deployment.limited:
                return deployment, group
            verdict = await self.shared.acquire(self.shared_entries(deployment), 0)
            if verdict.admitted:
                return deployment, group

    def used_elsewhere(self, deployment: Deployment, verdict: Verdict) -> None:
        """The shared count admitted a request to `deployment`: what every worker used of it this
        window, this request included (which `started` counts next), for usage-based routing."""
        stats = self._this_minute(deployment)
        _, requests, tokens, *_ = verdict.counts[0]
        stats.requests = max(stats.requests, int(requests) - 1)
        stats.tokens = max(stats.tokens, int(tokens))

    def used_up_elsewhere(self, deployment: Deployment, verdict: Verdict) -> None:
        """The shared count (`shared`) refused `deployment`: the other workers used what
        it had; so this one takes it as used up for the rest of its minute."""
        stats = self._this_minute(deployment)
        if verdict.limit == "rpm" and deployment.rpm is not None:
            stats.requests = max(stats.requests, deployment.rpm)
        elif deployment.tpm is not None:
            stats.tokens = max(stats.tokens, deployment.tpm)

    def latency(self, deployment: Deployment, seconds: float) -> None:
        _average(self._stats(deployment), seconds)

    def watch(
        self,
        deployment: Deployment,
        began: float,
        chunks: AsyncGenerator[bytes, None],
        usage: Callable[[], Usage | None],
        settled: bool = False,
    ) -> AsyncGenerator[bytes, None]:
        """A stream's chunks, timing the first (the latency of a stream) and counting it done at its
        end, or when it is closed, even before its first chunk (a client gone at once)."""
        return _Watched(self, deployment, began, chunks, usage, settled)

    # -- state --

    def _stats(self, deployment: Deployment) -> Stats:
        stats = self.stats.get(deployment.id)
        if stats is None:
            if len(self.stats) >= MAX_DYNAMIC * 2:
                del self.stats[next(iter(self.stats))]
            stats = self.stats[deployment.id] = Stats()
        if stats.deployment is not deployment:  # new, or the same id in a reloaded config
            stats.deployment, stats.rpm, stats.tpm = deployment, deployment.rpm, deployment.tpm
            stats.shared_entries = ((SHARED_SCOPE + deployment.id, deployment.rpm, deployment.tpm, None),)
        return stats

    def shared_entries(self, deployment: Deployment) -> tuple[Entry, ...]:
        """The deployment's entry in the shared count (`shared`)."""
        stats = self.stats.get(deployment.id)
        if stats is None or stats.deployment is not deployment:
            stats = self._stats(deployment)
        return stats.shared_entries

    def _this_minute(self, deployment: Deployment) -> Stats:
        stats = self.stats.get(deployment.id) or self._stats(deployment)
        minute = self.clock() // 60
        if stats.minute != minute:
            _restart(stats, minute)
        return stats

    def _used_up(self, deployment: Deployment) -> bool:
        """Whether `deployment` has used its rpm or its tpm this minute."""
        stats = self.stats.get(deployment.id)
        if stats is None or stats.minute != self.clock() // 60:  # nothing counted yet this minute
            return deployment.rpm == 0 or deployment.tpm == 0
        if stats.deployment is not deployment:
            stats = self._stats(deployment)
        rpm, tpm = stats.rpm, stats.tpm
        return (rpm is not None and stats.requests >= rpm) or (tpm is not None and stats.tokens >= tpm)

    def used_up_everywhere(self, name: str) -> RateLimited:
        wait = max(1, 60 - int(self.clock()) % 60)
        return RateLimited(
            f"every deployment of '{name}' has used its rpm/tpm for this minute; try again in {wait} s",
            headers={"retry-after": str(wait)},
            code="no_deployments_available",
        )

    def _usage(self, deployment: Deployment) -> tuple[float, int]:
        """How much of its limits a deployment used this minute (0 without limits), then its tokens."""
        stats = self._this_minute(deployment)
        used = 0.0
        if deployment.rpm:
            used = max(used, stats.requests / deployment.rpm)
        if deployment.tpm:
            used = max(used, stats.tokens / deployment.tpm)
        return used, stats.tokens


class _Watched(AsyncGenerator[bytes, None]):
    """An async generator of its own rather than a generator function: the latter runs no
    `finally` when closed before it started, and the count in flight would never come down."""

    def __init__(
        self,
        strategy: Strategy,
        deployment: Deployment,
        began: float,
        inner: AsyncGenerator[bytes, None],
        usage: Callable[[], Usage | None],
        settled: bool,
    ) -> None:
        self.strategy, self.deployment, self.began, self.inner, self.usage = strategy, deployment, began, inner, usage
        self.settled = settled
        self.first = strategy.times  # the first chunk's time is a stream's latency
        self.done = False
        # at its end without a usage yet: a pass-through stream's translator reads it from the tail
        # it kept when the relay closes it, after the last chunk; counted at aclose(), which follows
        self.complete = False

    def _end(self, ok: bool) -> None:
        if not self.done:
            self.done = True
            # not `ok` for finished: a stream's latency is its first chunk's, taken then
            usage = self.usage() if ok else None
            self.strategy.finished(self.deployment, self.began, usage, ok=False, settled=self.settled)

    async def __anext__(self) -> bytes:
        try:
            chunk = await self.inner.__anext__()
        except StopAsyncIteration:
            if self.usage() is not None:
                self._end(ok=True)
            else:
                self.complete = True
            raise
        except BaseException:
            self._end(ok=False)
            raise
        if self.first:
            self.first = False
            self.strategy.latency(self.deployment, self.strategy.clock() - self.began)
        return chunk

    async def asend(self, value: None) -> bytes:
        return await self.__anext__()

    async def athrow(self, *args: Any) -> bytes:
        self._end(ok=False)
        return await self.inner.athrow(*args)

    async def aclose(self) -> None:
        self._end(ok=self.complete)
        await self.inner.aclose()


def _cost(deployment: Deployment) -> float:
    """Input plus output price per token (the catalogue's, under the config's); unknown: last."""
    if deployment.prices is None:
        return float("inf")
    return deployment.prices.base.input + deployment.prices.base.output


def _too_long(name: str, tokens: int, largest: int) -> UpstreamError:
    err = UpstreamError(
        f"the request (about {tokens} tokens) does not fit the context window of any deployment of "
        f"'{name}' (at most {largest} tokens)",
        upstream_status=400,
        code="context_length_exceeded",
        param="messages",
    )
    err.kind = CONTEXT_WINDOW
    return err


def _restart(stats: Stats, minute: float) -> None:
    """Another minute: its counts start from nothing."""
    stats.minute, stats.requests, stats.tokens = minute, 0, 0


def _average(stats: Stats, seconds: float) -> None:
    stats.latency = seconds if stats.latency is None else stats.latency + SMOOTHING * (seconds - stats.latency)


def _estimate(call: Call) -> int:
    size = len(call.raw) if call.raw else len(orjson.dumps(call.body))
    return size // BYTES_PER_TOKEN
