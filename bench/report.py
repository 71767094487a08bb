"""The results as markdown tables, and the bars from issues 2 and 4 checked against them."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from load import LoadResult


@dataclass(frozen=True)
class Measurement:
    target: str
    scenario: str
    load: LoadResult | None
    cpu_ms_per_request: float
    rss_mb: float
    error: str = ""
    # PostgreSQL's and Redis's CPU a request while the run went on (all of their processes on this
    # machine): work the target puts on the same 2 cores that its own figures do not show
    servers_cpu_ms_per_request: float = 0.0

    @property
    def ok(self) -> bool:
        """It ran and every answer was a good 200."""
        return self.load is not None and not self.error and self.load.failures == 0


@dataclass(frozen=True)
class Bar:
    title: str
    limit: str
    value: float | None  # None: a run it needs is missing or had failed requests
    passed: bool | None
    unit: str = ""

    @property
    def verdict(self) -> str:
        return "N/A" if self.passed is None else "PASS" if self.passed else "FAIL"


def medians(measurements: Sequence[Measurement]) -> list[Measurement]:
    """One measurement per (target, scenario) from several rounds (`--rounds`), in first-seen order.

    A round that failed stands for its target and scenario, so a failure is never voted away. Else
    each figure is its own median over the rounds: a c=1 p99 is decided by the few slowest
    requests of a run, and one run's scheduling hiccup on a shared 2-core machine moved it by
    milliseconds, more than the bars it is judged by. Requests, good answers and seconds come from
    the round whose req/s is the median, so the req/s shown is one a run measured."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.target, m.scenario), []).append(m)
    merged = []
    for runs in groups.values():
        failed = next((m for m in runs if not m.ok), None)
        if failed is not None or len(runs) == 1:
            merged.append(failed or runs[0])
            continue
        loads = [m.load for m in runs if m.load is not None]
        middle = sorted(loads, key=lambda load: load.rps)[len(loads) // 2]
        load = replace(
            middle,
            p50_ms=statistics.median(x.p50_ms for x in loads),
            p99_ms=statistics.median(x.p99_ms for x in loads),
            mean_ms=statistics.median(x.mean_ms for x in loads),
        )
        cpu = statistics.median(m.cpu_ms_per_request for m in runs)
        servers = statistics.median(m.servers_cpu_ms_per_request for m in runs)
        rss = max(m.rss_mb for m in runs)
        merged.append(Measurement(runs[0].target, runs[0].scenario, load, cpu, rss, servers_cpu_ms_per_request=servers))
    return merged


def paired(bars_of: Callable[..., list[Bar]], rounds: Sequence[Results], *args: Any) -> list[Bar]:
    """Bars that compare two targets, judged in each round and then the median round's bar for
    each: a round's runs are seconds apart, so the machine's drift between rounds (the bare
    gateway measured 14,700 to 16,200 req/s at c=64 in one run's three rounds) cancels out of each
    round's ratio, and a ratio of medians taken from different rounds does not. A bar that a round
    could not judge (a run missing or failed) stands as that round's."""
    judged: dict[str, list[Bar]] = {}
    for results in rounds:
        for bar in bars_of(results, *args):
            judged.setdefault(bar.title, []).append(bar)
    out = []
    for same in judged.values():
        unjudged = next((bar for bar in same if bar.value is None), None)
        out.append(unjudged or sorted(same, key=lambda bar: bar.value or 0.0)[len(same) // 2])
    return out


class Results:
    def __init__(self, measurements: Sequence[Measurement]) -> None:
        self._by_key = {(m.target, m.scenario): m for m in measurements}
        self.measurements = list(measurements)

    def get(self, target: str, scenario: str) -> Measurement | None:
        """A run that produced figures; its req/s counts good answers only, so failures never help."""
        m = self._by_key.get((target, scenario))
        return m if m is not None and m.load is not None else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def results_table(results: Results, titles: dict[str, str]) -> str:
    rows = [
        "| scenario | target | req/s | p50 ms | p99 ms | CPU ms/req | RSS MB | failed |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for m in results.measurements:
        title = titles.get(m.scenario, m.scenario)
        if m.load is None:
            rows.append(f"| {title} | {m.target} | - | - | - | - | - | {m.error or 'not run'} |")
            continue
        load = m.load
        failed = str(load.failures)
        if load.failures:
            failed += f" ({load.bad_status} non-200, {load.bad_body} bad body, {load.timeouts} timeouts)"
        rows.append(
            f"| {title} | {m.target} | {load.rps:,.0f} | {load.p50_ms:.2f} | {load.p99_ms:.2f} "
            f"| {m.cpu_ms_per_request:.3f} | {m.rss_mb:.0f} | {failed} |"
        )
    return "\n".join(rows)


def compare_table(
    results: Results, scenarios: Sequence[str], titles: dict[str, str], other: str, this: str = "seance"
) -> str:
    """A Seance target against another of the same run (seance vs seance-base: the --baseline
    commit; seance vs seance-log: the access log on; seance-2w vs seance: 2 workers against 1):
    req/s and CPU per request, as ratios."""
    rows = [
        f"| scenario | {this} req/s | {other} req/s | {this} / {other} req/s | CPU ms/req {this} / {other} |",
        "|---|--:|--:|--:|--:|",
    ]
    for key in scenarios:
        new, old = results.get(this, key), results.get(other, key)
        if new is None or old is None or new.load is None or old.load is None:
            continue
        rows.append(
            f"| {titles.get(key, key)} | {new.load.rps:,.0f} | {old.load.rps:,.0f} "
            f"| {_fmt(_ratio(new.load.rps, old.load.rps), 3)} "
            f"| {new.cpu_ms_per_request:.3f} / {old.cpu_ms_per_request:.3f} |"
        )
    return "\n".join(rows)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def servers_table(results: Results, titles: dict[str, str]) -> str:
    """The CPU that PostgreSQL and Redis spent while each run went on, per request: on this machine
    they share the 2 cores with the gateway, wrk and nginx, so what they spend is taken from those.
    Empty when no run used them (they idle at ~0.001 ms a request)."""
    rows = [m for m in results.measurements if m.load is not None and m.servers_cpu_ms_per_request >= 0.005]
    if not rows:
        return ""
    lines = ["| scenario | target | PostgreSQL + Redis CPU ms/req | target's own CPU ms/req |", "|---|---|--:|--:|"]
    lines += [f"| {titles.get(m.scenario, m.scenario)} | {m.target} | {m.servers_cpu_ms_per_request:.3f} "
              f"| {m.cpu_ms_per_request:.3f} |" for m in rows]  # fmt: skip
    return "\n".join(lines)


def ratios_table(results: Results, scenarios: Sequence[str], titles: dict[str, str]) -> str:
    rows = [
        "| scenario | Seance/LiteLLM req/s | Seance/direct req/s | Seance - direct p50 ms "
        "| Seance - direct p99 ms | LiteLLM/Seance CPU per req | Seance/relay CPU per req |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key in scenarios:
        seance, litellm, direct, relay = (results.get(t, key) for t in ("seance", "litellm", "direct", "relay"))
        rps = {name: m.load.rps if m and m.load else None for name, m in
               (("seance", seance), ("litellm", litellm), ("direct", direct))}  # fmt: skip
        cpu = {name: m.cpu_ms_per_request if m else None for name, m in
               (("seance", seance), ("litellm", litellm), ("relay", relay))}  # fmt: skip
        p50 = p99 = None
        if seance and direct and seance.load and direct.load:
            p50 = seance.load.p50_ms - direct.load.p50_ms
            p99 = seance.load.p99_ms - direct.load.p99_ms
        rows.append(
            f"| {titles.get(key, key)} | {_fmt(_ratio(rps['seance'], rps['litellm']), 1)}x "
            f"| {_fmt(_ratio(rps['seance'], rps['direct']), 3)} | {_fmt(p50, 3)} | {_fmt(p99, 3)} "
            f"| {_fmt(_ratio(cpu['litellm'], cpu['seance']), 1)}x "
            f"| {_fmt(_ratio(cpu['seance'], cpu['relay']), 2)}x |"
        )
    return "\n".join(rows)


def _bar(title: str, limit: str, value: float | None, test: Callable[[float], bool], unit: str = "") -> Bar:
    return Bar(title, limit, value, None if value is None else test(value), unit)


def _load(m: Measurement | None) -> LoadResult | None:
    return m.load if m is not None else None


def check_bars(results: Results) -> list[Bar]:
    seance = {key: _load(results.get("seance", key)) for key in
              ("chat-c1", "chat-c64", "stream-c16", "slow-c256", "anthropic-c64")}  # fmt: skip
    direct = {key: _load(results.get("direct", key)) for key in ("chat-c1", "slow-c256")}
    litellm = {key: _load(results.get("litellm", key)) for key in
               ("chat-c64", "stream-c16", "anthropic-c64")}  # fmt: skip

    def diff(key: str, attr: str) -> float | None:
        s, d = seance[key], direct[key]
        return None if s is None or d is None else float(getattr(s, attr)) - float(getattr(d, attr))

    def times_litellm(key: str) -> float | None:
        s, li = seance[key], litellm[key]
        return None if s is None or li is None else _ratio(s.rps, li.rps)

    slow = seance["slow-c256"]
    slow_direct = direct["slow-c256"]
    seance_runs = [m for m in results.measurements if m.target == "seance" and m.load is not None]
    seance_failed = sum(m.load.failures for m in seance_runs if m.load is not None)
    rss = max((m.rss_mb for m in seance_runs), default=None)
    chat64, anth64 = results.get("seance", "chat-c64"), results.get("seance", "anthropic-c64")
    translation = anth64.cpu_ms_per_request - chat64.cpu_ms_per_request if chat64 and anth64 else None
    stream16, anth_stream16 = results.get("seance", "stream-c16"), results.get("seance", "anthropic-stream-c16")
    stream_translation = (
        anth_stream16.cpu_ms_per_request - stream16.cpu_ms_per_request if stream16 and anth_stream16 else None
    )
    bars = [
        _bar("c=1 added p50 latency over direct", "<= 0.5 ms", diff("chat-c1", "p50_ms"),
             lambda v: v <= 0.5, " ms"),
        _bar("c=1 added p99 latency over direct", "<= 1 ms", diff("chat-c1", "p99_ms"),
             lambda v: v <= 1.0, " ms"),
        _bar("chat c=64 throughput vs LiteLLM", ">= 25x", times_litellm("chat-c64"),
             lambda v: v >= 25, "x"),
        _bar("stream c=16 throughput vs LiteLLM", ">= 40x", times_litellm("stream-c16"),
             lambda v: v >= 40, "x"),
        _bar("50 ms upstream c=256 throughput vs direct", ">= 75 %",
             None if slow is None or slow_direct is None else 100 * slow.rps / slow_direct.rps,
             lambda v: v >= 75, " %"),
        _bar("50 ms upstream c=256 p99 latency", "<= 150 ms", None if slow is None else slow.p99_ms,
             lambda v: v <= 150, " ms"),
        _bar("Seance requests that failed (non-200, wrong body, timeout)", "0",
             float(seance_failed) if seance_runs else None, lambda v: v == 0),
        _bar("RSS per worker (max over runs)", "<= 100 MB", rss, lambda v: v <= 100, " MB"),
        _bar("Anthropic translation CPU over pass-through (c=64)", "<= 0.3 ms/req", translation,
             lambda v: v <= 0.3, " ms"),
        _bar("Anthropic stream translation CPU over pass-through stream (c=16)", "<= 0.3 ms/req",
             stream_translation, lambda v: v <= 0.3, " ms"),
        _bar("Anthropic c=64 throughput vs LiteLLM", ">= 20x", times_litellm("anthropic-c64"),
             lambda v: v >= 20, "x"),
    ]  # fmt: skip
    return bars + cache_bars(results) + flaky_bars(results)


def _success(load: LoadResult) -> float:
    """Good answers out of every request made (errors and timeouts included), in %."""
    return 100 * load.good / max(load.good + load.failures, 1)


def flaky_bars(results: Results) -> list[Bar]:
    """Issue 11's bars for a group with a deployment failing 20 %: every request succeeds, and the
    p99 stays within 2x that of the healthy run at the same concurrency (chat-c16)."""
    flaky, healthy = _load(results.get("seance", "flaky-c16")), _load(results.get("seance", "chat-c16"))
    if flaky is None:
        return []
    return [
        _bar("flaky c=16: Seance success rate", "100 %", _success(flaky), lambda v: v == 100, " %"),
        _bar("flaky c=16: Seance p99 vs its healthy chat c=16 p99", "<= 2x",
             None if healthy is None else _ratio(flaky.p99_ms, healthy.p99_ms), lambda v: v <= 2, "x"),
    ]  # fmt: skip


def flaky_table(results: Results) -> str:
    """Seance and LiteLLM on the same flaky group in the same run, each against its healthy run."""
    rows = [
        "| target | success | req/s | p99 ms | healthy chat c=16 p99 ms | p99 / healthy p99 | first failure |",
        "|---|--:|--:|--:|--:|--:|---|",
    ]
    for target in ("seance", "litellm"):
        flaky, healthy = _load(results.get(target, "flaky-c16")), _load(results.get(target, "chat-c16"))
        if flaky is None:
            continue
        healthy_p99 = None if healthy is None else healthy.p99_ms
        rows.append(
            f"| {target} | {_success(flaky):.2f} % | {flaky.rps:,.0f} | {flaky.p99_ms:.2f} | {_fmt(healthy_p99)} "
            f"| {_fmt(_ratio(flaky.p99_ms, healthy_p99))} | {flaky.first_bad[:80] or '-'} |"
        )
    return "\n".join(rows)


def cache_bars(results: Results) -> list[Bar]:
    """Issue 10's cache bars, for the cache targets in the run: a hit at >= 1.5x the bare
    pass-through's throughput; the miss path (key, lookup, capture, store) within 20 % of it."""
    bars = []
    for cached in ("seance-cache", "seance-cache-redis"):
        for key, limit, least in (("cache-hit-c64", ">= 1.5x", 1.5), ("cache-miss-c64", ">= 0.8x", 0.8)):
            this, bare = _load(results.get(cached, key)), _load(results.get("seance", key))
            if this is None:
                continue
            value = None if bare is None else _ratio(this.rps, bare.rps)
            title = f"{cached} {key.removesuffix('-c64').replace('-', ' ')} c=64 throughput vs seance (no cache)"
            bars.append(_bar(title, limit, value, lambda v, least=least: v >= least, "x"))
    return bars


def limits_bars(results: Results, target: str) -> list[Bar]:
    """Issue 10's bars for rate limits alone (the issue's figures are for limits, cache and metrics
    together): throughput at c=64 within 20 % of the bare gateway, added p99 at c=1 at most 0.4 ms."""
    bare64, on64 = _load(results.get("seance", "chat-c64")), _load(results.get(target, "chat-c64"))
    bare1, on1 = _load(results.get("seance", "chat-c1")), _load(results.get(target, "chat-c1"))
    return [
        _bar(f"{target}: chat c=64 throughput vs seance", ">= 80 %",
             None if bare64 is None or on64 is None else 100 * on64.rps / bare64.rps, lambda v: v >= 80, " %"),
        _bar(f"{target}: chat c=1 added p99 over seance", "<= 0.4 ms",
             None if bare1 is None or on1 is None else on1.p99_ms - bare1.p99_ms, lambda v: v <= 0.4, " ms"),
    ]  # fmt: skip


def bars_table(bars: Sequence[Bar]) -> str:
    rows = ["| bar | limit | measured | verdict |", "|---|---|--:|---|"]
    rows += [f"| {b.title} | {b.limit} | {_fmt(b.value)}{b.unit if b.value is not None else ''} "
             f"| {b.verdict} |" for b in bars]  # fmt: skip
    return "\n".join(rows)


SEANCE_ALL = ("seance-all", "seance-all-redis")
ALL_FEATURES_RATIOS = (
    ("seance-all", "seance"), ("seance-all-redis", "seance"), ("litellm-all", "litellm"),
    ("seance-all-redis", "litellm-all"),
)  # fmt: skip


def all_features_table(results: Results, scenarios: Sequence[str], titles: dict[str, str]) -> str:
    """Issue 10's all-features targets against the bare gateway and LiteLLM of the same run, as
    ratios. Their chat scenarios are misses (every body new); cache-hit-c64 repeats one body."""
    rows = [
        "| scenario | seance req/s | seance-all | seance-all-redis | litellm | litellm-all "
        "| all / seance | all-redis / seance | litellm-all / litellm | all-redis / litellm-all "
        "| p99 ms seance / all / all-redis / litellm-all | CPU ms/req seance / all / all-redis / litellm-all |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    names = ("seance", "seance-all", "seance-all-redis", "litellm", "litellm-all")
    for key in scenarios:
        runs = {name: results.get(name, key) for name in names}
        if not any(runs[name] for name in (*SEANCE_ALL, "litellm-all")):
            continue
        rps = {name: m.load.rps if m and m.load else None for name, m in runs.items()}
        p99 = {name: m.load.p99_ms if m and m.load else None for name, m in runs.items()}
        cpu = {name: m.cpu_ms_per_request if m else None for name, m in runs.items()}
        cells = [
            *(_fmt(rps[name], 0) for name in names),
            *(_fmt(_ratio(rps[a], rps[b]), 3) for a, b in ALL_FEATURES_RATIOS),
            " / ".join(_fmt(p99[name]) for name in ("seance", "seance-all", "seance-all-redis", "litellm-all")),
            " / ".join(_fmt(cpu[name], 3) for name in ("seance", "seance-all", "seance-all-redis", "litellm-all")),
        ]  # fmt: skip
        rows.append(f"| {titles.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


VIRTUAL_KEY_TARGETS = ("seance-vkey", "seance-vkey-pg")


def virtual_key_bars(results: Results) -> list[Bar]:
    """Issue 9's bars for a virtual key with its spend logged and priced (SQLite and PostgreSQL),
    against the bare gateway of the same run (seance-nodb: no store): throughput at c=64 at least
    85 % of it, at most 0.3 ms added p99 at c=1."""
    bars = []
    for target in VIRTUAL_KEY_TARGETS:
        many, bare_many = _load(results.get(target, "chat-c64")), _load(results.get("seance-nodb", "chat-c64"))
        one, bare_one = _load(results.get(target, "chat-c1")), _load(results.get("seance-nodb", "chat-c1"))
        if many is None and one is None:
            continue
        bars.append(_bar(f"{target}: chat c=64 throughput vs seance-nodb", ">= 85 %",
                         None if many is None or bare_many is None else 100 * many.rps / bare_many.rps,
                         lambda v: v >= 85, " %"))  # fmt: skip
        bars.append(_bar(f"{target}: chat c=1 added p99 over seance-nodb", "<= 0.3 ms",
                         None if one is None or bare_one is None else one.p99_ms - bare_one.p99_ms,
                         lambda v: v <= 0.3, " ms"))  # fmt: skip
    return bars


def all_features_bars(results: Results) -> list[Bar]:
    """Issue 10's bars for limits + cache + metrics on together, against `seance` of the same run:
    throughput at c=64 at least 80 % of it on the miss path (cache-miss-c64: the same new-body load
    on both; chat-c64, also a miss on these targets, when cache-miss-c64 was not run); with Redis,
    at most 0.4 ms added p99 at c=1; a cache hit at c=64 at least 1.5x its chat c=64."""
    bare = {key: _load(results.get("seance", key)) for key in ("chat-c1", "chat-c64", "cache-miss-c64")}
    bars = []
    for target in SEANCE_ALL:
        runs = {
            key: _load(results.get(target, key)) for key in ("chat-c1", "chat-c64", "cache-miss-c64", "cache-hit-c64")
        }
        if not any(runs.values()):
            continue
        miss = "cache-miss-c64" if runs["cache-miss-c64"] and bare["cache-miss-c64"] else "chat-c64"
        this, that = runs[miss], bare[miss]
        bars.append(_bar(f"{target}: c=64 throughput on the miss path ({miss}) vs seance", ">= 80 %",
                         None if this is None or that is None else 100 * this.rps / that.rps,
                         lambda v: v >= 80, " %"))  # fmt: skip
        if target == "seance-all-redis":
            one, bare_one = runs["chat-c1"], bare["chat-c1"]
            bars.append(_bar(f"{target}: chat c=1 (a miss) added p99 over seance", "<= 0.4 ms",
                             None if one is None or bare_one is None else one.p99_ms - bare_one.p99_ms,
                             lambda v: v <= 0.4, " ms"))  # fmt: skip
        hit, bare64 = runs["cache-hit-c64"], bare["chat-c64"]
        bars.append(_bar(f"{target}: cache hit c=64 throughput vs seance chat c=64", ">= 1.5x",
                         None if hit is None or bare64 is None else _ratio(hit.rps, bare64.rps),
                         lambda v: v >= 1.5, "x"))  # fmt: skip
    return bars
