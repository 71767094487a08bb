"""Seance vs the LiteLLM proxy vs the bare upstream, one worker each, on loopback.

    python3 bench/run.py [--quick] [--only direct,seance,litellm] [--scenarios chat-c64,...]

Prints the results, the ratios and the bars from issues 2 and 4 as markdown, and writes them to
bench/.work/results.md. Exit status 0 only when every bar passes and no request failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from install import ensure_debian_packages, ensure_litellm, ensure_litellm_prometheus, ensure_py_spy
from load import run_wrk, write_script
from procs import (
    BenchError,
    Supervisor,
    cpu_seconds,
    ensure_port_free,
    rss_mb,
    servers_cpu_seconds,
    wait_http_ok,
    wait_until_idle,
)
from profile_gateway import Profiler
from report import (
    VIRTUAL_KEY_TARGETS,
    Measurement,
    Results,
    all_features_bars,
    all_features_table,
    bars_table,
    check_bars,
    compare_table,
    flaky_table,
    limits_bars,
    medians,
    paired,
    ratios_table,
    results_table,
    servers_table,
    virtual_key_bars,
)
from scenarios import (
    CACHE_SCENARIOS,
    FEATURE_KINDS,
    SCENARIOS,
    Features,
    Scenario,
    as_miss,
    cache_settings,
    gateway_config,
)
from targets import (
    ALL_FEATURES_TARGETS,
    CACHE_TARGETS,
    DEFAULT_TARGETS,
    MASTER_KEY,
    RELAY_KINDS,
    STARTERS,
    TARGET_NAMES,
    UPSTREAM_PORT,
    Paths,
    Running,
)
from upstream import nginx_argv

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s warm-up, 3 s per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run (2)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per run (8)")
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_TARGETS),
        help=f"targets, comma-separated, from {','.join(TARGET_NAMES)} (default {','.join(DEFAULT_TARGETS)})",
    )
    parser.add_argument("--scenarios", default="", help="scenario keys, comma-separated (default all)")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing")
    parser.add_argument(
        "--baseline", metavar="REV",
        help="also run the gateway of commit REV (target seance-base) for a before/after in one run",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="measure every scenario this many times across the targets; the tables show each figure's median",
    )  # fmt: skip
    parser.add_argument(
        "--python", type=Path, metavar="PATH",
        help="the interpreter that runs Seance's targets (a venv's python with Seance installed): .venv's by "
        "default; the image runs Debian's python3 (bench/README.md, fourteenth session)",
    )  # fmt: skip
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy every Python target during each run (slows them; not for bars)",
    )
    args = parser.parse_args(argv)
    args.argv = argv
    args.load_start = os.getloadavg()[0]
    # The commit the gateway was started from: taken now, since others may commit during the run.
    args.commit = subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
                                 capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    if args.quick:
        args.warmup, args.duration = 1.0, 3.0
    if args.rounds < 1:
        parser.error("--rounds takes a count of 1 or more")
    targets = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGET_NAMES))
    if unknown or not targets:
        parser.error(f"--only takes some of {', '.join(TARGET_NAMES)}; got {args.only!r}")
    if args.baseline and "seance-base" not in targets:
        targets.append("seance-base")
    if "seance-base" in targets and not args.baseline:
        parser.error("the seance-base target needs --baseline REV")
    args.targets = [t for t in TARGET_NAMES if t in targets]
    keys = [k.strip() for k in args.scenarios.split(",") if k.strip()]
    known = {s.key: s for s in [*SCENARIOS, *CACHE_SCENARIOS]}
    if bad := [k for k in keys if k not in known]:
        parser.error(f"unknown scenario {bad}; choose from {', '.join(known)}")
    caching = any(t in (*CACHE_TARGETS, *ALL_FEATURES_TARGETS) for t in args.targets)
    args.selected = [known[k] for k in keys] if keys else [*SCENARIOS, *(CACHE_SCENARIOS if caching else ())]
    return args


def probe(url: str, scenario: Scenario, direct: bool, key: str = MASTER_KEY) -> str | None:
    """One request before the load, so a broken route reports its real answer, not a count."""
    request = urllib.request.Request(
        url,
        data=scenario.request(direct).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return f"no answer: {exc}"
    return scenario.check(direct).problem(status, body)


def measure(
    target: Running, scenario: Scenario, args: argparse.Namespace, work: Path, profiler: Profiler | None
) -> Measurement:
    url = target.base_url + (scenario.upstream_path if target.direct else scenario.gateway_path)
    label = f"{target.name:8}"
    if problem := probe(url, scenario, target.direct, target.key):
        print(f"  {label}: probe failed: {problem}", flush=True)
        return Measurement(target.name, scenario.key, None, 0.0, 0.0, f"probe failed: {problem[:120]}")
    script = work / "wrk" / f"{target.name}-{scenario.key}.lua"
    write_script(script, scenario.request(target.direct), scenario.check(target.direct), target.key, scenario.vary)
    timeout = 10.0
    run_wrk(url, script, scenario.connections, args.warmup, timeout)
    pid = target.proc.pid
    wait_until_idle(pid)
    cpu_before, servers_before = cpu_seconds(pid), servers_cpu_seconds()
    recording = profiler.start(f"{target.name}-{scenario.key}", pid, args.duration) if profiler else None
    result = run_wrk(url, script, scenario.connections, args.duration, timeout)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / max(result.requests, 1)
    servers_ms = (servers_cpu_seconds() - servers_before) * 1000 / max(result.requests, 1)
    rss = rss_mb(pid)
    if recording is not None and profiler is not None:
        profiler.finish(recording)
    failed = f"  FAILED {result.failures}: {result.first_bad[:200]}" if result.failures else ""
    servers = f"  + {servers_ms:.3f} ms in PostgreSQL/Redis" if servers_ms >= 0.001 else ""
    print(
        f"  {label}: {result.rps:9,.0f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"  {cpu_ms:6.3f} CPU ms/req{servers}  {rss:5.0f} MB{failed}",
        flush=True,
    )
    return Measurement(target.name, scenario.key, result, cpu_ms, rss, servers_cpu_ms_per_request=servers_ms)


def start_upstream(sup: Supervisor, work: Path) -> Running:
    ensure_port_free(UPSTREAM_PORT)
    nginx_dir = work / "nginx"
    proc = sup.start("nginx", nginx_argv(UPSTREAM_PORT, nginx_dir), work / "nginx.log")
    base = f"http://127.0.0.1:{UPSTREAM_PORT}"
    wait_http_ok(f"{base}/v1/chat/completions", proc, 10, nginx_dir / "nginx-error.log", {})
    return Running("direct", base, proc, direct=True)


def run_all(args: argparse.Namespace, paths: Paths, sup: Supervisor) -> list[list[Measurement]]:
    """Start every target, then measure scenario by scenario across the targets, so the runs a
    ratio compares are seconds apart, not minutes, on a machine whose other load shifts."""
    upstream = start_upstream(sup, paths.work)
    paths.gateway_config.write_text(gateway_config(upstream.base_url))
    for kind in ("local", "redis"):
        namespace = f"seance-bench-{os.getpid()}"
        paths.cache_config(kind).write_text(gateway_config(upstream.base_url) + cache_settings(kind, namespace))
    for name in ALL_FEATURES_TARGETS:
        features = Features("local" if name == "seance-all" else "redis", f"{name}-bench-{os.getpid()}")
        paths.features_config(name).write_text(gateway_config(upstream.base_url, features))
    profiler = Profiler(ensure_py_spy(paths.work), paths.work / "profiles") if args.profile else None
    measurements: list[Measurement] = []
    running: list[Running] = []
    for name in args.targets:
        try:
            target = upstream if name == "direct" else STARTERS[name](sup, paths)
        except BenchError as exc:
            print(f"could not start {name}: {exc}", flush=True)
            first_line = str(exc).splitlines()[0]
            measurements += [Measurement(name, s.key, None, 0.0, 0.0, f"did not start: {first_line[:100]}")
                             for s in args.selected]  # fmt: skip
            continue
        print(f"{name} started, RSS {rss_mb(target.proc.pid):.0f} MB", flush=True)
        running.append(target)
    rounds = []
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"round {number} of {args.rounds}", flush=True)
        rounds.append(measurements + measure_round(args, paths, running, profiler))  # (with what did not start)
    return rounds


def measure_round(
    args: argparse.Namespace, paths: Paths, running: list[Running], profiler: Profiler | None
) -> list[Measurement]:
    measurements: list[Measurement] = []
    for scenario in args.selected:
        print(f"{scenario.title}:", flush=True)
        for target in running:
            if target.name.startswith("relay") and scenario.kind not in RELAY_KINDS:
                continue  # the reference relay only passes OpenAI-format traffic through
            if target.name in CACHE_TARGETS and scenario not in CACHE_SCENARIOS:
                continue  # every other scenario repeats one body: all hits, replayed streams included
            run = scenario
            if target.name in ALL_FEATURES_TARGETS:
                if scenario.kind not in FEATURE_KINDS:
                    continue  # a "seed" is an OpenAI chat parameter: other kinds cannot be made new
                run = as_miss(scenario)
            sampled = None if target.direct else profiler
            measurements.append(measure(target, run, args, paths.work, sampled))
    return measurements


def render(args: argparse.Namespace, rounds: list[list[Measurement]], started: float) -> tuple[str, bool]:
    """The tables show each figure's median over the rounds; a bar that compares two targets is
    judged round by round (`paired`), its median round standing."""
    measurements = medians([m for one in rounds for m in one])
    results = Results(measurements)
    each_round = [Results(one) for one in rounds]
    titles = {s.key: s.title for s in [*SCENARIOS, *CACHE_SCENARIOS]}
    bars = check_bars(results)
    load1, _, _ = os.getloadavg()
    command = " ".join(["python3 bench/run.py", *args.argv])
    rounds = (
        f", {args.rounds} rounds of every scenario across the targets: each figure its median"
        if args.rounds > 1
        else ""
    )
    header = (
        f"# Seance benchmark\n\n`{command}`\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {args.commit}, "
        f"{os.cpu_count()} cores, load average {args.load_start:.2f} at the start and {load1:.2f} at the end "
        f"(1 min; other work on the machine skews figures), {time.monotonic() - started:.0f} s.\n"
        f"One worker per target; wrk -t1, {args.warmup:g} s warm-up + {args.duration:g} s measured per run{rounds}."
        f"\nreq/s counts only 200s with the expected body; CPU and RSS are the server's process tree."
    )
    if args.python:
        header += f"\nSeance's targets ran on {args.python}."
    if args.profile:
        header += "\n\n**Profiled run: py-spy sampled Seance, so its figures are low.**"
    text = "\n\n".join([
        header,
        "## Results", results_table(results, titles),
        "## Ratios (same run)", ratios_table(results, [s.key for s in args.selected], titles),
        "## Bars (issues 2 and 4)", bars_table(bars),
    ])  # fmt: skip
    if servers := servers_table(results, titles):
        text += "\n\n## PostgreSQL and Redis beside the targets (same 2 cores)\n\n" + servers
    keys = [s.key for s in args.selected]
    if "flaky-c16" in keys:
        text += "\n\n## A flaky deployment (issue 11): flaky-c16 vs each gateway's healthy chat c=16\n\n"
        text += flaky_table(results)
    for other, title in (("seance-base", f"Before/after: seance vs seance-base ({args.baseline})"),
                         ("seance-log", "Access log: seance vs seance-log (--access-log)"),
                         ("seance-nodb", "The store: seance vs seance-nodb (--no-db: no keys, no spend rows)"),
                         ("seance-metrics", "Metrics: seance vs seance-metrics (--metrics)")):  # fmt: skip
        if other in args.targets:
            text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, other)
    for cached in CACHE_TARGETS:
        if cached in args.targets and "seance" in args.targets:
            title = f"Response cache: {cached} vs seance (no cache)"
            text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, "seance", this=cached)
    for limited in ("seance-limits", "seance-limits-redis"):
        if limited in args.targets and "seance" in args.targets:
            title = f"Rate limits: {limited} vs seance (none)"
            text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, "seance", this=limited)
            these = paired(limits_bars, each_round, limited)
            text += "\n\n" + bars_table(these)
            bars += these
    if any(t in args.targets for t in ALL_FEATURES_TARGETS):
        title = "Issue 10, all features on (limits, cache, metrics): vs seance (none) and LiteLLM configured the same"
        text += f"\n\n## {title}\n\n" + all_features_table(results, keys, titles)
        if "seance" in args.targets:  # the bars are against the bare gateway of the same run
            these = paired(all_features_bars, each_round)
            text += "\n\n" + bars_table(these)
            bars += these
    for vkey in VIRTUAL_KEY_TARGETS:
        if vkey in args.targets and "seance" in args.targets:
            title = f"Virtual key: {vkey} (a /key/generate key, spend logged) vs seance (the master key)"
            text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, "seance", this=vkey)
    if any(t in args.targets for t in VIRTUAL_KEY_TARGETS) and "seance-nodb" in args.targets:
        vkey_bars = paired(virtual_key_bars, each_round)
        for vkey, store in zip(VIRTUAL_KEY_TARGETS, ("SQLite", "PostgreSQL"), strict=True):
            if vkey in args.targets:
                title = f"Issue 9: {vkey}, a virtual key with spend logs in {store}, vs the bare gateway (seance-nodb)"
                text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, "seance-nodb", this=vkey)
        text += "\n\n" + bars_table(vkey_bars)
        bars += vkey_bars
    if "seance-nodb" in args.targets and "seance-base" in args.targets:
        title = f"Before/after, the bare path: seance-nodb (--no-db) vs seance-base ({args.baseline})"
        text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, "seance-base", this="seance-nodb")
    if "seance-2w" in args.targets and "seance" in args.targets:
        title = "Workers: seance-2w (--workers 2) vs seance (1 worker)"
        text += f"\n\n## {title}\n\n" + compare_table(results, keys, titles, "seance", this="seance-2w")
    text += "\n"
    # LiteLLM timing out under load is its result; a failure anywhere else is a broken run.
    all_good = all(b.passed for b in bars) and all(m.ok for m in measurements if not m.target.startswith("litellm"))
    return text, all_good


def extract_baseline(rev: str, paths: Paths) -> None:
    """`src/` of commit `rev` into bench/.work/baseline/ (replacing an older one)."""
    target = paths.baseline_src.parent
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise BenchError(f"--baseline {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    paths = Paths(repo=REPO, work=REPO / "bench" / ".work", interpreter=args.python)
    paths.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Even when started with SIGINT ignored (a background job), Ctrl-C / kill -INT must clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    sup = Supervisor()
    try:
        if not args.no_install:
            ensure_debian_packages(paths.work)
            if any(t.startswith("litellm") for t in args.targets):
                ensure_litellm(paths.work)
            if "litellm-all" in args.targets:
                ensure_litellm_prometheus(paths.work)
        if "seance" in args.targets and not paths.seance.exists():
            raise BenchError(f"{paths.seance} is missing; run ./scripts/test or ./scripts/serve once")
        if args.baseline:
            extract_baseline(args.baseline, paths)
        print(f"load average {os.getloadavg()[0]:.2f}; logs and configs in {paths.work}", flush=True)
        rounds = run_all(args, paths, sup)
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted; stopping everything the bench started.", file=sys.stderr)
        return 130
    finally:
        sup.stop_all()
    text, all_good = render(args, rounds, started)
    (paths.work / "results.md").write_text(text)
    print("\n" + text)
    print(f"Written to {paths.work / 'results.md'}")
    return 0 if all_good else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
