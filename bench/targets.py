"""The three targets: the fake upstream itself (direct), the Seance gateway and the LiteLLM proxy."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError, Supervisor, ensure_port_free, wait_http_ok
from scenarios import SCENARIOS

MASTER_KEY = "sk-bench"
UPSTREAM_PORT = 18100
SEANCE_PORT = 18110
LITELLM_PORT = 18120
RELAY_PORT = 18130
RELAY_RAW_PORT = 18140
SEANCE_BASE_PORT = 18150
SEANCE_LOG_PORT = 18160
SEANCE_2W_PORT = 18170
SEANCE_CACHE_PORT = 18180
SEANCE_CACHE_REDIS_PORT = 18190
SEANCE_LIMITS_PORT = 18200
SEANCE_LIMITS_REDIS_PORT = 18210
SEANCE_METRICS_PORT = 18220
SEANCE_VKEY_PORT = 18230
SEANCE_VKEY_PG_PORT = 18235
SEANCE_NODB_PORT = 18240
SEANCE_ALL_PORT = 18280
SEANCE_ALL_REDIS_PORT = 18290
LITELLM_ALL_PORT = 18300
TARGET_NAMES = (
    "direct", "seance", "seance-base", "seance-log", "seance-2w", "seance-cache", "seance-cache-redis",
    "seance-limits", "seance-limits-redis", "seance-metrics", "seance-vkey", "seance-vkey-pg", "seance-nodb",
    "seance-all", "seance-all-redis", "litellm", "litellm-all", "relay", "relay-raw",
)  # fmt: skip
CACHE_TARGETS = ("seance-cache", "seance-cache-redis")
# Issue 10's features on together (scenarios.Features); they run every chat scenario as a miss
ALL_FEATURES_TARGETS = ("seance-all", "seance-all-redis", "litellm-all")
DEFAULT_TARGETS = ("direct", "seance", "litellm")


@dataclass(frozen=True)
class Paths:
    repo: Path
    work: Path
    # the interpreter that runs Seance (a venv's python with its dependencies): .venv's by default
    interpreter: Path | None = None

    @property
    def seance(self) -> Path:
        return self.python.with_name("seance")

    @property
    def litellm(self) -> Path:
        return self.work / "litellm-venv" / "bin" / "litellm"

    @property
    def python(self) -> Path:
        """Seance's interpreter, which also runs the reference relay on the same libraries."""
        return self.interpreter or self.repo / ".venv" / "bin" / "python"

    @property
    def gateway_config(self) -> Path:
        return self.work / "gateway-config.yaml"

    def cache_config(self, kind: str) -> Path:
        """gateway_config plus the response cache of `kind` (local, redis)."""
        return self.work / f"gateway-config-cache-{kind}.yaml"

    def features_config(self, target: str) -> Path:
        """gateway_config with issue 10's features on, for an all-features target."""
        return self.work / f"gateway-config-{target}.yaml"

    @property
    def baseline_src(self) -> Path:
        """The `src/` of the --baseline commit, extracted by run.py."""
        return self.work / "baseline" / "src"


@dataclass(frozen=True)
class Running:
    name: str
    base_url: str
    proc: subprocess.Popen[bytes]
    direct: bool
    key: str = MASTER_KEY  # what the load sends as its Bearer key


def _gateway_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Provider keys from the shell must not leak into a run that uses the config's fake keys.
    # So must a Redis from the shell: a target uses Redis only where its config or `extra` says so.
    for name in list(env):
        if name.endswith(("_API_KEY", "_API_BASE", "_BASE_URL")) or name.startswith("REDIS_"):
            del env[name]
    env["LITELLM_MASTER_KEY"] = MASTER_KEY
    env.update(extra)
    return env


def _start_seance(
    sup: Supervisor,
    paths: Paths,
    name: str,
    port: int,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    workers: int = 1,
    config: Path | None = None,
) -> Running:
    ensure_port_free(port)
    log = paths.work / f"{name}.log"
    argv = [
        str(paths.python), "-m", "seance", "gateway", "--config", str(config or paths.gateway_config),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *args,
    ]  # fmt: skip
    # the store's SQLite file (keys, spend) in the run's work directory, a fresh one per run
    database = paths.work / f"{name}.db"
    database.unlink(missing_ok=True)
    proc = sup.start(name, argv, log, _gateway_env({"SEANCE_DB": str(database), **(env or {})}))
    base = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base}/health/liveliness", proc, 60, log, {})
    return Running(name, base, proc, direct=False)


