"""The load generator: Debian's wrk with a Lua script that posts a body and checks every answer.

The script counts an answer as good only if it is a 200 whose body holds every expected string and
at least `min_events` SSE `data:` lines, so a gateway that answers errors fast cannot look good.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError

_LUA_TEMPLATE = """\
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local needles = {{ {needles} }}
local min_events = {min_events}
local threads = {{}}

good = 0
bad_status = 0
bad_body = 0
first_bad = ""

{vary}
function setup(thread)
  table.insert(threads, thread)
end

local function remember(text)
  if first_bad == "" then first_bad = string.sub(text, 1, 400) end
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
    remember(status .. " " .. body)
    return
  end
  for _, needle in ipairs(needles) do
    if not string.find(body, needle, 1, true) then
      bad_body = bad_body + 1
      remember("200 without " .. needle .. ": " .. body)
      return
    end
  end
  if min_events > 0 then
    local _, events = string.gsub(body, "data:", "")
    if events < min_events then
      bad_body = bad_body + 1
      remember("200 with " .. events .. " data lines: " .. body)
      return
    end
  end
  good = good + 1
end

function done(summary, latency, requests)
  local g, s, b, first = 0, 0, 0, ""
  for _, t in ipairs(threads) do
    g = g + t:get("good")
    s = s + t:get("bad_status")
    b = b + t:get("bad_body")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT %d %d %d %d %d %d %d %d %d %d %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, g, s, b,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50.0), latency:percentile(99.0), latency.mean))
  io.write("BENCH_FIRST_BAD " .. string.gsub(first, "[\\r\\n]", " ") .. "\\n")
end
"""


@dataclass(frozen=True)
class Check:
    """What every answer must hold to count as good."""

    needles: tuple[str, ...]
    min_events: int = 0

    def problem(self, status: int, body: str) -> str | None:
        """What is wrong with one answer (the Lua script's test, for the pre-flight probe)."""
        if status != 200:
            return f"status {status}: {body[:400]}"
        missing = [n for n in self.needles if n not in body]
        if missing:
            return f"200 without {missing}: {body[:400]}"
        events = body.count("data:")
        if events < self.min_events:
            return f"200 with {events} data lines, expected {self.min_events}: {body[:400]}"
        return None


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    good: int
    bad_status: int
    bad_body: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    first_bad: str

    @property
    def rps(self) -> float:
        """Good answers per second: errors never add to throughput."""
        return self.good / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> int:
        return self.requests - self.good + self.socket_errors + self.timeouts


def lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be closed early by the text it holds."""
    level = 0
    # Any "]=*" run in the text could join the closing bracket; pick a level none of them matches.
    while f"]{'=' * level}" in text:
        level += 1
    eq = "=" * level
    # A newline right after the opening bracket is dropped by Lua; add one so none of ours is lost.
    return f"[{eq}[\n{text}]{eq}]"


# Every request a body of its own: the JSON object gets a "seed" no other request of any run has
# (a random run number, then a counter), so a response cache never answers it.
_VARY = """
local prefix = string.sub(wrk.body, 1, -2) .. ',"seed":'
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
local run = math.random(1, 999999)
local counter = 0

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, prefix .. run .. string.format("%09d", counter) .. "}")
end
"""


def write_script(path: Path, body: str, check: Check, key: str, vary: bool = False) -> None:
    needles = ", ".join(lua_string(n) for n in check.needles)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _LUA_TEMPLATE.format(
        body=lua_string(body), key=key, needles=needles, min_events=check.min_events, vary=_VARY if vary else ""
    )
    path.write_text(text)


def parse_output(stdout: str) -> LoadResult:
    result_line = first_bad = None
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result_line = line.split()[1:]
        elif line.startswith("BENCH_FIRST_BAD"):
            first_bad = line[len("BENCH_FIRST_BAD") :].strip()
    if result_line is None:
        raise BenchError(f"wrk printed no result:\n{stdout[-2000:]}")
    counts = [int(v) for v in result_line[:10]]
    requests, duration_us, good, bad_status, bad_body, connect, read, write, _status, timeout = counts
    p50_us, p99_us, mean_us = (float(v) for v in result_line[10:13])
    return LoadResult(
        requests=requests,
        seconds=duration_us / 1e6,
        good=good,
        bad_status=bad_status,
        bad_body=bad_body,
        socket_errors=connect + read + write,
        timeouts=timeout,
        p50_ms=p50_us / 1000,
        p99_ms=p99_us / 1000,
        mean_ms=mean_us / 1000,
        first_bad=first_bad or "",
    )


def run_wrk(url: str, script: Path, connections: int, seconds: float, timeout_s: float) -> LoadResult:
    # One wrk thread: the 2-core machine keeps the other core for the server under test.
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout_s:g}s",
        "-s", str(script), url,
    ]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout_s + 30)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
    return parse_output(done.stdout + done.stderr)