def start_seance(sup: Supervisor, paths: Paths) -> Running:
    return _start_seance(sup, paths, "seance", SEANCE_PORT)


def start_seance_base(sup: Supervisor, paths: Paths) -> Running:
    """The same interpreter and libraries, the gateway's code from the --baseline commit: the
    before/after of a change, measured in one run."""
    return _start_seance(sup, paths, "seance-base", SEANCE_BASE_PORT, env={"PYTHONPATH": str(paths.baseline_src)})


def start_seance_log(sup: Supervisor, paths: Paths) -> Running:
    """Seance with its access log on (to its log file, as a container's stderr would be)."""
    return _start_seance(sup, paths, "seance-log", SEANCE_LOG_PORT, ("--access-log",))


def start_seance_vkey(sup: Supervisor, paths: Paths) -> Running:
    """The same gateway called with a virtual key from /key/generate (not the master key): the key
    cache, its budget check and the spend log on every request."""
    running = _start_seance(sup, paths, "seance-vkey", SEANCE_VKEY_PORT)
    return _with_new_key(running, {"key_alias": "bench", "max_budget": 1e9})


# The PostgreSQL of the machine (trust auth, user postgres), or SEANCE_BENCH_PG: its admin URL. The
# bench's database is made anew for each run (dropped first), so every run starts with no rows.
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DATABASE = "seance_bench_vkey"


def start_seance_vkey_pg(sup: Supervisor, paths: Paths) -> Running:
    """seance-vkey with its keys and spend in PostgreSQL (DATABASE_URL), as replicas share them."""
    admin = os.environ.get("SEANCE_BENCH_PG", PG_ADMIN)
    fresh = (f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)', f'CREATE DATABASE "{BENCH_DATABASE}"')
    for statement in fresh:
        done = subprocess.run(["psql", admin, "-q", "-c", statement], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"PostgreSQL at {admin}: {done.stderr.strip() or done.stdout.strip()}")
    url = admin.rsplit("/", 1)[0] + "/" + BENCH_DATABASE
    running = _start_seance(sup, paths, "seance-vkey-pg", SEANCE_VKEY_PG_PORT, env={"DATABASE_URL": url})
    return _with_new_key(running, {"key_alias": "bench", "max_budget": 1e9})


def _with_new_key(running: Running, fields: dict[str, object]) -> Running:
    """`running`, called from now on with a virtual key made by its /key/generate with `fields`."""
    request = urllib.request.Request(
        running.base_url + "/key/generate", data=json.dumps(fields).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        key = json.loads(answer.read())["key"]
    return dataclasses.replace(running, key=key)


def start_seance_nodb(sup: Supervisor, paths: Paths) -> Running:
    """Seance without its store (--no-db): the master key only, no spend rows: the bare request path."""
    return _start_seance(sup, paths, "seance-nodb", SEANCE_NODB_PORT, ("--no-db",))


def start_seance_2w(sup: Supervisor, paths: Paths) -> Running:
    """Seance with --workers 2: the connections of a run spread over two processes (SO_REUSEPORT)."""
    return _start_seance(sup, paths, "seance-2w", SEANCE_2W_PORT, workers=2)


def start_seance_cache(sup: Supervisor, paths: Paths) -> Running:
    """Seance with the in-process response cache (cache: true, type local)."""
    return _start_seance(sup, paths, "seance-cache", SEANCE_CACHE_PORT, config=paths.cache_config("local"))


def start_seance_cache_redis(sup: Supervisor, paths: Paths) -> Running:
    """Seance with the response cache in the Redis on 127.0.0.1:6379 (its own namespace, 30 s TTL)."""
    return _start_seance(sup, paths, "seance-cache-redis", SEANCE_CACHE_REDIS_PORT, config=paths.cache_config("redis"))


# Limits that never refuse (the runs measure what checking and counting cost), all three kinds so
# the whole path runs: requests, tokens reserved and settled, and requests in flight.
BENCH_LIMITS = {"rpm": 10**9, "tpm": 10**12, "parallel": 10**6}


def _start_limited(sup: Supervisor, paths: Paths, name: str, port: int, env: dict[str, str]) -> Running:
    """Seance with rate limits on every request. Until virtual keys land, the tests' stand-in
    (tests/gateway/pipeline/stand_in_keys.py) makes each request a key's with BENCH_LIMITS; once
    keys exist this should start `seance gateway` and send a virtual key with these limits."""
    ensure_port_free(port)
    log = paths.work / f"{name}.log"
    limits = json.dumps([{"scope": f"key:bench-{os.urandom(6).hex()}", **BENCH_LIMITS}])
    argv = [
        str(paths.python), "-m", "tests.gateway.pipeline.stand_in_keys", str(paths.gateway_config),
        str(port), "1", limits,
    ]  # fmt: skip
    proc = sup.start(name, argv, log, _gateway_env({"PYTHONPATH": str(paths.repo), **env}))
    base = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base}/health/liveliness", proc, 60, log, {})
    return Running(name, base, proc, direct=False)


def start_seance_limits(sup: Supervisor, paths: Paths) -> Running:
    """Rate limits counted in the process."""
    return _start_limited(sup, paths, "seance-limits", SEANCE_LIMITS_PORT, {})


def start_seance_limits_redis(sup: Supervisor, paths: Paths) -> Running:
    """Rate limits counted in Redis (SEANCE_BENCH_REDIS_URL, default the local server): one Lua
    script round trip before the answer and one after it."""
    url = os.environ.get("SEANCE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    return _start_limited(sup, paths, "seance-limits-redis", SEANCE_LIMITS_REDIS_PORT, {"REDIS_URL": url})


def _start_all_features(sup: Supervisor, paths: Paths, name: str, port: int) -> Running:
    """Seance with issue 10's features on together (its config from scenarios.Features: the cache,
    Prometheus, deployment rpm/tpm), called with a virtual key whose rpm, tpm and parallel limits
    (BENCH_LIMITS, never reached) are checked and counted on every request, and whose spend is
    logged. With a Redis cache the limits are counted in the same Redis (the gateway finds it in
    cache_params), each run under a key of its own."""
    running = _start_seance(sup, paths, name, port, config=paths.features_config(name))
    limits = {"rpm_limit": BENCH_LIMITS["rpm"], "tpm_limit": BENCH_LIMITS["tpm"],
              "max_parallel_requests": BENCH_LIMITS["parallel"]}  # fmt: skip
    running = _with_new_key(running, {"key_alias": f"bench-{name}", "max_budget": 1e9, **limits})
    _check_features(running)
    return running


# What shows each feature took part in an answer: the cache looked it up, the limits counted it.
FEATURE_HEADERS = ("x-litellm-cache-key", "x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens")


def _check_features(running: Running) -> None:
    """One request with the target's key, then /metrics: every feature must be on (a feature that a
    config mistake left off would make its run measure nothing)."""
    body = {"model": "bench-openai", "messages": [{"role": "user", "content": f"features {os.urandom(6).hex()}"}]}
    request = urllib.request.Request(
        running.base_url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {running.key}"},
    )  # fmt: skip
    metrics = urllib.request.Request(running.base_url + "/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            missing = [name for name in FEATURE_HEADERS if answer.headers.get(name) is None]
        with urllib.request.urlopen(metrics, timeout=30) as answer:
            if "litellm_proxy_total_requests_metric" not in answer.read().decode():
                missing.append("litellm_proxy_total_requests_metric in /metrics")
    except urllib.error.HTTPError as exc:
        raise BenchError(f"{running.name}: {exc.url} answered {exc.code}: {exc.read()[:300]!r}") from exc
    if missing:
        raise BenchError(f"{running.name}: a feature is off, the answer has no {', '.join(missing)}")


def start_seance_all(sup: Supervisor, paths: Paths) -> Running:
    """Everything in the process: the cache (type local), limits and metrics."""
    return _start_all_features(sup, paths, "seance-all", SEANCE_ALL_PORT)


def start_seance_all_redis(sup: Supervisor, paths: Paths) -> Running:
    """The cache and the limits in the Redis on 127.0.0.1:6379, metrics in the process."""
    return _start_all_features(sup, paths, "seance-all-redis", SEANCE_ALL_REDIS_PORT)


def start_seance_metrics(sup: Supervisor, paths: Paths) -> Running:
    """Seance with Prometheus metrics on (--metrics: the hook on every request; nobody scrapes)."""
    return _start_seance(sup, paths, "seance-metrics", SEANCE_METRICS_PORT, ("--metrics",))


def _start_litellm(sup: Supervisor, paths: Paths, name: str, port: int, config: Path) -> Running:
    ensure_port_free(port)
    log = paths.work / f"{name}.log"
    argv = [
        str(paths.litellm), "--config", str(config),
        "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1",
    ]  # fmt: skip
    # Only the start-up download of the model price map is turned off (no network here); the
    # proxy otherwise runs as installed: default logging, callbacks and request handling.
    env = _gateway_env({"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    proc = sup.start(name, argv, log, env)
    base = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base}/health/liveliness", proc, 240, log, {})
    return Running(name, base, proc, direct=False)


def start_litellm(sup: Supervisor, paths: Paths) -> Running:
    return _start_litellm(sup, paths, "litellm", LITELLM_PORT, paths.gateway_config)


def start_litellm_all(sup: Supervisor, paths: Paths) -> Running:
    """LiteLLM with the features it has without a database, from the same kind of config as
    seance-all-redis: the Redis cache (a namespace of its own; LiteLLM then keeps its usage
    counters in that Redis too), Prometheus, deployment rpm/tpm with enable_pre_call_checks. Per-key
    limits need its virtual keys, which need PostgreSQL and prisma's engines (downloaded at start,
    and this machine has no network): the master key it is."""
    running = _start_litellm(sup, paths, "litellm-all", LITELLM_ALL_PORT, paths.features_config("litellm-all"))
    # Prometheus is on: a proxy that dropped the callback (a license check, say) must not pass as on.
    request = urllib.request.Request(running.base_url + "/metrics", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        raise BenchError(f"litellm-all: GET /metrics answered {status}: Prometheus is not on")
    return running


RELAY_KINDS = ("chat", "stream", "embeddings")


def _start_relay(sup: Supervisor, paths: Paths, name: str, port: int, client: str) -> Running:
    ensure_port_free(port)
    log = paths.work / f"{name}.log"
    routes = {s.model: [s.upstream_path, "gpt-4o-mini"] for s in SCENARIOS if s.kind in RELAY_KINDS}
    upstream = f"http://127.0.0.1:{UPSTREAM_PORT}"
    argv = [str(paths.python), str(Path(__file__).with_name("relay.py")), str(port), upstream, client]
    proc = sup.start(name, argv, log, dict(os.environ, RELAY_ROUTES=json.dumps(routes)))
    base = f"http://127.0.0.1:{port}"
    wait_http_ok(f"{base}/health/liveliness", proc, 30, log, {})
    return Running(name, base, proc, direct=False)


def start_relay(sup: Supervisor, paths: Paths) -> Running:
    return _start_relay(sup, paths, "relay", RELAY_PORT, "aiohttp")


def start_relay_raw(sup: Supervisor, paths: Paths) -> Running:
    return _start_relay(sup, paths, "relay-raw", RELAY_RAW_PORT, "raw")


STARTERS: dict[str, Callable[[Supervisor, Paths], Running]] = {
    "seance": start_seance,
    "seance-base": start_seance_base,
    "seance-log": start_seance_log,
    "seance-2w": start_seance_2w,
    "seance-nodb": start_seance_nodb,
    "seance-cache": start_seance_cache,
    "seance-cache-redis": start_seance_cache_redis,
    "seance-limits": start_seance_limits,
    "seance-limits-redis": start_seance_limits_redis,
    "seance-metrics": start_seance_metrics,
    "seance-vkey": start_seance_vkey,
    "seance-vkey-pg": start_seance_vkey_pg,
    "seance-all": start_seance_all,
    "seance-all-redis": start_seance_all_redis,
    "litellm": start_litellm,
    "litellm-all": start_litellm_all,
    "relay": start_relay,
    "relay-raw": start_relay_raw,
}
